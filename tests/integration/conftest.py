"""Fixtures of the integration suites: the official client classes, and no INTERNAL answer ever."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks

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
