"""The console's JSON endpoints against a real control plane process (Starlette's test client in front of the
console application, the official SDK setting up the data): tables with the API's filters, sort and paging,
session and task actions with the API's errors, task detail, result download, health."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import SessionStatus, TaskDefinition, TaskStatus
from starlette.testclient import TestClient

from armonik_graph.console.app import create_app
from armonik_graph.source import ApiSource
from tests.support import options

ACTION = {"x-armonik-console": "1"}


@pytest.fixture
def client(channel: grpc.Channel) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSource(channel))) as c:
        yield c


def _session_with_tasks(channel: grpc.Channel, count: int) -> tuple[str, list[str], bytes, str]:
    """A session with `count` submitted tasks, one uploaded payload (its bytes and id)."""
    sessions, results, tasks = ArmoniKSessions(channel), ArmoniKResults(channel), ArmoniKTasks(channel)
    sid = sessions.create_session(options(application_name="console-app"), partition_ids=["default"])
    data = b"\x00console bytes\xff" * 1000
    payload = results.create_results({"payload": data}, sid)["payload"].result_id
    outputs = results.create_results_metadata([f"out-{i}" for i in range(count)], sid)
    definitions = [
        TaskDefinition(payload_id=payload, expected_output_ids=[outputs[f"out-{i}"].result_id])
        for i in range(count)
    ]
    submitted = tasks.submit_tasks(sid, definitions)
    return sid, [t.id for t in submitted], data, payload


def test_tables_filter_sort_and_page_through_the_api(client: TestClient, channel: grpc.Channel) -> None:
    sid, task_ids, _, payload = _session_with_tasks(channel, 5)
    other, _, _, _ = _session_with_tasks(channel, 1)

    sessions = client.get("/api/tables/sessions", params={"id": sid, "exact": "1"}).json()
    assert sessions["total"] == 1 and sessions["rows"][0]["session_id"] == sid
    assert sessions["rows"][0]["status"] == "SESSION_STATUS_RUNNING"
    part = client.get("/api/tables/sessions", params={"id": sid[-12:]}).json()
    assert sid in {r["session_id"] for r in part["rows"]} and other not in {
        r["session_id"] for r in part["rows"]
    }

    page0 = client.get(
        "/api/tables/tasks", params={"session": sid, "page_size": 2, "sort": "task_id", "order": "asc"}
    )
    page2 = client.get(
        "/api/tables/tasks",
        params={"session": sid, "page_size": 2, "page": 2, "sort": "task_id", "order": "asc"},
    )
    assert page0.json()["total"] == 5
    assert [r["id"] for r in page0.json()["rows"]] == sorted(task_ids)[:2]
    assert [r["id"] for r in page2.json()["rows"]] == sorted(task_ids)[4:]
    assert (
        client.get("/api/tables/tasks", params={"session": sid, "status": "completed"}).json()["total"] == 0
    )
    by_app = client.get("/api/tables/tasks", params={"session": sid, "application": "console-a"}).json()
    assert by_app["total"] == 5

    results = client.get("/api/tables/results", params={"session": sid, "id": payload, "exact": "1"}).json()
    assert results["total"] == 1 and results["rows"][0]["status"] == "RESULT_STATUS_COMPLETED"
    partitions = client.get("/api/tables/partitions").json()
    assert "default" in {r["id"] for r in partitions["rows"]}
    applications = client.get("/api/tables/applications", params={"application": "console-a"}).json()
    assert {r["name"] for r in applications["rows"]} == {"console-app"}


def test_bad_queries_are_400_with_a_message(client: TestClient) -> None:
    for params, words in (
        ({"status": "SOON"}, "unknown status"),
        ({"page": "x"}, "whole numbers"),
        ({"page_size": "100000"}, "page_size"),
        ({"sort": "colour"}, "cannot sort by"),
        ({"order": "up"}, "asc or desc"),
    ):
        answer = client.get("/api/tables/tasks", params=params)
        assert answer.status_code == 400 and words in answer.json()["error"], (params, answer.text)
    assert client.get("/api/tables/pods").status_code == 404


def test_actions_need_the_console_header_and_show_the_api_errors(
    client: TestClient, channel: grpc.Channel
) -> None:
    sid, task_ids, _, _ = _session_with_tasks(channel, 2)
    assert client.post(f"/api/sessions/{sid}/cancel").status_code == 403  # no header: another origin's form
    assert client.post(f"/api/sessions/{sid}/explode", headers=ACTION).status_code == 404

    cancelled = client.post(f"/api/tasks/{task_ids[0]}/cancel", headers=ACTION)
    assert cancelled.status_code == 200, cancelled.text
    assert ArmoniKTasks(channel).get_task(task_ids[0]).status in (TaskStatus.CANCELLING, TaskStatus.CANCELLED)

    assert client.post(f"/api/sessions/{sid}/pause", headers=ACTION).status_code == 200
    assert ArmoniKSessions(channel).get_session(sid).status == SessionStatus.PAUSED
    assert client.post(f"/api/sessions/{sid}/resume", headers=ACTION).status_code == 200
    assert client.post(f"/api/sessions/{sid}/cancel", headers=ACTION).status_code == 200
    assert ArmoniKSessions(channel).get_session(sid).status == SessionStatus.CANCELLED
    # The API refuses to resume a cancelled session: its status and message come back.
    refused = client.post(f"/api/sessions/{sid}/resume", headers=ACTION)
    assert refused.status_code in (400, 409), refused.text
    assert refused.json()["code"] in ("FAILED_PRECONDITION", "INVALID_ARGUMENT")
    missing = client.post("/api/sessions/no-such-session/cancel", headers=ACTION)
    assert missing.status_code == 404 and "NOT_FOUND" in missing.json()["error"]


def test_task_detail_download_and_health(client: TestClient, channel: grpc.Channel) -> None:
    sid, task_ids, data, payload = _session_with_tasks(channel, 1)
    detail = client.get(f"/api/tasks/{task_ids[0]}").json()
    assert detail["id"] == task_ids[0] and detail["session_id"] == sid
    assert detail["status"] == "TASK_STATUS_SUBMITTED" and "created_at" in detail
    assert client.get("/api/tasks/no-such-task").status_code == 404

    download = client.get(f"/api/results/{payload}/data")
    assert download.status_code == 200 and download.content == data
    assert "attachment" in download.headers["content-disposition"]
    assert client.get("/api/results/no-such-result/data").status_code == 404

    health = client.get("/api/health").json()
    assert health["services"] and all(
        s["healthy"] == "HEALTH_STATUS_ENUM_HEALTHY" for s in health["services"]
    )
