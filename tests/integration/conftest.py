"""Fixtures of the integration suites: the official client classes, and no INTERNAL answer ever."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks

from tests.integration.agent_harness import (
    WORKER_MODES,
    Running,
    Sockets,
    agent_settings,
    serving_worker,
    start_agent,
)
from tests.integration.agent_worker import process

try:
    from tests.support import internal_errors
except ImportError:  # run from inside tests/
    from support import internal_errors  # type: ignore[no-redef]


@pytest.fixture(autouse=True)
def no_internal_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """No request of a test that ran a control plane may end in an unhandled exception on the server."""
    # Asked for before the test runs, so that it is torn down after this check, not before.
    plane = request.getfixturevalue("control_plane") if "control_plane" in request.fixturenames else None
    yield
    if plane is not None:
        errors = internal_errors(plane.logs())
        assert not errors, "the control plane answered INTERNAL:\n" + "\n".join(errors)


@pytest.fixture
def sessions(channel: grpc.Channel) -> ArmoniKSessions:
    return ArmoniKSessions(channel)


@pytest.fixture
def results(channel: grpc.Channel) -> ArmoniKResults:
    return ArmoniKResults(channel)


@pytest.fixture
def tasks(channel: grpc.Channel) -> ArmoniKTasks:
    return ArmoniKTasks(channel)


@pytest.fixture(scope="module")
def sockets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sockets]:
    """The polling agent tests' worker process (`agent_worker`), one per module, on the sockets it serves."""
    yield from serving_worker(tmp_path_factory.mktemp("pa"))


@pytest.fixture(params=WORKER_MODES)
async def running(request: pytest.FixtureRequest, tmp_path: Path, sockets: Sockets) -> AsyncIterator[Running]:
    """A polling agent calling the module's worker, or its processor in-process: each test has its own."""
    started = await start_agent(
        agent_settings(tmp_path, sockets), process if request.param == "inprocess" else None
    )
    yield started
    await started.stop()
