"""Registering the client services behind a guard that refuses bad requests before any handler runs.

The generated `add_*Servicer_to_server` functions give grpc the message's `FromString` as deserializer: bytes
that do not decode make grpc answer UNKNOWN and log a traceback at ERROR (unary requests), or raise
`DecodeError` inside the handler's stream, which the handler reports as INTERNAL (streamed requests). A
client's mistake deserves neither. Here every method of a service is registered from its descriptor with:

- a deserializer that never raises: undecodable bytes become an `Undecodable` marker, which the method's
  wrapper answers with INVALID_ARGUMENT and one WARNING line, whether it came as the request or as any
  message of a request stream;
- the request's ids bounded (`Submitter__MaxIdLength`) and a List* request's `page_size` bounded
  (`Submitter__MaxPageSize`), INVALID_ARGUMENT with what the bound is;
- methods the servicer leaves to the generated base class (legacy ones such as `Results.WatchResults`)
  answering UNIMPLEMENTED without reading the request or logging above DEBUG.

Which string fields are ids is decided once per message type from the field names (`*_id`, `*_ids`, `id`,
`ids`, `session(s)`, `data_dependencies`, `expected_output_keys`), and only the fields that can hold one are
visited per request, so a batch of task submissions costs a few microseconds per task.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from armonik_core.control_plane.limits import InputLimits
from armonik_core.ids import quote_id

log = logging.getLogger("armonik.control_plane")

_ID_NAMES = frozenset({"id", "ids", "session", "sessions", "data_dependencies", "expected_output_keys"})


class Undecodable:
    """What the tolerant deserializer returns for bytes that are not a message of the expected type."""

    __slots__ = ("type_name", "reason")

    def __init__(self, type_name: str, reason: str) -> None:
        self.type_name = type_name
        self.reason = reason


class Refused(Exception):
    """A request the guard answers with INVALID_ARGUMENT and this message."""


def _tolerant(message_class: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    parse = message_class.FromString
    name = message_class.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Message | Undecodable:
        try:
            return parse(data)
        except Exception as exc:  # DecodeError, or RecursionError on absurd nesting
            # DecodeError's text repeats the type name: keep what went wrong ("Wire format was corrupt").
            return Undecodable(name, str(exc).rsplit(": ", 1)[-1][:200] or type(exc).__name__)

    return deserialize


def _is_id_field(field: FieldDescriptor) -> bool:
    name = field.name
    return field.type == FieldDescriptor.TYPE_STRING and (
        name in _ID_NAMES or name.endswith("_id") or name.endswith("_ids")
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    """The fields of a message type to visit: its id fields and the message fields that may hold ids."""

    ids: tuple[tuple[str, bool], ...]
    messages: tuple[tuple[str, bool, _Plan], ...]
    page_size: bool


def _plan(descriptor: Descriptor, cache: dict[str, _Plan | None]) -> _Plan | None:
    """None when a message of this type can hold neither an id nor a page size."""
    name = descriptor.full_name
    if name in cache:
        return cache[name]
    cache[name] = None  # a recursive type is visited once
    ids: list[tuple[str, bool]] = []
    messages: list[tuple[str, bool, _Plan]] = []
    for field in descriptor.fields:
        if _is_id_field(field):
            ids.append((field.name, field.is_repeated))
        elif (kind := field.message_type) is not None and not kind.GetOptions().map_entry:
            inner = _plan(kind, cache)
            if inner is not None:
                messages.append((field.name, field.is_repeated, inner))
    page_size = "page_size" in descriptor.fields_by_name and descriptor.name.startswith("List")
    plan = _Plan(tuple(ids), tuple(messages), page_size) if ids or messages or page_size else None
    cache[name] = plan
    return plan


def _check(message: Any, plan: _Plan, limits: InputLimits) -> None:
    bound = limits.max_id_length
    for name, repeated in plan.ids:
        if repeated:
            values = getattr(message, name)
            if not values or max(map(len, values)) <= bound:
                continue
            value = next(v for v in values if len(v) > bound)
        else:
            value = getattr(message, name)
            if len(value) <= bound:
                continue
        raise Refused(
            f"{name} {quote_id(value)} is too long: ids are at most {bound} characters (ArmoniK ids are UUIDs of 36)"
        )
    for name, repeated, inner in plan.messages:
        if repeated:
            for item in getattr(message, name):
                _check(item, inner, limits)
        elif message.HasField(name):
            _check(getattr(message, name), inner, limits)
    if plan.page_size:
        size = message.page_size
        if size > limits.max_page_size:
            raise Refused(
                f"page_size {size} is above the maximum of {limits.max_page_size} "
                "(Submitter__MaxPageSize): ask for smaller pages"
            )
        if size < 0 or message.page < 0:
            raise Refused("page and page_size must not be negative")


class _Method:
    """What the guard knows of one method: its name, its request checks, and the limits."""

    def __init__(self, method: MethodDescriptor, limits: InputLimits, cache: dict[str, _Plan | None]) -> None:
        self.name = f"{method.containing_service.name}.{method.name}"
        self.limits = limits
        self.plan = _plan(method.input_type, cache)

    def problem(self, request: Any, context: grpc.aio.ServicerContext) -> str | None:
        """Why the request cannot be served (None: it can); logged here, on the spot."""
        if isinstance(request, Undecodable):
            log.warning(
                "%s refused: undecodable request (%s)",
                self.name,
                request.reason,
                extra={"method": self.name, "peer": context.peer()},
            )
            return f"The request is not a valid {request.type_name} message ({request.reason})"
        if self.plan is not None:
            try:
                _check(request, self.plan, self.limits)
            except Refused as refused:
                log.info("%s refused: %s (INVALID_ARGUMENT)", self.name, refused, extra={"method": self.name})
                return str(refused)
        return None

    async def checked(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        """A request stream whose messages are checked as they come."""
        async for request in requests:
            if (problem := self.problem(request, context)) is not None:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
            yield request


def _unimplemented(name: str) -> Callable[..., Any]:
    """A handler for any kind of method: the request (or stream) is not read."""
    message = f"{name} is not implemented by this control plane"

    async def handler(_request: Any, context: grpc.aio.ServicerContext) -> None:
        log.debug("%s called: UNIMPLEMENTED", name)
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

    return handler


def _implemented(servicer: object, name: str) -> Callable[..., Any] | None:
    """The servicer's own method, or None when only the generated base class defines it."""
    method = getattr(servicer, name, None)
    if method is None or getattr(method, "__module__", "").endswith("_pb2_grpc"):
        return None
    return method  # type: ignore[no-any-return]


def _handler(method: MethodDescriptor, behavior: Callable[..., Any], guard: _Method) -> grpc.RpcMethodHandler:
    request = _tolerant(GetMessageClass(method.input_type))
    response = GetMessageClass(method.output_type).SerializeToString
    if method.client_streaming:

        async def stream_in(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            return await behavior(guard.checked(requests, context), context)

        async def stream_both(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            async for item in behavior(guard.checked(requests, context), context):
                yield item

        if method.server_streaming:
            return grpc.stream_stream_rpc_method_handler(stream_both, request, response)
        return grpc.stream_unary_rpc_method_handler(stream_in, request, response)

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if (problem := guard.problem(request, context)) is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        return await behavior(request, context)

    async def stream_out(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if (problem := guard.problem(request, context)) is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        async for item in behavior(request, context):
            yield item

    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(stream_out, request, response)
    return grpc.unary_unary_rpc_method_handler(unary, request, response)


def _unimplemented_handler(method: MethodDescriptor, name: str) -> grpc.RpcMethodHandler:
    request = _tolerant(GetMessageClass(method.input_type))
    response = GetMessageClass(method.output_type).SerializeToString
    handler = _unimplemented(name)
    kind = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(method.client_streaming, method.server_streaming)]
    return kind(handler, request, response)


def service_handlers(
    service: ServiceDescriptor, servicer: object, limits: InputLimits
) -> dict[str, grpc.RpcMethodHandler]:
    """The guarded handler of every method of `service`, by method name."""
    cache: dict[str, _Plan | None] = {}
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        behavior = _implemented(servicer, method.name)
        if behavior is None:
            handlers[method.name] = _unimplemented_handler(method, f"{service.name}.{method.name}")
        else:
            handlers[method.name] = _handler(method, behavior, _Method(method, limits, cache))
    return handlers


def service_of(servicer: object) -> ServiceDescriptor:
    """The service a servicer implements, from the generated `<Name>Servicer` base class it derives from."""
    for cls in type(servicer).__mro__:
        module = cls.__module__
        if module.endswith("_pb2_grpc") and cls.__name__.endswith("Servicer"):
            services = importlib.import_module(module.removesuffix("_grpc")).DESCRIPTOR.services_by_name
            service: ServiceDescriptor = services[cls.__name__.removesuffix("Servicer")]
            return service
    raise TypeError(f"{type(servicer).__name__} derives from no generated servicer")


def add_guarded(server: grpc.aio.Server, servicer: object, limits: InputLimits) -> None:
    """Serve `servicer` on `server` as the service it implements, every method behind the guard."""
    service = service_of(servicer)
    handlers = service_handlers(service, servicer, limits)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
