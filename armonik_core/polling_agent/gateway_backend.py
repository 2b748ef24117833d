"""The agents' side of the compute gateway: a ComputeBackend that talks to the control plane."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from armonik_core.domain.outcomes import TaskOutcome
from armonik_core.domain.records import Result
from armonik_core.gateway import codec
from armonik_core.gateway.server import SERVICE
from armonik_core.polling_agent.backend import AcquiredTask, ComputeBackend
from armonik_core.polling_agent.settings import AgentSettings


class GatewayBackend(ComputeBackend):
    def __init__(self, endpoint: str, agent_id: str) -> None:
        self._agent_id = agent_id
        self._channel = grpc.aio.insecure_channel(endpoint)
        self._calls = {
            name: self._channel.unary_unary(f"/{SERVICE}/{name}")
            for name in ("Acquire", "Start", "Heartbeat", "Finish", "GetResults")
        }

    async def _call(self, name: str, request: dict[str, Any], timeout: float | None = 30.0) -> Any:
        reply = await self._calls[name](codec.dumps(request), timeout=timeout, wait_for_ready=True)
        return codec.loads(reply)

    async def acquire(
        self, partition_id: str, agent_id: str, hostname: str, wait_seconds: float
    ) -> AcquiredTask | None:
        request = {
            "partition_id": partition_id,
            "agent_id": agent_id,
            "hostname": hostname,
            "wait_seconds": wait_seconds,
        }
        reply = await self._call("Acquire", request, timeout=wait_seconds + 30.0)
        if reply is None:
            return None
        return AcquiredTask(
            task=codec.task_from_json(reply["task"]),
            session_options=codec.options_from_json(reply["session_options"]),
            session_partitions=list(reply["session_partitions"]),
            lease=reply["lease"],
            inputs=[codec.result_from_json(r) for r in reply.get("inputs", [])],
        )

    async def start(self, acquired: AcquiredTask) -> None:
        await self._call("Start", {"task_id": acquired.task.task_id, "agent_id": self._agent_id})

    async def heartbeat(self, acquired: Sequence[AcquiredTask]) -> set[str]:
        if not acquired:
            return set()
        return set(await self._call("Heartbeat", {"leases": [a.lease for a in acquired]}))

    async def finish(self, acquired: AcquiredTask, outcome: TaskOutcome) -> None:
        request = {
            "lease": acquired.lease,
            "agent_id": self._agent_id,
            "outcome": codec.outcome_to_json(outcome),
        }
        await self._call("Finish", request, timeout=120.0)

    async def get_results(self, result_ids: Sequence[str]) -> list[Result]:
        return [
            codec.result_from_json(r)
            for r in await self._call("GetResults", {"result_ids": list(result_ids)})
        ]

    async def close(self) -> None:
        await self._channel.close()


def connect_gateway_backend(settings: AgentSettings) -> ComputeBackend:
    """The backend of an agent of the local target: the control plane's compute gateway."""
    return GatewayBackend(settings.control_plane_endpoint, settings.agent_id)
