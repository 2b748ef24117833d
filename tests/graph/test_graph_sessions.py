"""armonik_graph on real sessions of a local deployment: reconstruction, live updates, blocking, critical path.

The sessions are submitted through the official SDK and run by the graph tests' worker (tests/graph/
graph_worker.py); the library reads them through the API only. The live graph (rebuilt, then following the
events) must end equal to a fresh rebuild; so must every intermediate listing of the run with all of the
session's recorded events applied over it in random orders (the race between listing and subscribing).
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import grpc
import pytest
from armonik.protogen.common.result_status_pb2 import ResultStatus
from armonik.protogen.common.task_status_pb2 import TaskStatus

from armonik_graph import ApiSource, Edge, LiveGraph, SessionGraph, blocking, critical_path, rebuild, summary
from armonik_graph.analysis import FAILED, task_levels
from tests.e2e.conftest import Deployment
from tests.graph.sessions import Recorder, SessionBuilder, rich_session

pytestmark = pytest.mark.timeout(300)
WAIT = 90.0


def _result_is(graph: SessionGraph, result_id: str, status: int) -> bool:
    node = graph.index(result_id)
    return node is not None and graph.status[node] == status


def _task_is(graph: SessionGraph, task_id: str, status: int) -> bool:
    node = graph.index(task_id)
    return node is not None and graph.status[node] == status


def _kinds(graph: SessionGraph, source: str) -> dict[str, Edge]:
    """Edges out of `source`: target id -> what the edge means."""
    node = graph.index(source)
    assert node is not None, source
    return {graph.ids[b]: graph.edge_kind(a, b, e) for a, b, e in graph.graph.out_edges(node)}


def _retry_of(graph: SessionGraph, task_id: str) -> str:
    retries = [t for t, kind in _kinds(graph, task_id).items() if kind == Edge.RETRY]
    assert len(retries) == 1, retries
    return retries[0]


def test_a_session_with_every_shape_is_rebuilt_and_followed(
    graph_deployment: Deployment, channel: grpc.Channel, scratch: Path
) -> None:
    b = SessionBuilder(channel)
    sid = b.session_id
    recorder = Recorder(graph_deployment.endpoint, sid)
    live = LiveGraph(ApiSource(channel), sid).start()
    listings: list[SessionGraph] = []
    try:
        live.wait_ready(30)
        ids = rich_session(b, scratch)
        listings.append(rebuild(ApiSource(channel), sid))
        assert live.wait_for(
            lambda g: _result_is(g, ids["join_out"], ResultStatus.RESULT_STATUS_COMPLETED), WAIT
        )
        assert live.wait_for(
            lambda g: _result_is(g, ids["doomed_out"], ResultStatus.RESULT_STATUS_ABORTED), WAIT
        )
        listings.append(rebuild(ApiSource(channel), sid))

        # A dependency not uploaded yet: the last task waits for it, and only for it.
        with live.lock:
            report = blocking(live.graph, ids["late_out"])
        assert not report.ready and report.producer == ids["after-late"]
        assert report.awaiting_upload == [ids["late"]]
        assert [t.task_id for t in report.waiting] == [ids["after-late"]]
        assert report.waiting[0].missing_inputs == [ids["late"]]
        assert report.running == report.queued == report.doomed_by == []

        # The error cascade: the failed task dooms what needs its output, with its error message.
        assert live.wait_for(lambda g: (g.index(ids["fail"]) or 0) in g.errors, 10)
        with live.lock:
            doomed = blocking(live.graph, ids["doomed_out"])
        assert [t.task_id for t in doomed.doomed_by] == [ids["fail"]]
        assert doomed.doomed_by[0].status == "ERROR"
        assert [t.task_id for t in doomed.cascaded] == [ids["doomed"]]
        assert f"boom from {ids['fail']}" in (doomed.doomed_by[0].error or "")

        b.upload(ids["late"])
        assert live.wait_for(
            lambda g: _result_is(g, ids["late_out"], ResultStatus.RESULT_STATUS_COMPLETED), WAIT
        )
        listings.append(fresh := rebuild(ApiSource(channel), sid))
        expected = fresh.snapshot()
        assert live.wait_for(lambda g: g.snapshot() == expected, 10), "the live graph differs from a rebuild"
    finally:
        live.stop()
        events = recorder.stop()

    _check_reconstruction(fresh, b, ids)
    _check_levels_and_critical_path(fresh, ids)
    _check_orders_of_events(events, listings, expected, sid)


def _check_reconstruction(graph: SessionGraph, b: SessionBuilder, ids: dict[str, str]) -> None:
    """What was submitted is there, with the relations the run added (subtasks, delegation, retry)."""
    for task_id, (payload, outputs, deps) in b.submitted.tasks.items():
        node = graph.index(task_id)
        assert node is not None and graph.is_task(node)
        assert sorted(graph.ids[r] for r in graph.inputs(node)) == sorted([payload, *deps])
        for output in outputs:
            assert output in _kinds(graph, task_id)
    for name in ("a", "join", "after-late"):
        assert _task_is(graph, ids[name], TaskStatus.TASK_STATUS_COMPLETED), name

    # Subtasking: the split task made 2 workers and an aggregation, which took its output over.
    children = [t for t, kind in _kinds(graph, ids["split"]).items() if kind == Edge.SUBTASK]
    assert len(children) == 3
    split_out = graph.index(ids["split_out"])
    assert split_out is not None
    aggregation = graph.ids[graph.owner[split_out]]
    assert aggregation in children
    assert _kinds(graph, ids["split"])[ids["split_out"]] == Edge.DELEGATED
    assert _kinds(graph, aggregation)[ids["split_out"]] == Edge.OUTPUT
    parts = {graph.ids[r] for r in graph.inputs(graph.index(aggregation) or 0)}
    workers = set(children) - {aggregation}
    assert {graph.ids[graph.owner[graph.index(p) or 0]] for p in parts if p in graph.ids} >= workers

    # Retry: the first attempt crashed, a new attempt took its output over and completed.
    assert _task_is(graph, ids["flaky"], TaskStatus.TASK_STATUS_RETRIED)
    retry = _retry_of(graph, ids["flaky"])
    assert _task_is(graph, retry, TaskStatus.TASK_STATUS_COMPLETED)
    flaky_out = graph.index(ids["flaky_out"])
    assert flaky_out is not None and graph.ids[graph.producer(flaky_out)] == retry

    # Error cascade.
    assert _task_is(graph, ids["fail"], TaskStatus.TASK_STATUS_ERROR)
    doomed = graph.index(ids["doomed"])
    assert doomed is not None and graph.status[doomed] in FAILED
    assert _result_is(graph, ids["doomed_out"], ResultStatus.RESULT_STATUS_ABORTED)
    fail = graph.index(ids["fail"])
    assert fail is not None and f"boom from {ids['fail']}" in graph.errors[fail]


def _check_levels_and_critical_path(graph: SessionGraph, ids: dict[str, str]) -> None:
    levels = {graph.ids[n]: lvl for n, lvl in task_levels(graph).items()}
    # a; split/flaky/fail; split's workers/doomed; aggregation; join; after-late
    assert (levels[ids["a"]], levels[ids["split"]], levels[ids["join"]], levels[ids["after-late"]]) == (
        0,
        1,
        4,
        5,
    )
    view = summary(graph)
    assert view.depth == 6 and view.levels[0]["width"] == 1
    assert view.tasks == len(graph.tasks()) == 11  # 7 submitted, 3 subtasks, 1 retry
    path = critical_path(graph)
    names = [s.task_id for s in path.steps]
    assert names[0] == ids["a"] and names[-1] == ids["after-late"]
    assert ids["join"] in names
    assert path.span_seconds >= path.running_seconds > 0


def _check_orders_of_events(
    events: list[object], listings: list[SessionGraph], expected: dict[str, object], sid: str
) -> None:
    """All the recorded events over nothing, or over a listing taken during the run, in random orders."""
    assert events, "no event recorded"
    for seed in range(25):
        order = list(events)
        random.Random(seed).shuffle(order)
        graph = SessionGraph(sid)
        for event in order:
            graph.apply_event(event)
        assert graph.snapshot() == expected, f"events alone, order of seed {seed}"
        for i, listing in enumerate(listings):
            graph = listing.copy()
            for event in order:
                graph.apply_event(event)
            assert graph.snapshot() == expected, f"listing {i} then events, order of seed {seed}"


def test_the_live_graph_follows_a_session_across_a_restart_of_the_control_plane(
    graph_deployment: Deployment, channel: grpc.Channel
) -> None:
    """The event stream breaks when the control plane is killed; the supervisor starts it again, and the live
    graph subscribes and rebuilds again by itself, then sees what is submitted after."""
    b = SessionBuilder(channel)
    _, first_out = b.task("first", {"do": "ok"})
    with LiveGraph(ApiSource(channel), b.session_id) as live:
        live.wait_ready(30)
        assert live.wait_for(lambda g: _result_is(g, first_out, ResultStatus.RESULT_STATUS_COMPLETED), WAIT)
        before = graph_deployment.process("control-plane")
        os.kill(int(before["pid"]), signal.SIGKILL)
        deadline = time.monotonic() + WAIT
        while True:  # until the supervisor has started it again and it answers
            try:
                _, second_out = b.task("second", {"do": "ok"})
                break
            except grpc.RpcError as exc:
                assert time.monotonic() < deadline, f"the control plane did not come back: {exc.details()}"
                time.sleep(0.5)
        assert live.wait_for(lambda g: _result_is(g, second_out, ResultStatus.RESULT_STATUS_COMPLETED), WAIT)
        assert live.reconnects >= 1 and live.error is None
        assert live.wait_for(
            lambda g: g.snapshot() == rebuild(ApiSource(channel), b.session_id).snapshot(), 10
        )
