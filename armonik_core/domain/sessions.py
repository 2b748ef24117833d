"""Session life cycle: which action is allowed from which status, and what it does to the session's tasks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from armonik_core.domain.errors import FailedPrecondition
from armonik_core.domain.records import Session
from armonik_core.domain.statuses import SessionStatus, TaskStatus


class SessionAction(str, Enum):
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    CLOSE = "close"
    PURGE = "purge"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class SessionTransition:
    allowed_from: frozenset[SessionStatus]
    target: SessionStatus


_ANY_LIVE = frozenset(
    {
        SessionStatus.RUNNING,
        SessionStatus.PAUSED,
        SessionStatus.CLOSED,
        SessionStatus.CANCELLED,
        SessionStatus.PURGED,
    }
)

TRANSITIONS: dict[SessionAction, SessionTransition] = {
    SessionAction.CANCEL: SessionTransition(
        frozenset({SessionStatus.RUNNING, SessionStatus.PAUSED, SessionStatus.CLOSED}),
        SessionStatus.CANCELLED,
    ),
    SessionAction.PAUSE: SessionTransition(frozenset({SessionStatus.RUNNING}), SessionStatus.PAUSED),
    SessionAction.RESUME: SessionTransition(frozenset({SessionStatus.PAUSED}), SessionStatus.RUNNING),
    SessionAction.CLOSE: SessionTransition(
        frozenset({SessionStatus.RUNNING, SessionStatus.PAUSED}), SessionStatus.CLOSED
    ),
    SessionAction.PURGE: SessionTransition(
        frozenset({SessionStatus.CLOSED, SessionStatus.CANCELLED}), SessionStatus.PURGED
    ),
    SessionAction.DELETE: SessionTransition(_ANY_LIVE, SessionStatus.DELETED),
}

#: Task statuses a session action moves, and where to. Tasks in other statuses are left alone.
PAUSE_TASKS = {TaskStatus.SUBMITTED: TaskStatus.PAUSED, TaskStatus.DISPATCHED: TaskStatus.PAUSED}
RESUME_TASKS = {TaskStatus.PAUSED: TaskStatus.SUBMITTED}


def apply_session_action(session: Session, action: SessionAction, now: float) -> Session:
    """Check that `action` is allowed and update the session record in place; returns it.

    Raises FailedPrecondition with the current status named, so a person sees why it was refused.
    """
    transition = TRANSITIONS[action]
    if session.status not in transition.allowed_from:
        allowed = ", ".join(sorted(s.name for s in transition.allowed_from))
        raise FailedPrecondition(
            f"Cannot {action.value} session {session.session_id}: it is {session.status.name}, "
            f"and {action.value} is only allowed from {allowed}"
        )
    session.status = transition.target
    if action is SessionAction.CANCEL:
        session.cancelled_at = now
        session.client_submission = False
        session.worker_submission = False
    elif action is SessionAction.CLOSE:
        session.closed_at = now
        session.client_submission = False
        session.worker_submission = False
    elif action is SessionAction.PURGE:
        session.purged_at = now
    elif action is SessionAction.DELETE:
        session.deleted_at = now
    return session


def check_submission_allowed(session: Session, by_worker: bool) -> None:
    """Refuse new tasks or results in a session that no longer accepts them."""
    if session.status not in (SessionStatus.RUNNING, SessionStatus.PAUSED):
        raise FailedPrecondition(
            f"Session {session.session_id} is {session.status.name}: it accepts no new tasks or results"
        )
    if by_worker and not session.worker_submission:
        raise FailedPrecondition(f"Worker submission is closed for session {session.session_id}")
    if not by_worker and not session.client_submission:
        raise FailedPrecondition(f"Client submission is closed for session {session.session_id}")


def stop_submission(session: Session, client: bool, worker: bool) -> Session:
    """StopSubmission only ever closes a door; it never reopens one."""
    if session.status in (SessionStatus.PURGED, SessionStatus.DELETED):
        raise FailedPrecondition(f"Session {session.session_id} is {session.status.name}")
    if client:
        session.client_submission = False
    if worker:
        session.worker_submission = False
    return session
