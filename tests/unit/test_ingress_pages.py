"""The ingress's own routes, in process (Starlette's test client): static files, the Admin GUI build with its
deep links, the log search and the metrics history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from armonik_core.ingress.app import build_app
from armonik_core.ingress.logsearch import Criteria, LogSearch
from armonik_core.ingress.monitoring import MetricsHistory, parse_samples
from armonik_core.ingress.settings import IngressSettings


@pytest.fixture
def gui(tmp_path: Path) -> Path:
    build = tmp_path / "browser"
    for locale in ("en", "fr"):
        (build / locale).mkdir(parents=True)
        (build / locale / "index.html").write_text(f"<html>{locale} index</html>")
        (build / locale / "main.js").write_text(f"// {locale}")
    (tmp_path / "secret.txt").write_text("outside the build")
    return build


def client_for(settings: IngressSettings) -> Iterator[TestClient]:
    with TestClient(build_app(settings), follow_redirects=False) as client:
        yield client


@pytest.fixture
def client(gui: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = IngressSettings.from_env(
        {
            "Ingress__AdminGuiDirectory": str(gui),
            "Ingress__Static": json.dumps({"environment.json": {"name": "dev"}, "gui_configuration": {}}),
            "Ingress__LogsDirectory": str(tmp_path / "logs"),
        }
    )
    yield from client_for(settings)


def test_static_files(client: TestClient) -> None:
    assert client.get("/static/environment.json").json() == {"name": "dev"}
    assert client.get("/static/gui_configuration").json() == {}
    assert client.get("/static/other").status_code == 404


def test_admin_gui_files_and_deep_links(client: TestClient) -> None:
    assert client.get("/").headers["location"] == "/admin/"
    assert client.get("/admin/").headers["location"] == "/admin/en/"
    assert client.get("/admin/de/sessions").headers["location"] == "/admin/en/"
    assert client.get("/admin/fr/main.js").text == "// fr"
    deep = client.get("/admin/en/sessions/abc")
    assert deep.status_code == 200 and deep.text == "<html>en index</html>"
    assert deep.headers["cache-control"] == "no-cache"
    # No way out of the build: a path outside it is a deep link like any other.
    escaped = client.get("/admin/en/..%2F..%2Fsecret.txt")
    assert "outside" not in escaped.text


def test_without_a_build_admin_is_the_console() -> None:
    for client in client_for(IngressSettings.from_env({})):
        assert client.get("/admin/en/").headers["location"] == "/console/"
        assert client.get("/console").headers["location"] == "/console/"
        page = client.get("/console/")
        assert page.status_code == 200 and 'src="static/console.js"' in page.text
        script = client.get("/console/static/console.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert client.get("/healthz").text == "Healthy\n"
        assert client.get("/static/environment.json").json()["name"] == "ArmoniK"


def test_not_a_grpc_web_request(client: TestClient) -> None:
    answer = client.post(
        "/armonik.api.grpc.v1.sessions.Sessions/GetSession",
        content=b"{}",
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 415


def line(t: str, level: str, message: str, **extra: str) -> str:
    return json.dumps({"@t": t, "@l": level, "@m": message, **extra}) + "\n"


def test_log_search(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "control-plane.log").write_text(
        line("2026-01-01T00:00:01Z", "INFO", "session created", session_id="s-1")
        + "not json\n"
        + line("2026-01-01T00:00:03Z", "ERROR", "task failed", task_id="t-9", session_id="s-1")
    )
    (logs / "default-0-polling-agent.log").write_text(
        line("2026-01-01T00:00:02Z", "WARNING", "slow", task_id="t-9")
    )
    search = LogSearch(logs)
    assert search.processes() == ["control-plane", "default-0-polling-agent"]
    found = search.search(Criteria(task="t-9"))
    assert [(e["process"], e["@m"]) for e in found] == [
        ("control-plane", "task failed"),
        ("default-0-polling-agent", "slow"),
    ]
    assert [e["@m"] for e in search.search(Criteria(level="WARNING"))] == ["task failed", "slow"]
    assert [
        e["@m"] for e in search.search(Criteria(session="s-1", process="control-plane", text="CREATED"))
    ] == ["session created"]
    assert len(search.search(Criteria(limit=1))) == 1
    assert Criteria.from_query({"limit": "100000"}).limit == 2000


async def test_metrics_history() -> None:
    text = (
        "# HELP armonik_tasks_completed x\n# TYPE armonik_tasks_completed gauge\narmonik_tasks_completed 4\n"
    )
    assert parse_samples(text) == {"armonik_tasks_completed": 4.0}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=text)

    history = MetricsHistory("http://exporter/metrics", 1.0, 2)
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        for _ in range(3):
            await history.sample(http)
    assert len(history.samples) == 2 and history.last_error is None
    assert history.samples[-1][1]["armonik_tasks_completed"] == 4.0
