"""Crash and restart: everything a client was told is stored survives a SIGKILL of the control plane.

The control plane is killed without warning, started again on the same data directory, and every session,
task, result (with its data) and queued message must be as before; the graph must keep working (a waiting
task whose input completes after the restart is released and queued). A clean SIGTERM exits with status 0.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from armonik.client import ArmoniKEvents, ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import (
    Direction,
    Result,
    ResultStatus,
    Session,
    SessionStatus,
    Task,
    TaskDefinition,
    TaskStatus,
)
from armonik.protogen.client.events_service_pb2_grpc import EventsStub
from armonik.protogen.common.events_common_pb2 import EventSubscriptionRequest

from armonik_core.adapters.queue.embedded import EmbeddedQueue
from armonik_core.domain.outcomes import OutcomeKind, TaskOutcome
from armonik_core.polling_agent.gateway_backend import GatewayBackend

try:
    from tests.conftest import ControlPlaneProcess
except ImportError:  # run from inside tests/
    from conftest import ControlPlaneProcess  # type: ignore[no-redef]

MiB = 1024 * 1024


try:
    from tests.support import options
except ImportError:  # run from inside tests/
    from support import options  # type: ignore[no-redef]


class Clients:
    def __init__(self, channel: grpc.Channel) -> None:
        self.sessions = ArmoniKSessions(channel)
        self.tasks = ArmoniKTasks(channel)
        self.results = ArmoniKResults(channel)

    def snapshot(self) -> dict[str, Any]:
        """Everything the API tells about the stored state, data included."""
        total, sessions = self.sessions.list_sessions(page_size=1000, sort_field=Session.created_at)
        assert total == len(sessions)
        total, tasks = self.tasks.list_tasks(page_size=1000)
        assert total == len(tasks)
        total, results = self.results.list_results(page_size=1000, sort_field=Result.result_id)
        assert total == len(results)
        data = {
            r.result_id: self.results.download_result_data(r.result_id, r.session_id)
            for r in results
            if r.status == ResultStatus.COMPLETED
        }
        return {
            "sessions": {s.session_id: vars(s) for s in sessions},
            "tasks": {t.id: vars(t) for t in tasks},
            "results": {r.result_id: vars(r) for r in results},
            "data": data,
        }


@pytest.fixture(params=["memory", "embedded"])
def control_plane(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Both queues: the in-memory one rebuilt from the state, and the SQLite file queue."""
    plane = ControlPlaneProcess(tmp_path / "data", env={"Components__QueueStorage": request.param})
    plane.start()
    yield plane
    plane.kill()


def queued(control_plane: Any, partition: str) -> tuple[int, list[str]]:
    """Depth of a partition's queue and the task ids it holds, in order, read as an agent would.

    The file queue is read directly (lease then release). The in-memory queue is read through the compute
    gateway: each task is acquired then handed back untouched (RELEASED), which re-queues it in the same
    order, so the queue is left as found."""
    if control_plane.env["Components__QueueStorage"] == "embedded":
        return _queued_in_file(control_plane.data_dir, partition)
    return asyncio.run(_queued_through_gateway(control_plane, partition))


def _queued_in_file(data_dir: Path, partition: str) -> tuple[int, list[str]]:
    async def read() -> tuple[int, list[str]]:
        queue = EmbeddedQueue(data_dir / "queue.db")
        try:
            depth = await queue.depth(partition)
            leases = await queue.pull(partition, 10_000, 60.0, "restart-test")
            await queue.release(leases)
            assert await queue.depth(partition) == depth
            return depth, [lease.message.task_id for lease in leases]
        finally:
            await queue.close()

    return asyncio.run(read())


async def _queued_through_gateway(plane: Any, partition: str) -> tuple[int, list[str]]:
    backend = GatewayBackend(
        plane.gateway_endpoint, "restart-test", partition_id=partition, credential=plane.credential(partition)
    )
    try:
        taken = []
        while (acquired := await backend.acquire(partition, "restart-test", "test-host", 0.0)) is not None:
            taken.append(acquired)
        for acquired in taken:
            await backend.finish(acquired, TaskOutcome(OutcomeKind.RELEASED, "only looking"))
        return len(taken), [a.task.task_id for a in taken]
    finally:
        await backend.close()


def test_state_and_queue_survive_sigkill(control_plane: Any) -> None:
    pymonik_options = options(partition_id="pymonik", priority=3)
    with grpc.insecure_channel(control_plane.endpoint) as channel:
        api = Clients(channel)
        main = api.sessions.create_session(options(options={"k": "v"}, application_name="app"))
        on_pymonik = api.sessions.create_session(pymonik_options, ["pymonik"])
        paused = api.sessions.create_session(pymonik_options, ["pymonik"])
        closed = api.sessions.create_session(options())
        cancelled = api.sessions.create_session(options())

        created = api.results.create_results_metadata([f"out-{i}" for i in range(7)] + ["x", "blob"], main)
        out = [created[f"out-{i}"].result_id for i in range(7)]
        x, blob = created["x"].result_id, created["blob"].result_id
        inline = api.results.create_results({"payload": b"payload", "empty": b""}, main)
        payload = inline["payload"].result_id
        big = os.urandom(3 * MiB + 7)
        api.results.upload_result_data(blob, main, big)

        def submit(session: str, outputs: list[str], deps: list[str], data: str = payload, **kw: Any) -> str:
            definition = TaskDefinition(
                payload_id=data, expected_output_ids=outputs, data_dependencies=deps, **kw
            )
            return api.tasks.submit_tasks(session, [definition])[0].id

        # On "default": ready tasks and waiting tasks only.
        ready = [submit(main, [out[i]], [blob]) for i in range(3)]
        ready.append(submit(main, [out[3]], [], options=options(priority=7, options={"task": "yes"})))
        waiting = [submit(main, [out[4]], [x]), submit(main, [out[5]], [x, blob])]
        chained = submit(main, [out[6]], [out[4]])  # waits for a waiting task's output

        # On "pymonik": ready tasks, a task cancelled once queued, a task of a session paused once queued.
        p_out = api.results.create_results_metadata([f"p-out-{i}" for i in range(3)], on_pymonik)
        p_payload = api.results.create_results({"p": b"p"}, on_pymonik)["p"].result_id
        pymonik_ready = [submit(on_pymonik, [p_out[f"p-out-{i}"].result_id], [], p_payload) for i in range(2)]
        doomed = submit(on_pymonik, [p_out["p-out-2"].result_id], [], p_payload)
        api.tasks.cancel_tasks([doomed])
        held_out = api.results.create_results_metadata(["held"], paused)["held"].result_id
        held = submit(paused, [held_out], [], api.results.create_results({"p": b"p"}, paused)["p"].result_id)
        api.sessions.pause_session(paused)
        api.sessions.close_session(closed)
        api.sessions.cancel_session(cancelled)

        before = api.snapshot()
        assert api.tasks.get_task(held).status == TaskStatus.PAUSED
        assert api.tasks.get_task(doomed).status == TaskStatus.CANCELLED
        assert {tid: api.tasks.get_task(tid).status for tid in [*waiting, chained]} == dict.fromkeys(
            [*waiting, chained], TaskStatus.PENDING
        )

    default_before = queued(control_plane, "default")
    assert default_before[0] == len(ready) and sorted(default_before[1]) == sorted(ready)
    pymonik_before = queued(control_plane, "pymonik")

    control_plane.kill()
    assert control_plane.process is not None and control_plane.process.returncode == -9
    control_plane.start()

    with grpc.insecure_channel(control_plane.endpoint) as channel:
        api = Clients(channel)
        after = api.snapshot()
        assert after["sessions"] == before["sessions"]
        assert after["results"] == before["results"]
        assert after["data"].keys() == before["data"].keys()
        for result_id, data in before["data"].items():
            assert after["data"][result_id] == data, result_id
        assert after["data"][blob] == big and after["data"][inline["empty"].result_id] == b""
        assert after["tasks"].keys() == before["tasks"].keys()
        for task_id, fields in before["tasks"].items():
            assert after["tasks"][task_id] == fields, task_id

        statuses = {s["_session_id"]: s["_status"] for s in after["sessions"].values()}
        assert statuses == {
            main: SessionStatus.RUNNING,
            on_pymonik: SessionStatus.RUNNING,
            paused: SessionStatus.PAUSED,
            closed: SessionStatus.CLOSED,
            cancelled: SessionStatus.CANCELLED,
        }
        assert api.tasks.count_tasks_by_status(Task.session_id == main) == {
            TaskStatus.SUBMITTED: 4,
            TaskStatus.PENDING: 3,
        }
        assert api.tasks.get_task(ready[3]).options.options == {"k": "v", "task": "yes"}
        assert api.tasks.get_task(ready[3]).options.priority == 7

        # The queue holds exactly the ready tasks, each once: nothing lost, nothing published again.
        depth, ids = queued(control_plane, "default")
        assert depth == len(ready) and sorted(ids) == sorted(ready)
        assert ids[0] == ready[3], "the priority-7 task comes first"
        assert queued(control_plane, "default") == default_before
        # On "pymonik" every ready task is there once, and the messages are those from before the crash.
        # (Messages of tasks cancelled or paused after being queued may stay in the queue: consumers skip
        # them when they find the task no longer SUBMITTED.)
        depth, ids = queued(control_plane, "pymonik")
        assert (depth, sorted(ids)) == (pymonik_before[0], sorted(pymonik_before[1]))
        assert all(ids.count(task_id) == 1 for task_id in pymonik_ready)
        assert set(ids) <= {*pymonik_ready, doomed, held}

        # The graph still works after the restart: X completes, both waiting tasks are released and queued.
        api.results.upload_result_data(x, main, b"x after the restart")
        assert [api.tasks.get_task(t).status for t in waiting] == [TaskStatus.SUBMITTED] * 2
        assert api.tasks.get_task(chained).status == TaskStatus.PENDING
        depth, ids = queued(control_plane, "default")
        assert depth == len(ready) + 2 and sorted(ids) == sorted(ready + waiting)
        # And the paused session, resumed, has its task queued again.
        api.sessions.resume_session(paused)
        assert api.tasks.get_task(held).status == TaskStatus.SUBMITTED
        depth, ids = queued(control_plane, "pymonik")
        assert held in ids and depth == len(ids)

        # New work is accepted and ordered after the old one.
        new_session = api.sessions.create_session(options())
        total, newest = api.sessions.list_sessions(
            page_size=1, sort_field=Session.created_at, sort_direction=Direction.DESC
        )
        assert total == 6 and newest[0].session_id == new_session


def test_sigterm_stops_cleanly_and_keeps_the_data(control_plane: Any) -> None:
    with grpc.insecure_channel(control_plane.endpoint) as channel:
        sessions = ArmoniKSessions(channel)
        results = ArmoniKResults(channel)
        sid = sessions.create_session(options())
        rid = results.create_results({"kept": b"kept across a clean stop"}, sid)["kept"].result_id

    # An open event stream is ended with UNAVAILABLE at shutdown instead of holding the stop for the grace.
    stream_channel = grpc.insecure_channel(control_plane.endpoint)
    stream = EventsStub(stream_channel).GetEvents(EventSubscriptionRequest(session_id=sid))
    next(stream)  # the replayed NEW_RESULT: the stream is open
    started = time.monotonic()
    assert control_plane.stop() == 0
    assert time.monotonic() - started < 4.0
    with pytest.raises(grpc.RpcError) as ended:
        next(stream)
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    stream_channel.close()
    assert "control plane stopped" in control_plane.logs()

    control_plane.start()
    with grpc.insecure_channel(control_plane.endpoint) as channel:
        assert ArmoniKSessions(channel).get_session(sid).status == SessionStatus.RUNNING
        assert ArmoniKResults(channel).download_result_data(rid, sid) == b"kept across a clean stop"
    assert control_plane.stop() == 0


def test_a_client_waiting_for_a_result_survives_the_crash(control_plane: Any) -> None:
    """`wait_for_result_availability` subscribes again when its stream breaks; after the restart, the replay
    and the live events of the new process must let it finish."""
    with grpc.insecure_channel(control_plane.endpoint) as channel:
        sid = ArmoniKSessions(channel).create_session(options())
        created = ArmoniKResults(channel).create_results_metadata(["before", "after"], sid)
    before, after = created["before"].result_id, created["after"].result_id

    outcome: dict[str, Any] = {}
    waiter_channel = grpc.insecure_channel(control_plane.endpoint)

    def wait() -> None:
        try:
            ArmoniKEvents(waiter_channel).wait_for_result_availability([before, after], sid)
            outcome["returned"] = True
        except BaseException as exc:  # reported to the test
            outcome["error"] = exc

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    try:
        time.sleep(0.3)
        control_plane.kill()
        control_plane.start()
        with grpc.insecure_channel(control_plane.endpoint) as channel:
            results = ArmoniKResults(channel)
            results.upload_result_data(before, sid, b"completed while the client was reconnecting")
            time.sleep(0.2)
            assert waiter.is_alive(), "returned although one result still has no data"
            results.upload_result_data(after, sid, b"completed later")
        waiter.join(20)
        assert not waiter.is_alive(), "the waiting client never saw its results after the restart"
    finally:
        waiter_channel.close()
        waiter.join(2)
    assert outcome == {"returned": True}
