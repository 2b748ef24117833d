"""Fuzzing every method of every client service against a real control plane process.

Two kinds of input, drawn by hypothesis within a fixed budget (the whole suite stays well under a minute and
a half on two cores):

- random bytes, as one message or as a stream of them;
- random VALID messages of each method's request type, built from the protobuf descriptors: every field may
  be set to a random value of its type (strings, numbers, enums including unknown values, nested messages,
  repeated fields, maps), so requests reach the handlers with ids, filters, sorts and pages nobody wrote.

The control plane must answer every call with a status a client can act on (never INTERNAL or UNKNOWN), stay
alive, and keep its resident memory bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api_methods import ApiMethod, call_raw, client_methods
from tests.conftest import ControlPlaneProcess
from tests.support import internal_errors

METHODS = [m for m in client_methods() if m.served]
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
#: Growth of the control plane's resident memory the whole suite may cause.
RSS_GROWTH_LIMIT_KB = 64 * 1024
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=False,
)

_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32, allow_nan=True),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_STRING: st.one_of(st.text(max_size=40), st.sampled_from(["", "default", "a" * 300])),
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
}


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-5, 50))
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_strategy(field.message_type, depth + 1)
    return _SCALARS[field.type]


def message_strategy(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Random messages of a type: each field set or not, to a random value of its type (three levels deep)."""
    cls = GetMessageClass(descriptor)
    if depth > 3:
        return st.just(cls())
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            fields[field.name] = st.dictionaries(_value(key, depth), _value(value, depth), max_size=3)
        elif field.is_repeated:
            fields[field.name] = st.lists(_value(field, depth), max_size=3)
        else:
            fields[field.name] = _value(field, depth)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        for name in draw(st.lists(st.sampled_from(sorted(fields)), unique=True)) if fields else []:
            value = draw(fields[name])
            field = descriptor.fields_by_name[name]
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                target = getattr(message, name)
                for k, v in value.items():
                    if field.message_type.fields_by_name["value"].message_type is not None:
                        target[k].CopyFrom(v)
                    else:
                        target[k] = v
            elif field.is_repeated:
                getattr(message, name).extend(value)
            elif field.message_type is not None:
                getattr(message, name).CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return build()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    process = ControlPlaneProcess(tmp_path_factory.mktemp("fuzz") / "data")
    process.start()
    assert process.process is not None
    start_rss = _rss_kb(process.process.pid)
    yield process
    alive = process.process.poll() is None
    growth = _rss_kb(process.process.pid) - start_rss if alive else 0
    process.kill()
    print(f"control plane resident memory: {start_rss} KiB before the fuzzing, grown by {growth} KiB")
    assert alive, f"the control plane died: {process.logs()[-2000:]}"
    assert growth < RSS_GROWTH_LIMIT_KB, f"resident memory grew by {growth} KiB"
    assert not internal_errors(process.logs()), internal_errors(process.logs())[:3]
    assert "Traceback" not in process.logs()


@pytest.fixture(scope="module")
def channel(plane: ControlPlaneProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(plane.endpoint) as ch:
        yield ch


def _assert_answered(
    method: ApiMethod, code: grpc.StatusCode, details: str, plane: ControlPlaneProcess
) -> None:
    assert code not in FORBIDDEN, f"{method}: {code.name} {details}"
    assert plane.process is not None and plane.process.poll() is None, f"{method} killed the control plane"


@FUZZ
@given(data=st.data())
def test_random_bytes_on_every_method(
    data: st.DataObject, channel: grpc.Channel, plane: ControlPlaneProcess
) -> None:
    method = data.draw(st.sampled_from(METHODS), label="method")
    messages = data.draw(st.lists(st.binary(max_size=256), min_size=1, max_size=3), label="messages")
    code, details = call_raw(channel, method, messages, timeout=5)
    _assert_answered(method, code, details, plane)


@pytest.mark.parametrize("method", METHODS, ids=str)
@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_random_valid_messages_on_every_method(
    method: ApiMethod, data: st.DataObject, channel: grpc.Channel, plane: ControlPlaneProcess
) -> None:
    strategy = message_strategy(method.descriptor.input_type)
    count = data.draw(st.integers(1, 3), label="count") if method.descriptor.client_streaming else 1
    messages = [data.draw(strategy, label="request").SerializeToString() for _ in range(count)]
    # Server-streamed calls that legitimately wait (events of a session) end at the deadline.
    code, details = call_raw(channel, method, messages, timeout=2)
    _assert_answered(method, code, details, plane)
