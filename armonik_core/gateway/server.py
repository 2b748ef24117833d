"""The compute gateway's server side: the polling agents' calls, served on a listener of their own.

Who may call what (see docs/security.md): every call carries an agent credential, which names the caller's
partition (`auth.GatewayKeys.authenticate`); an agent acquires only tasks of that partition, and gets for each a
lease handle (`auth.GatewayKeys.issue`) without which the task cannot be started, renewed or finished, nor
its session's results read. An outcome names only what its run produced (`outcomes.check_outcome`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from armonik_core.adapters.queue.base import Lease, QueueMessage
from armonik_core.adapters.state.base import TaskAcquisition
from armonik_core.domain.errors import InvalidArgument
from armonik_core.domain.outcomes import TaskOutcome
from armonik_core.domain.records import Result, Session, Task
from armonik_core.gateway import codec
from armonik_core.gateway.auth import GatewayKeys, Handle, Issued, PermissionDenied, Unauthenticated
from armonik_core.gateway.outcomes import RunScope, check_outcome
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

#: A handler: the decoded request and the partition of the agent that called.
Handler = Callable[[Any, str], Awaitable[Any]]


@dataclass(slots=True)
class _Holding:
    """A task handed to an agent: its current queue lease, and when the agent last renewed it."""

    agent: str
    lease: Lease
    renewed_at: float
    #: The run's nonce (from its lease handle): a handle of an earlier run of the task does not match.
    nonce: str
    scope: RunScope


#: Per outcome of an exchange: the lease to acknowledge, None (a stale handle, ignored), or its failure.
_Answers = list[Lease | None | Exception]
#: An outcome to record: its position in the exchange, its run's handle and holding, and the outcome.
_Run = tuple[int, Handle, _Holding | None, TaskOutcome]
_T = TypeVar("_T")


def _asked(request: dict[str, Any], caller: str) -> tuple[str, str, str, int]:
    """An acquisition's partition, agent id, hostname and number of tasks, when the caller may make it."""
    partition, agent, hostname = request["partition_id"], request["agent_id"], request["hostname"]
    if partition != caller:
        raise PermissionDenied(
            f"An agent of partition {caller!r} cannot take tasks of partition {partition!r}"
        )
    if not isinstance(agent, str) or not agent:
        raise InvalidArgument("agent_id must be a non-empty string")
    return partition, agent, hostname, max(1, int(request.get("max_tasks", 1)))


async def _settled(work: Awaitable[_T]) -> _T | Exception:
    """What `work` returns, or the exception it raises."""
    try:
        return await work
    except Exception as exc:
        return exc


class ComputeGateway:
    """Serves the polling agents. It keeps the queue lease of every task it handed out, so that a message a
    broker delivers again while the task's agent still renews it (the gateway's connection to the broker was
    lost and the broker requeued what it had delivered) becomes that task's new lease instead of a second run
    of the task."""

    def __init__(self, backends: Backends, keys: GatewayKeys, lease_seconds: float = LEASE_SECONDS) -> None:
        self._b = backends
        self.keys = keys
        self._lease_seconds = lease_seconds
        self._held: dict[str, _Holding] = {}
        #: The handles of the runs in `_held`, by nonce.
        self._issued: dict[str, Issued] = {}
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

    def _hold(self, task_id: str, holding: _Holding, handle: str) -> None:
        """Hold a run, with the lease handle issued for it: sent back unchanged, it needs no MAC recomputed
        (`auth.Issued`)."""
        self._drop(task_id)
        self._held[task_id] = holding
        self._issued[holding.nonce] = Issued(handle, Handle(holding.lease, holding.agent, holding.nonce))

    def _drop(self, task_id: str) -> None:
        holding = self._held.pop(task_id, None)
        if holding is not None:
            self._issued.pop(holding.nonce, None)

    def _checked(self, handle: object, agent_id: object, partition: str) -> Handle:
        """The run a lease handle names (`GatewayKeys.check`, with the handles of the runs held)."""
        return self.keys.check(handle, agent_id, partition, self._issued)

    def _holding(self, handle: Handle) -> _Holding | None:
        """The task's holding when the handle's run holds it (None: a late agent, or the control plane
        restarted since the task was taken)."""
        holding = self._held.get(handle.task_id)
        if holding is None or holding.agent != handle.agent_id or holding.nonce != handle.nonce:
            return None
        return holding

    def _stale(self, handle: Handle) -> bool:
        """The task is held by another run (another agent, or a later acquisition): the handle is stale."""
        holding = self._held.get(handle.task_id)
        return holding is not None and (holding.agent != handle.agent_id or holding.nonce != handle.nonce)

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

    async def acquire(self, request: dict[str, Any], partition: str) -> codec.Handover | None:
        acquired = await self._acquire_many({**request, "max_tasks": 1}, partition)
        return acquired[0] if acquired else None

    async def _take(
        self, leases: list[Lease], agent: str, hostname: str
    ) -> list[codec.Handover | None | Exception]:
        """Hand the tasks of `leases` to the agent, in one call to the state store: for each lease, what the
        agent gets, None when its task is not to run (its message is spent and acknowledged), or the exception
        that lease's acquisition raised (its lease runs out and the task goes to another agent)."""
        answers: list[codec.Handover | None | Exception] = [None] * len(leases)
        wanted: list[int] = []
        for i, lease in enumerate(leases):
            try:
                if not await self._still_held(lease):
                    wanted.append(i)
            except Exception as exc:
                answers[i] = exc
        requests = [(leases[i].message.task_id, agent, hostname) for i in wanted]
        outcomes = await self._b.state.acquire_tasks(requests) if requests else []
        failed = await self._publish(
            [o.to_enqueue if isinstance(o, TaskAcquisition) else [] for o in outcomes]
        )
        spent: list[int] = []
        for i, outcome in zip(wanted, outcomes, strict=True):
            if isinstance(outcome, Exception) or (failed is not None and outcome.to_enqueue):
                answers[i] = outcome if isinstance(outcome, Exception) else failed
            elif outcome.task is None or outcome.session is None:
                self._drop(leases[i].message.task_id)
                spent.append(i)
            else:
                answers[i] = self._hand_over(leases[i], agent, outcome.task, outcome.session, outcome.inputs)
        if spent:
            try:
                await self._b.queue.ack([leases[i] for i in spent])
            except Exception as exc:
                for i in spent:
                    answers[i] = exc
        return answers

    def _hand_over(
        self, lease: Lease, agent: str, task: Task, session: Session, inputs: list[Result]
    ) -> codec.Handover:
        """What the agent gets for a task it acquired, with the lease handle issued for the run."""
        handle, nonce = self.keys.issue(lease, agent)
        scope = RunScope(task.task_id, task.session_id, frozenset(task.expected_output_ids))
        self._hold(lease.message.task_id, _Holding(agent, lease, time.monotonic(), nonce, scope), handle)
        return codec.Handover(task, session.options, session.partition_ids, handle, inputs, nonce)

    async def _publish(self, produced: list[list[QueueMessage]]) -> Exception | None:
        """Publish the messages state changes produced, in one call; the exception when that fails (those
        of the changes that produced messages then fail with it, as each would have alone)."""
        messages = [message for some in produced for message in some]
        if not messages:
            return None
        try:
            await self._b.dispatcher.publish(messages)
        except Exception as exc:
            return exc
        return None

    async def start(self, request: dict[str, Any], partition: str) -> bool:
        handle = self._checked(request.get("lease"), request.get("agent_id"), partition)
        if self._stale(handle):
            log.info(
                "start of task %s by agent %s ignored: a later run holds it", handle.task_id, handle.agent_id
            )
            return False
        return await self._b.state.start_task(
            handle.task_id, handle.agent_id, request.get("fetched_at"), request.get("started_at")
        )

    async def heartbeat(self, request: dict[str, Any], partition: str) -> list[str]:
        agent, now = request.get("agent_id"), time.monotonic()
        leases = []
        for handle in [self._checked(text, agent, partition) for text in request["leases"]]:
            lease = handle.lease
            holding = self._holding(handle)
            if holding is not None:
                holding.renewed_at = now
                lease = holding.lease
            elif self._stale(handle):  # a late agent does not keep another run's lease alive
                continue
            leases.append(lease)
        # Renewed in the background: a queue that is slow to answer (a broker reconnecting) must not hold up
        # the heartbeat, whose arrival is what proves the agent still holds its tasks.
        renewal = asyncio.ensure_future(self._b.queue.renew(leases, self._lease_seconds))
        self._renewals.add(renewal)
        renewal.add_done_callback(self._renewed)
        return sorted(await self._b.state.cancelled_tasks([lease.message.task_id for lease in leases]))

    async def finish(self, request: dict[str, Any], partition: str) -> None:
        [lease] = await self._record([request], partition)
        if isinstance(lease, Exception):
            raise lease
        if lease is not None:
            await self._b.queue.ack([lease])

    async def _record(self, items: list[dict[str, Any]], partition: str) -> list[Lease | None | Exception]:
        """Record agents' outcomes, in one call to the state store: for each, the lease to acknowledge, None
        for a stale handle (ignored), or the exception that outcome raised."""
        return await self._apply(*await self._check_all(items, partition))

    async def _check_all(self, items: list[dict[str, Any]], partition: str) -> tuple[_Answers, list[_Run]]:
        """The outcomes checked (`_check`): an answer per item (an exception for one refused), and the runs
        to record, with their items' positions."""
        answers: _Answers = [None] * len(items)
        runs: list[_Run] = []
        for i, item in enumerate(items):
            try:
                run = await self._check(item, partition)
            except Exception as exc:
                answers[i] = exc
                continue
            if run is not None:
                runs.append((i, *run))
        return answers, runs

    async def _apply(self, answers: _Answers, runs: list[_Run]) -> _Answers:
        """The checked runs' outcomes recorded in one call to the state store (see `_record`)."""
        requests = [(handle.task_id, handle.agent_id, outcome) for _, handle, _, outcome in runs]
        recorded = await self._b.state.finish_tasks(requests) if requests else []
        failed = await self._publish([[] if isinstance(r, Exception) else r for r in recorded])
        for (i, handle, holding, _), messages in zip(runs, recorded, strict=True):
            if isinstance(messages, Exception) or (failed is not None and messages):
                answers[i] = messages if isinstance(messages, Exception) else failed
                continue
            if holding is not None:
                self._drop(handle.task_id)
            answers[i] = holding.lease if holding is not None else handle.lease
        return answers

    async def _check(
        self, request: dict[str, Any], partition: str
    ) -> tuple[Handle, _Holding | None, TaskOutcome] | None:
        """An agent's outcome checked against its lease handle: the handle, the run's holding (None when
        the gateway does not hold it in memory) and the outcome, or None when the handle is stale."""
        handle = self._checked(request.get("lease"), request.get("agent_id"), partition)
        holding = self._holding(handle)
        if holding is None and self._stale(handle):
            # A late agent: the task was taken again since (by another agent, or by this one anew). Its
            # outcome must not overwrite the new run's, and its lease is not the one to acknowledge.
            log.info(
                "outcome of task %s from agent %s ignored: a later run holds it",
                handle.task_id,
                handle.agent_id,
            )
            return None
        outcome = codec.outcome_from_wire(request["outcome"])
        if outcome.created_results or outcome.completions or outcome.subtasks:
            check_outcome(handle, holding.scope if holding else await self._scope(handle), outcome)
        return handle, holding, outcome

    async def _scope(self, handle: Handle) -> RunScope:
        """The scope of a run the gateway does not hold in memory (taken before a restart)."""
        task = await self._b.state.get_task(handle.task_id)
        if task.session_id != handle.session_id:
            raise PermissionDenied(f"Task {handle.task_id} is not in session {handle.session_id}")
        return RunScope(task.task_id, task.session_id, frozenset(task.expected_output_ids))

    async def exchange(self, request: dict[str, Any], partition: str) -> list[codec.Handover]:
        """An agent's outcomes and its next tasks in one round trip. The outcomes are recorded in one call
        to the state store, and their leases acknowledged in one call (one broker operation, not one per
        task); one that fails is logged and does not hold back the rest (its task's lease runs out and
        another agent retries it). When tasks wait in the queue, they are taken alongside (`_finish_and_take`)."""
        finished = request.get("finished") or []
        wanted = request.get("acquire")
        if finished:
            acquired = await self._finish_and_take(finished, wanted, partition)
            if acquired:
                return acquired
        if not wanted:
            return []
        return await self._acquire_many(wanted, partition)

    async def _finish_and_take(
        self, finished: list[dict[str, Any]], wanted: dict[str, Any] | None, partition: str
    ) -> list[codec.Handover] | None:
        """Record the outcomes; and when the agent also asks for tasks and some wait in the queue, take them
        in the same turn of the event loop, so that the outcomes and the acquisitions go to the state store
        together (one transaction, one commit, instead of one each). Each part stays apart: its own unit of
        work, its failure its own (outcomes that could not be recorded are logged, tasks taken are handed
        over all the same). The tasks taken (None: none, the caller goes on as without outcomes)."""
        answers, runs = await self._check_all(finished, partition)
        leases = await self._ready(wanted, partition) if runs else []
        if not leases:
            await self._acknowledge(finished, await self._apply(answers, runs))
            return None
        assert wanted is not None
        agent = wanted["agent_id"]
        if {lease.message.task_id for lease in leases} & {handle.task_id for _, handle, _, _ in runs}:
            # A task finished in this exchange was delivered again: its outcome is recorded first.
            recorded = await _settled(self._apply(answers, runs))
            taken = await _settled(self._take(leases, agent, wanted["hostname"]))
        else:
            # The acquisitions run beside: the outcomes' unit of work is submitted first (this coroutine runs
            # until it waits for its commit), the acquisitions' next, in the same turn of the loop.
            take = asyncio.ensure_future(self._take(leases, agent, wanted["hostname"]))
            try:
                recorded = await _settled(self._apply(answers, runs))
            except asyncio.CancelledError:
                take.cancel()
                raise
            taken = await _settled(take)
        if isinstance(recorded, Exception):
            log.error("could not record %d outcomes: %s", len(runs), recorded)
        else:
            await self._acknowledge(finished, recorded)
        if isinstance(taken, Exception):
            raise taken
        return self._acquired(taken, agent)

    async def _ready(self, wanted: dict[str, Any] | None, partition: str) -> list[Lease]:
        """The leases of the tasks waiting for the agent's partition, pulled without waiting; none for an
        acquisition the agent may not make (`_acquire_many` refuses it, after the outcomes are recorded)."""
        try:
            partition, agent, _, limit = _asked(wanted, partition) if wanted else ("", "", "", 0)
        except Exception:
            return []
        return await self._b.queue.pull(partition, limit, self._lease_seconds, agent) if limit else []

    async def _acknowledge(self, finished: list[dict[str, Any]], done: _Answers) -> None:
        """Log the outcomes refused or not recorded; acknowledge the leases of those recorded, in one call."""
        recorded = [lease for lease in done if isinstance(lease, Lease)]
        for item, failure in zip(finished, done, strict=True):
            if isinstance(failure, PermissionDenied):
                log.warning("outcome of agent %.80s refused: %s", item.get("agent_id"), failure)
            elif isinstance(failure, BaseException):
                log.error("could not apply an outcome of agent %s: %s", item.get("agent_id"), failure)
        if recorded:
            try:
                await self._b.queue.ack(recorded)
            except Exception as exc:  # the outcomes are recorded: a message back in the queue is skipped
                log.warning("could not acknowledge %d finished tasks: %s", len(recorded), exc)

    def _acquired(self, taken: list[codec.Handover | None | Exception], agent: str) -> list[codec.Handover]:
        """What `_take` handed over; its first failure when it handed over nothing but failed."""
        acquired = [item for item in taken if isinstance(item, codec.Handover)]
        failures = [item for item in taken if isinstance(item, BaseException)]
        if failures and not acquired:
            raise failures[0]
        for failure in failures:  # its lease runs out and the task goes to another agent
            log.error("could not hand a task to agent %s: %s", agent, failure)
        return acquired

    async def _acquire_many(self, request: dict[str, Any], caller: str) -> list[codec.Handover]:
        partition, agent, hostname, limit = _asked(request, caller)
        deadline = time.monotonic() + float(request.get("wait_seconds", 0))
        while True:
            seen = self._b.dispatcher.publications(partition)
            leases = await self._b.queue.pull(partition, limit, self._lease_seconds, agent)
            if leases:
                acquired = self._acquired(await self._take(leases, agent, hostname), agent)
                if acquired:
                    return acquired
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing:
                return []
            await self._b.dispatcher.wait_for_publication(partition, min(remaining, RECHECK_SECONDS), seen)

    async def get_results(self, request: dict[str, Any], partition: str) -> list[Result]:
        """Result records for a run: those of its task's session only (others are left out, as unknown)."""
        handle = self._checked(request.get("lease"), request.get("agent_id"), partition)
        found = await self._b.state.get_results(request["result_ids"])
        mine = [r for r in found if r.session_id == handle.session_id]
        if len(mine) < len(found):
            log.warning(
                "agent %.80s asked for %d results outside session %s: left out",
                handle.agent_id,
                len(found) - len(mine),
                handle.session_id,
            )
        return mine

    async def exchange_stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """An agent's exchanges, answered one by one in order on its stream. A failed exchange ends the
        stream with the status a unary call would have had; the agent opens a new one."""
        handler = asyncio.current_task()
        assert handler is not None
        try:
            partition = self.keys.authenticate(context.invocation_metadata())
        except Unauthenticated as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise AssertionError("unreachable") from exc
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
            yield await _answer(EXCHANGE_STREAM, self.exchange, request, partition, context)

    def handlers(self) -> dict[str, Handler]:
        return {
            "Acquire": self.acquire,
            "Start": self.start,
            "Heartbeat": self.heartbeat,
            "Finish": self.finish,
            "Exchange": self.exchange,  # the unary form, as agents of earlier versions call it
            "GetResults": self.get_results,
        }


def _status(exc: Exception) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED, str(exc)
    if isinstance(exc, PermissionDenied):
        return grpc.StatusCode.PERMISSION_DENIED, str(exc)
    if isinstance(exc, codec.UndecodableMessage):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, KeyError):
        return grpc.StatusCode.INVALID_ARGUMENT, f"The request has no field {exc}"
    return status_for(exc)


async def _answer(
    name: str, handler: Handler, request: bytes, partition: str, context: grpc.aio.ServicerContext
) -> bytes:
    """The handler's reply to `request`, encoded; a failure aborts the call with the status it maps to."""
    try:
        return codec.dumps(await handler(codec.loads_map(request), partition))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        code, message = _status(exc)
        if code is grpc.StatusCode.INTERNAL:
            log.exception("compute gateway %s failed", name)
        elif code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
            log.warning("compute gateway %s refused: %s", name, message)
        await context.abort(code, message)
        raise AssertionError("unreachable") from exc


def _rpc(name: str, handler: Handler, keys: GatewayKeys) -> grpc.RpcMethodHandler:
    async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            partition = keys.authenticate(context.invocation_metadata())
        except Unauthenticated as exc:
            log.warning("compute gateway %s refused: %s", name, exc)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise AssertionError("unreachable") from exc
        return await _answer(name, handler, request, partition, context)

    return grpc.unary_unary_rpc_method_handler(call)


def add_gateway(server: grpc.aio.Server, gateway: ComputeGateway) -> None:
    handlers = {name: _rpc(name, fn, gateway.keys) for name, fn in gateway.handlers().items()}
    handlers[EXCHANGE_STREAM] = grpc.stream_stream_rpc_method_handler(gateway.exchange_stream)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
