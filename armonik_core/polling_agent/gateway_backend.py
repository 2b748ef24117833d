"""The agents' side of the compute gateway: a ComputeBackend that talks to the control plane."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from armonik_core.domain.outcomes import TaskOutcome
from armonik_core.domain.records import Result
from armonik_core.gateway import codec
from armonik_core.gateway.server import SERVICE
from armonik_core.polling_agent.backend import AcquiredTask, AcquireRequest, ComputeBackend
from armonik_core.polling_agent.settings import AgentSettings
from armonik_core.tls import ClientTlsSettings, aio_channel


class GatewayBackend(ComputeBackend):
    def __init__(self, endpoint: str, agent_id: str, tls: ClientTlsSettings | None = None) -> None:
        self._agent_id = agent_id
        self._channel = aio_channel(endpoint, tls)
        self._calls = {
            name: self._channel.unary_unary(f"/{SERVICE}/{name}")
            for name in ("Acquire", "Start", "Heartbeat", "Finish", "Exchange", "GetResults")
        }

    async def _call(self, name: str, request: dict[str, Any], timeout: float | None = 30.0) -> Any:
        reply = await self._calls[name](codec.dumps(request), timeout=timeout, wait_for_ready=True)
        return codec.loads(reply)

    async def acquire(
        self, partition_id: str, agent_id: str, hostname: str, wait_seconds: float
    ) -> AcquiredTask | None:
        request = _acquire_request(partition_id, agent_id, hostname, wait_seconds)
        return _acquired(await self._call("Acquire", request, timeout=wait_seconds + 30.0))

    async def exchange(
        self, finished: Sequence[tuple[AcquiredTask, TaskOutcome]], request: AcquireRequest | None
    ) -> list[AcquiredTask]:
        message = {
            "finished": [self._finish_request(acquired, outcome) for acquired, outcome in finished],
            "acquire": None
            if request is None
            else {
                **_acquire_request(
                    request.partition_id, request.agent_id, request.hostname, request.wait_seconds
                ),
                "max_tasks": request.max_tasks,
            },
        }
        wait = request.wait_seconds if request is not None else 0.0
        replies = await self._call("Exchange", message, timeout=wait + 120.0)
        return [task for task in map(_acquired, replies) if task is not None]

    def _finish_request(self, acquired: AcquiredTask, outcome: TaskOutcome) -> dict[str, Any]:
        return {
            "lease": acquired.lease,
            "agent_id": self._agent_id,
            "outcome": codec.outcome_to_json(outcome),
        }

    async def start(
        self, acquired: AcquiredTask, fetched_at: float | None = None, started_at: float | None = None
    ) -> None:
        request = {
            "task_id": acquired.task.task_id,
            "agent_id": self._agent_id,
            "fetched_at": fetched_at,
            "started_at": started_at,
        }
        await self._call("Start", request)

    async def heartbeat(self, acquired: Sequence[AcquiredTask]) -> set[str]:
        if not acquired:
            return set()
        request = {"leases": [a.lease for a in acquired], "agent_id": self._agent_id}
        return set(await self._call("Heartbeat", request))

    async def finish(self, acquired: AcquiredTask, outcome: TaskOutcome) -> None:
        await self._call("Finish", self._finish_request(acquired, outcome), timeout=120.0)

    async def get_results(self, result_ids: Sequence[str]) -> list[Result]:
        return [
            codec.result_from_json(r)
            for r in await self._call("GetResults", {"result_ids": list(result_ids)})
        ]

    async def close(self) -> None:
        await self._channel.close()


def _acquire_request(partition_id: str, agent_id: str, hostname: str, wait_seconds: float) -> dict[str, Any]:
    return {
        "partition_id": partition_id,
        "agent_id": agent_id,
        "hostname": hostname,
        "wait_seconds": wait_seconds,
    }


def _acquired(reply: dict[str, Any] | None) -> AcquiredTask | None:
    if reply is None:
        return None
    return AcquiredTask(
        task=codec.task_from_json(reply["task"]),
        session_options=codec.options_from_json(reply["session_options"]),
        session_partitions=list(reply["session_partitions"]),
        lease=reply["lease"],
        inputs=[codec.result_from_json(r) for r in reply.get("inputs", [])],
    )


def connect_gateway_backend(settings: AgentSettings) -> ComputeBackend:
    """The backend of an agent of the local target: the control plane's compute gateway."""
    return GatewayBackend(settings.control_plane_endpoint, settings.agent_id, settings.control_plane_tls)
