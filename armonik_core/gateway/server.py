"""The compute gateway's server side, registered on the control plane's gRPC server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from armonik_core.adapters.queue.base import Lease
from armonik_core.gateway import codec
from armonik_core.services.backends import Backends
from armonik_core.services.errors import status_for

log = logging.getLogger("armonik.gateway")

SERVICE = "armonik_py.ComputeGateway"
#: The agents' exchanges, one long-lived stream per agent (see `polling_agent.gateway_backend`).
EXCHANGE_STREAM = "ExchangeStream"
#: How long a message stays leased to an agent without a heartbeat before another agent may take it.
LEASE_SECONDS = 15.0
#: While waiting for work, look at the queue this often anyway (expired leases come back without a publish).
RECHECK_SECONDS = 1.0

Handler = Callable[[Any], Awaitable[Any]]
T = TypeVar("T")


@dataclass(slots=True)
class _Holding:
    """A task handed to an agent: its current queue lease, and when the agent last renewed it."""

    agent: str
    lease: Lease
    renewed_at: float


class ComputeGateway:
    """Serves the polling agents. It keeps the queue lease of every task it handed out, so that a message a
    broker delivers again while the task's agent still renews it (the gateway's connection to the broker was
    lost and the broker requeued what it had delivered) becomes that task's new lease instead of a second run
    of the task."""

    def __init__(self, backends: Backends, lease_seconds: float = LEASE_SECONDS) -> None:
        self._b = backends
        self._lease_seconds = lease_seconds
        self._held: dict[str, _Holding] = {}
        self._renewals: set[asyncio.Future[None]] = set()
        #: Exchange streams waiting for their agent's next request (ended at once on shutdown).
        self._idle_streams: set[asyncio.Task[Any]] = set()
        self._closing = False

    def shutdown(self) -> None:
        """End the agents' exchange streams and long polls now, so that the server stops without waiting
        out its grace period: a stream ends between two exchanges (an exchange under way is answered
        first), a long poll returns no task. Agents open a new stream to the next control plane."""
        self._closing = True
        for stream in self._idle_streams:
            stream.cancel()
        self._b.dispatcher.wake_all()

    def _renewed(self, renewal: asyncio.Future[None]) -> None:
        self._renewals.discard(renewal)
        if not renewal.cancelled() and renewal.exception() is not None:
            log.warning("could not renew leases: %s", renewal.exception())

    def _holding(self, lease: Lease, agent: str | None) -> _Holding | None:
        """The task's holding when `agent` holds it (None: an agent of an older gateway, or a late agent)."""
        holding = self._held.get(lease.message.task_id)
        return holding if holding is not None and agent in (None, holding.agent) else None

    async def _still_held(self, lease: Lease) -> bool:
        """A task delivered again while its agent keeps renewing it: the new delivery becomes its lease (the
        old one, if the queue still knows it, is a duplicate and is acknowledged)."""
        holding = self._held.get(lease.message.task_id)
        if holding is None or time.monotonic() - holding.renewed_at > self._lease_seconds:
            return False
        log.info(
            "task %s delivered again while agent %s holds it: kept with that agent",
            lease.message.task_id,
            holding.agent,
        )
        previous, holding.lease = holding.lease, lease
        await self._b.queue.ack([previous])
        return True

    async def acquire(self, request: dict[str, Any]) -> dict[str, Any] | None:
        acquired = await self._acquire_many({**request, "max_tasks": 1})
        return acquired[0] if acquired else None

    async def _take(self, lease: Lease, agent: str, hostname: str) -> dict[str, Any] | None:
        if await self._still_held(lease):
            return None
        outcome = await self._b.state.acquire_task(lease.message.task_id, agent, hostname)
        await self._b.dispatcher.publish(outcome.to_enqueue)
        if outcome.task is None or outcome.session is None:
            self._held.pop(lease.message.task_id, None)
            await self._b.queue.ack([lease])
            return None
        self._held[lease.message.task_id] = _Holding(agent, lease, time.monotonic())
        return {
            "task": codec.task_to_json(outcome.task),
            "session_options": codec.options_to_json(outcome.session.options),
            "session_partitions": outcome.session.partition_ids,
            "lease": codec.lease_to_json(lease),
            "inputs": [codec.result_to_json(r) for r in outcome.inputs],
        }

    async def start(self, request: dict[str, Any]) -> bool:
        return await self._b.state.start_task(
            request["task_id"], request["agent_id"], request.get("fetched_at"), request.get("started_at")
        )

    async def heartbeat(self, request: dict[str, Any]) -> list[str]:
        agent, now = request.get("agent_id"), time.monotonic()
        leases = []
        for lease in map(codec.lease_from_json, request["leases"]):
            holding = self._holding(lease, agent)
            if holding is not None:
                holding.renewed_at = now
                lease = holding.lease
            leases.append(lease)
        # Renewed in the background: a queue that is slow to answer (a broker reconnecting) must not hold up
        # the heartbeat, whose arrival is what proves the agent still holds its tasks.
        renewal = asyncio.ensure_future(self._b.queue.renew(leases, self._lease_seconds))
        self._renewals.add(renewal)
        renewal.add_done_callback(self._renewed)
        return sorted(await self._b.state.cancelled_tasks([lease.message.task_id for lease in leases]))

    async def finish(self, request: dict[str, Any]) -> None:
        await self._b.queue.ack([await self._record(request)])

    async def _record(self, request: dict[str, Any]) -> Lease:
        """Record an agent's outcome; returns the lease to acknowledge."""
        lease = codec.lease_from_json(request["lease"])
        holding = self._holding(lease, request["agent_id"])
        if holding is not None:  # the current lease; a late agent's own (stale) lease acks nothing
            lease = holding.lease
        outcome = codec.outcome_from_json(request["outcome"])
        messages = await self._b.state.finish_task(lease.message.task_id, request["agent_id"], outcome)
        await self._b.dispatcher.publish(messages)
        if holding is not None:
            self._held.pop(lease.message.task_id, None)
        return lease

    async def exchange(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """An agent's outcomes and its next tasks in one round trip. The outcomes are applied side by side,
        so the state store commits them together, and their leases acknowledged in one call (one broker
        operation, not one per task); one that fails is logged and does not hold back the rest (its task's
        lease runs out and another agent retries it)."""
        finished = request.get("finished") or []
        if finished:
            done = await _side_by_side([self._record(item) for item in finished])
            recorded = [lease for lease in done if isinstance(lease, Lease)]
            for item, failure in zip(finished, done, strict=True):
                if isinstance(failure, BaseException):
                    log.error("could not apply an outcome of agent %s: %s", item.get("agent_id"), failure)
            if recorded:
                try:
                    await self._b.queue.ack(recorded)
                except Exception as exc:  # the outcomes are recorded: a message back in the queue is skipped
                    log.warning("could not acknowledge %d finished tasks: %s", len(recorded), exc)
        wanted = request.get("acquire")
        if not wanted:
            return []
        return await self._acquire_many(wanted)

    async def _acquire_many(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        partition, agent, hostname = request["partition_id"], request["agent_id"], request["hostname"]
        limit = max(1, int(request.get("max_tasks", 1)))
        deadline = time.monotonic() + float(request.get("wait_seconds", 0))
        while True:
            seen = self._b.dispatcher.publications(partition)
            leases = await self._b.queue.pull(partition, limit, self._lease_seconds, agent)
            if leases:
                taken = await _side_by_side([self._take(lease, agent, hostname) for lease in leases])
                acquired = [item for item in taken if isinstance(item, dict)]
                failures = [item for item in taken if isinstance(item, BaseException)]
                if failures and not acquired:
                    raise failures[0]
                for failure in failures:  # its lease runs out and the task goes to another agent
                    log.error("could not hand a task to agent %s: %s", agent, failure)
                if acquired:
                    return acquired
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing:
                return []
            await self._b.dispatcher.wait_for_publication(partition, min(remaining, RECHECK_SECONDS), seen)

    async def get_results(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        return [codec.result_to_json(r) for r in await self._b.state.get_results(request["result_ids"])]

    async def exchange_stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """An agent's exchanges, answered one by one in order on its stream. A failed exchange ends the
        stream with the status a unary call would have had; the agent opens a new one."""
        handler = asyncio.current_task()
        assert handler is not None
        pending = requests.__aiter__()
        while not self._closing:
            self._idle_streams.add(handler)
            try:
                request = await pending.__anext__()
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                # Cancelled by `shutdown`: end the call normally. A cancelled handler that lets its
                # cancellation through leaves the call open (grpc.aio sends no status), and the server would
                # wait out its grace period for it.
                if self._closing:
                    return
                raise
            finally:
                self._idle_streams.discard(handler)
            yield await _answer(EXCHANGE_STREAM, self.exchange, request, context)

    def handlers(self) -> dict[str, Handler]:
        return {
            "Acquire": self.acquire,
            "Start": self.start,
            "Heartbeat": self.heartbeat,
            "Finish": self.finish,
            "Exchange": self.exchange,  # the unary form, as agents of earlier versions call it
            "GetResults": self.get_results,
        }


async def _side_by_side(jobs: list[Coroutine[Any, Any, T]]) -> list[T | BaseException]:
    """`asyncio.gather(*jobs, return_exceptions=True)`, awaited directly when there is one job (an agent
    taking tasks one at a time): a task and two turns of the loop less on the round trip."""
    if len(jobs) == 1:
        try:
            return [await jobs[0]]
        except Exception as exc:
            return [exc]
    return await asyncio.gather(*jobs, return_exceptions=True)


async def _answer(name: str, handler: Handler, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    """The handler's reply to `request`, encoded; a failure aborts the call with the status it maps to."""
    try:
        return codec.dumps(await handler(codec.loads(request)))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        code, message = status_for(exc)
        if code is grpc.StatusCode.INTERNAL:
            log.exception("compute gateway %s failed", name)
        await context.abort(code, message)
        raise AssertionError("unreachable") from exc


def _rpc(name: str, handler: Handler) -> grpc.RpcMethodHandler:
    async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return await _answer(name, handler, request, context)

    return grpc.unary_unary_rpc_method_handler(call)


def add_gateway(server: grpc.aio.Server, gateway: ComputeGateway) -> None:
    handlers = {name: _rpc(name, fn) for name, fn in gateway.handlers().items()}
    handlers[EXCHANGE_STREAM] = grpc.stream_stream_rpc_method_handler(gateway.exchange_stream)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
