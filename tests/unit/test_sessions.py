"""Session life cycle transitions."""

import pytest

from armonik_core.domain.errors import FailedPrecondition
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.records import Session
from armonik_core.domain.sessions import (
    TRANSITIONS,
    SessionAction,
    apply_session_action,
    check_submission_allowed,
    stop_submission,
)
from armonik_core.domain.statuses import SessionStatus


def session(status: SessionStatus = SessionStatus.RUNNING) -> Session:
    return Session("s1", status, ["default"], TaskOptions(partition_id="default"), created_at=100.0)


@pytest.mark.parametrize(
    ("action", "source", "target"),
    [
        (SessionAction.PAUSE, SessionStatus.RUNNING, SessionStatus.PAUSED),
        (SessionAction.RESUME, SessionStatus.PAUSED, SessionStatus.RUNNING),
        (SessionAction.CLOSE, SessionStatus.RUNNING, SessionStatus.CLOSED),
        (SessionAction.CLOSE, SessionStatus.PAUSED, SessionStatus.CLOSED),
        (SessionAction.CANCEL, SessionStatus.RUNNING, SessionStatus.CANCELLED),
        (SessionAction.CANCEL, SessionStatus.CLOSED, SessionStatus.CANCELLED),
        (SessionAction.PURGE, SessionStatus.CLOSED, SessionStatus.PURGED),
        (SessionAction.PURGE, SessionStatus.CANCELLED, SessionStatus.PURGED),
        (SessionAction.DELETE, SessionStatus.PURGED, SessionStatus.DELETED),
        (SessionAction.DELETE, SessionStatus.RUNNING, SessionStatus.DELETED),
    ],
)
def test_allowed_transitions(action: SessionAction, source: SessionStatus, target: SessionStatus) -> None:
    assert apply_session_action(session(source), action, now=200.0).status == target


def test_every_disallowed_transition_is_refused_with_the_current_status() -> None:
    refused = 0
    for action, transition in TRANSITIONS.items():
        for status in SessionStatus:
            if status is SessionStatus.UNSPECIFIED or status in transition.allowed_from:
                continue
            with pytest.raises(FailedPrecondition, match=status.name):
                apply_session_action(session(status), action, now=200.0)
            refused += 1
    assert refused >= 20


def test_close_and_cancel_record_time_and_shut_submission() -> None:
    closed = apply_session_action(session(), SessionAction.CLOSE, now=250.0)
    assert closed.closed_at == 250.0
    assert closed.duration == 150.0
    assert not closed.client_submission and not closed.worker_submission
    cancelled = apply_session_action(session(), SessionAction.CANCEL, now=300.0)
    assert cancelled.cancelled_at == 300.0
    assert cancelled.duration == 200.0


def test_submission_rules() -> None:
    check_submission_allowed(session(), by_worker=False)
    check_submission_allowed(session(SessionStatus.PAUSED), by_worker=True)
    with pytest.raises(FailedPrecondition, match="CLOSED"):
        check_submission_allowed(session(SessionStatus.CLOSED), by_worker=False)
    stopped = stop_submission(session(), client=True, worker=False)
    with pytest.raises(FailedPrecondition, match="Client submission is closed"):
        check_submission_allowed(stopped, by_worker=False)
    check_submission_allowed(stopped, by_worker=True)
    stop_submission(stopped, client=False, worker=True)
    with pytest.raises(FailedPrecondition, match="Worker submission is closed"):
        check_submission_allowed(stopped, by_worker=True)
    assert stop_submission(stopped, client=False, worker=False).client_submission is False
