"""Why a result is not ready, asked of a session whose first task hangs, through the library and `armonik-graph`.

A chain hang -> middle -> last runs on the graph tests' deployment; the hanging task runs until the test creates
its release file. While it hangs, the blocking set of the last result must be exactly the three tasks, the
hanging one running (and stuck past a zero threshold), the two others waiting for inputs. The CLI commands run
in-process (typer's CliRunner) with AKCONFIG naming the deployment's armonik-cli.yaml, as a user would.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import grpc
import pytest
import rustworkx
from armonik.protogen.client.tasks_service_pb2_grpc import TasksStub
from armonik.protogen.common.result_status_pb2 import ResultStatus
from armonik.protogen.common.task_status_pb2 import TaskStatus
from armonik.protogen.common.tasks_common_pb2 import GetTaskRequest
from typer.testing import CliRunner

from armonik_graph import ApiSource, LiveGraph, blocking, critical_path
from armonik_graph.cli import app
from armonik_graph.critical import Step
from armonik_graph.model import seconds
from tests.e2e.conftest import Deployment
from tests.graph.sessions import SessionBuilder

pytestmark = pytest.mark.timeout(300)
WAIT = 90.0
#: How long, at least, the hanging task hangs once seen running.
HELD = 1.0


def cli(deployment: Deployment, *args: str) -> str:
    done = CliRunner().invoke(
        app, list(args), env={"AKCONFIG": str(deployment.cli_config), "AK_ENDPOINT": "", "COLUMNS": "250"}
    )
    assert done.exit_code == 0, f"armonik-graph {' '.join(args)}: {done.output}\n{done.exception!r}"
    return done.output


def test_the_hanging_task_is_named_until_it_is_released(
    graph_deployment: Deployment, channel: grpc.Channel, scratch: Path
) -> None:
    b = SessionBuilder(channel)
    release = scratch / "release"
    hang, hang_out = b.task("hang", {"do": "hang", "file": str(release)})
    middle, middle_out = b.task("middle", {"do": "ok"}, [hang_out])
    last, last_out = b.task("last", {"do": "ok"}, [middle_out])
    with LiveGraph(ApiSource(channel), b.session_id) as live:
        live.wait_ready(30)
        running = live.wait_for(
            lambda g: g.status[g.index(hang) or 0] == TaskStatus.TASK_STATUS_PROCESSING, WAIT
        )
        assert running, "the hanging task never started"
        seen_running = time.time()
        with live.lock:
            report = blocking(live.graph, last_out, stuck_after=0.0)
        assert not report.ready and report.producer == last
        assert sorted(report.blocking_tasks) == sorted([hang, middle, last])
        assert [t.task_id for t in report.running] == [hang]
        assert {t.task_id: t.missing_inputs for t in report.waiting} == {
            middle: [hang_out],
            last: [middle_out],
        }
        assert [t.task_id for t in report.stuck] == [hang]
        assert report.unfinished_results == [last_out, middle_out, hang_out]
        assert report.doomed_by == [] and report.awaiting_upload == []

        # The same through the CLI, which finds the session from the result alone.
        answer = json.loads(cli(graph_deployment, "blocking", last_out, "--json", "--stuck-after", "0"))
        assert sorted(answer["blocking_tasks"]) == sorted([hang, middle, last])
        assert [t["task_id"] for t in answer["running"]] == [hang]
        printed = cli(graph_deployment, "blocking", last_out)
        assert hang in printed and "PROCESSING" in printed

        time.sleep(max(0.0, seen_running + HELD - time.time()))  # it hangs that long, however fast the CLI
        released = time.time()
        release.touch()
        assert live.wait_for(
            lambda g: (
                g.status[g.index(last_out) or 0] == ResultStatus.RESULT_STATUS_COMPLETED
                and g.status[g.index(last) or 0] == TaskStatus.TASK_STATUS_COMPLETED
            ),
            WAIT,
        )
        with live.lock:
            assert blocking(live.graph, last_out).ready
            path = critical_path(live.graph)
    assert [s.task_id for s in path.steps] == [hang, middle, last]
    spent = path.waiting_seconds + path.queue_seconds + path.running_seconds
    assert path.steps[0].running_seconds >= released - seen_running and spent <= path.span_seconds + 0.05, (
        path
    )
    _check_recorded_run(channel, path.steps[0], released - seen_running)
    _check_cli_after_the_run(graph_deployment, b.session_id, [hang, middle, last], last_out)


def _check_recorded_run(channel: grpc.Channel, step: Step, hung: float) -> None:
    """The hanging task's record: it ran (started_at: the worker was called) at least as long as the test saw
    it hang, and the live graph's step has the record's times, not when the events arrived."""
    task = TasksStub(channel).GetTask(GetTaskRequest(task_id=step.task_id)).task
    started, processed, ended = (seconds(t) for t in (task.started_at, task.processed_at, task.ended_at))
    assert seconds(task.fetched_at) <= started < processed <= ended, task
    assert processed - started >= hung and ended - started >= hung, task
    assert (step.started, step.ended) == (started, ended)


def _check_cli_after_the_run(deployment: Deployment, sid: str, chain: list[str], last_out: str) -> None:
    shown = json.loads(cli(deployment, "show", sid, "--json"))
    assert shown["tasks"] == 3 and shown["task_statuses"] == {"COMPLETED": 3}
    assert [level["width"] for level in shown["levels"]] == [1, 1, 1]
    assert "COMPLETED" in cli(deployment, "show", sid)

    path = json.loads(cli(deployment, "critical-path", sid, "--json"))
    assert [s["task_id"] for s in path["steps"]] == chain
    assert path["queue_seconds"] >= 0 and path["running_seconds"] > 0
    assert chain[-1] in cli(deployment, "critical-path", sid)

    exported = json.loads(cli(deployment, "export", sid, "--format", "json"))
    assert {n["id"] for n in exported["nodes"] if n["kind"] == "task"} == set(chain)
    assert len(exported["nodes"]) == 3 + 6  # 3 payloads, 3 outputs
    written = deployment.root / f"{sid}.graphml"
    cli(deployment, "export", sid, "--format", "graphml", "--output", str(written))
    (read,) = rustworkx.read_graphml(str(written))  # what GraphML readers make of it
    assert read.num_nodes() == 9 and read.num_edges() == 8
    assert {n["id"] for n in read.nodes() if n["kind"] == "task"} == set(chain)
    dot = cli(deployment, "export", sid, "--format", "dot")
    assert dot.startswith("digraph") and dot.count("->") == 8
    svg = ET.fromstring(cli(deployment, "export", sid, "--format", "svg", "--result", last_out))
    nodes = svg.findall(".//{http://www.w3.org/2000/svg}g[@class='node task']")
    assert sorted(n.get("data-id") or "" for n in nodes) == sorted(chain)

    watched = cli(deployment, "watch", sid, "--until-done", "--timeout", "30")
    assert "100%" in watched


def test_the_cli_says_what_is_wrong(graph_deployment: Deployment, tmp_path: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(
        app, ["blocking", "no-such-result"], env={"AKCONFIG": str(graph_deployment.cli_config)}
    )
    assert unknown.exit_code == 1 and "not found" in unknown.output
    nowhere = runner.invoke(
        app, ["show", "x"], env={"AKCONFIG": str(tmp_path / "missing.yaml"), "AK_ENDPOINT": ""}
    )
    assert nowhere.exit_code == 2 and "cannot read the configuration file" in nowhere.output
    bad = runner.invoke(
        app, ["export", "x", "--format", "png"], env={"AKCONFIG": str(graph_deployment.cli_config)}
    )
    assert bad.exit_code == 2 and "unknown format" in bad.output
