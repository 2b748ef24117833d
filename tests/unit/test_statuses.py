"""The domain's enums carry exactly the wire values of the official protos."""

from armonik.protogen.common import events_common_pb2, result_status_pb2, session_status_pb2, task_status_pb2

from armonik_core.domain.statuses import EventType, ResultStatus, SessionStatus, TaskStatus


def _proto_values(enum_type, prefix: str) -> dict[str, int]:
    return {name.removeprefix(prefix): value for name, value in enum_type.items()}


def test_task_status_matches_proto() -> None:
    assert {s.name: s.value for s in TaskStatus} == _proto_values(task_status_pb2.TaskStatus, "TASK_STATUS_")


def test_session_status_matches_proto() -> None:
    expected = _proto_values(session_status_pb2.SessionStatus, "SESSION_STATUS_")
    assert {s.name: s.value for s in SessionStatus} == expected


def test_result_status_matches_proto() -> None:
    expected = _proto_values(result_status_pb2.ResultStatus, "RESULT_STATUS_")
    assert {s.name: s.value for s in ResultStatus} == expected
    assert ResultStatus.NOTFOUND == 127


def test_event_types_match_proto() -> None:
    assert {e.name: e.value for e in EventType} == _proto_values(events_common_pb2.EventsEnum, "EVENTS_ENUM_")
