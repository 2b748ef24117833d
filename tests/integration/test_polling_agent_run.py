"""The polling agent running tasks on a real worker written with the official Python SDK (`agent_worker`, run
by `agent_harness`): inputs staged, outputs, results and subtasks created by the worker, errors and crashes,
resource data, and the Agent API's refusals. One worker serves the whole module (`sockets`); each test starts
its own agent on the same agent socket (`running`, in both worker modes). The agent's life around a task is in
`test_polling_agent_lifecycle`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from armonik.protogen.common import agent_common_pb2 as a

from armonik_core.domain.outcomes import OutcomeKind
from armonik_core.domain.statuses import ResultStatus, TaskStatus
from armonik_core.ids import new_id
from armonik_core.polling_agent.inprocess import InProcessAgentStub
from tests.integration.agent_harness import Running, files_left, session_options, spare_files, spare_folders


async def test_inputs_are_staged_and_notified_outputs_become_objects(running: Running) -> None:
    backend = running.backend
    acquired = await backend.submit({"action": "inspect"}, deps=[b"first input", b"second input"])
    task = acquired.task
    outcome = await backend.outcome(acquired)
    assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
    assert [c.result_id for c in outcome.completions] == task.expected_output_ids
    report = json.loads(await backend.data(outcome, task.expected_output_ids[0]))

    # Every input was a file named by its result id before Process was called; an in-process worker reads
    # them from object storage (its folder made when it listed it: see `test_inprocess_data`).
    staged = [] if running.in_process else sorted([task.payload_id, *task.data_dependencies])
    assert report["files"] == staged
    assert report["deps"] == dict(zip(task.data_dependencies, ["first input", "second input"], strict=True))
    # Every field of the ProcessRequest.
    assert report["task_id"] == task.task_id
    assert report["session_id"] == task.session_id
    assert report["payload_id"] == task.payload_id
    assert report["expected"] == task.expected_output_ids
    assert Path(report["folder"]).parent == running.shared
    assert report["max_duration"] == 30 and report["priority"] == 2
    assert report["chunk"] == 4096
    # The folder is `<SharedCacheFolder>/<communication token>`, as upstream lays it out (PymoniK builds paths
    # from it), removed afterwards; the output file became the object.
    assert Path(report["folder"]) == running.shared / report["token"]
    await running.idle()
    assert not Path(report["folder"]).exists()
    # A short task reports its start with its outcome rather than in a round trip of its own.
    assert backend.started == []
    assert outcome.started_at is not None and abs(outcome.started_at - time.time()) < 60
    # Inputs staged, then the worker called, then its answer: the agent's own times, in that order.
    assert outcome.fetched_at is not None and outcome.processed_at is not None
    assert outcome.fetched_at <= outcome.started_at <= outcome.processed_at <= time.time()
    assert backend.acquisitions[0] == ("default", "agent-test", "host-test")
    assert not outcome.created_results and not outcome.subtasks


@pytest.mark.parametrize("running", ["worker"], indirect=True)  # an in-process run stages no files
async def test_the_files_of_a_task_become_the_input_files_of_the_next(running: Running) -> None:
    """Emptied and kept, not unlinked: see `SpareFiles`. The next task reads its own data, and nothing of
    the longer data the same files held before."""
    backend = running.backend
    first = await backend.submit({"action": "inspect"}, deps=[b"a long first input" * 100, b"second input"])
    assert (await backend.outcome(first)).kind is OutcomeKind.SUCCESS
    await running.idle()
    kept = spare_files(running)
    assert len(kept) == 3 and all(path.stat().st_size == 0 for path in kept)  # the payload and both inputs
    # The data folder too, emptied, for the next task's token.
    [folder] = spare_folders(running)
    assert list(folder.iterdir()) == []
    folder_inode = folder.stat().st_ino
    inodes = {path.stat().st_ino for path in kept}

    following = await backend.submit({"action": "inspect"}, deps=[b"short", b"x"])
    outcome = await backend.outcome(following)
    assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
    report = json.loads(await backend.data(outcome, following.task.expected_output_ids[0]))
    assert report["deps"] == dict(zip(following.task.data_dependencies, ["short", "x"], strict=True))
    assert Path(report["folder"]).name == report["token"]
    await running.idle()
    assert [path.stat().st_ino for path in spare_folders(running)] == [folder_inode]
    assert {path.stat().st_ino for path in spare_files(running)} == inodes, "the same files, kept again"


async def test_worker_side_results_and_subtasks(running: Running) -> None:
    backend = running.backend
    acquired = await backend.submit({"action": "subtasks"})
    parent = acquired.task
    outcome = await backend.outcome(acquired)
    assert outcome.kind is OutcomeKind.SUCCESS, outcome.message

    created = {r.name: r for r in outcome.created_results}
    assert set(created) == {"child-out", "child-payload", "report"}
    assert all(r.created_by == parent.task_id and r.session_id == parent.session_id for r in created.values())
    assert all(r.status == ResultStatus.CREATED for r in created.values())
    report = json.loads(await backend.data(outcome, created["report"].result_id))
    child_out, child_payload = report["child_out"], report["child_payload"]
    assert (child_out, child_payload) == (created["child-out"].result_id, created["child-payload"].result_id)
    assert await backend.data(outcome, child_payload) == b"child payload data"
    # Only data that was sent is completed: the parent's output is delegated, child-out is to come.
    assert {c.result_id for c in outcome.completions} == {child_payload, created["report"].result_id}

    delegate, producer = outcome.subtasks
    assert report["tasks"] == [delegate.task_id, producer.task_id]
    assert delegate.expected_output_ids == parent.expected_output_ids
    assert delegate.data_dependencies == [child_out]
    assert producer.expected_output_ids == [child_out]
    for sub in outcome.subtasks:
        assert sub.payload_id == child_payload
        assert sub.parent_task_ids == [parent.session_id, parent.task_id]
        assert sub.created_by == parent.task_id
        assert sub.initial_task_id == sub.task_id
        assert sub.status == TaskStatus.CREATING
    # Request options over session defaults, then the task's own on top.
    assert delegate.options == replace(session_options(session="s", level="request"), priority=1)
    assert producer.options == replace(
        session_options(session="s", level="task"), max_duration=7, max_retries=1, priority=3
    )


async def test_output_error_is_an_error_with_the_details(running: Running) -> None:
    acquired = await running.backend.submit({"action": "error", "details": "bad input: 42"})
    outcome = await running.backend.outcome(acquired)
    assert (outcome.kind, outcome.message) == (OutcomeKind.ERROR, "bad input: 42")
    assert not outcome.completions


async def test_exception_in_the_worker_is_a_crash(running: Running) -> None:
    acquired = await running.backend.submit({"action": "raise"})
    outcome = await running.backend.outcome(acquired)
    assert outcome.kind is OutcomeKind.CRASH
    assert outcome.message.startswith("Worker returned error INTERNAL: ")


async def test_get_resource_data(running: Running) -> None:
    backend = running.backend
    session_id = "session-" + new_id()
    first = await backend.add_data(session_id, b"resource one")
    second = await backend.add_data(session_id, b"resource two")
    acquired = await backend.submit({"action": "resource", "ids": [first, second]}, session_id=session_id)
    outcome = await backend.outcome(acquired)
    assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
    report = json.loads(await backend.data(outcome, acquired.task.expected_output_ids[0]))
    assert report[first] == "resource one" and report[second] == "resource two"
    assert report["missing"][0] == "NOT_FOUND"


async def test_protocol_errors_reach_the_worker(running: Running) -> None:
    acquired = await running.backend.submit({"action": "probe"})
    outcome = await running.backend.outcome(acquired)
    assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
    report = json.loads(await running.backend.data(outcome, acquired.task.expected_output_ids[0]))
    assert report["wrong_token"] == ["INVALID_ARGUMENT", "Wrong communication token"]
    assert report["missing_token"] == ["INVALID_ARGUMENT", "Missing communication token"]
    code, details = report["missing_file"]
    assert code == "INVALID_ARGUMENT" and acquired.task.expected_output_ids[0] in details
    assert report["wrong_partition"][0] == "FAILED_PRECONDITION"
    assert report["common_data"][0] == "UNIMPLEMENTED"
    assert not outcome.subtasks


async def test_the_agent_api_refuses_calls_between_tasks(running: Running) -> None:
    from armonik.protogen.worker.agent_service_pb2_grpc import AgentStub

    request = a.DataRequest(communication_token="t", result_id="r")
    if running.in_process:  # no server: the stub an in-process worker's TaskHandler calls, from a thread
        stub = InProcessAgentStub(running.agent.service, asyncio.get_running_loop())
        with pytest.raises(grpc.RpcError) as info:
            await asyncio.to_thread(stub.GetResourceData, request)
    else:
        async with grpc.aio.insecure_channel(running.settings.agent_channel.target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await AgentStub(channel).GetResourceData(request)
    assert (info.value.code(), info.value.details()) == (  # type: ignore[attr-defined]
        grpc.StatusCode.UNAVAILABLE,
        "No task is accepting request",
    )


async def test_missing_input_data_is_an_error_and_the_worker_is_not_called(running: Running) -> None:
    backend = running.backend
    acquired = await backend.submit({"action": "inspect"}, deps=[b"lost"])
    # Removed from the backend before the agent gets to it.
    del backend.results[acquired.task.data_dependencies[0]]
    outcome = await backend.outcome(acquired)
    assert outcome.kind is OutcomeKind.ERROR
    assert acquired.task.data_dependencies[0] in outcome.message
    await running.idle()
    assert files_left(running.shared) == []
