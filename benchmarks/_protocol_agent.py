"""The worker protocol and nothing else: an agent that calls `Worker.Process` in a loop and answers
`NotifyResultData`, with no storage, queue or control plane. Measures the ceiling any agent can reach, so it
runs on the event loop the deployment's agents run on (`Runtime__EventLoop`, uvloop by default): on the
standard loop the ceiling came out 7 to 9 % lower, which flattered the share of it the deployment reaches.

Usage: python _protocol_agent.py AGENT_SOCKET WORKER_SOCKET FOLDER CALLS  -> prints calls/s as JSON
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import grpc
from armonik.protogen.common import agent_common_pb2, objects_pb2, worker_common_pb2
from armonik.protogen.worker import agent_service_pb2_grpc, worker_service_pb2_grpc

from armonik_core.process import run_event_loop


class NotifyOnly(agent_service_pb2_grpc.AgentServicer):
    async def NotifyResultData(self, request, context):  # type: ignore[no-untyped-def]
        return agent_common_pb2.NotifyResultDataResponse(result_ids=[i.result_id for i in request.ids])


async def main(agent_socket: str, worker_socket: str, folder: Path, calls: int) -> None:
    server = grpc.aio.server()
    agent_service_pb2_grpc.add_AgentServicer_to_server(NotifyOnly(), server)
    if os.path.exists(agent_socket):
        os.unlink(agent_socket)
    server.add_insecure_port(f"unix://{agent_socket}")
    await server.start()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "payload").write_bytes(b"")
    async with grpc.aio.insecure_channel(f"unix://{worker_socket}") as channel:
        worker = worker_service_pb2_grpc.WorkerStub(channel)
        await worker.HealthCheck(objects_pb2.Empty(), wait_for_ready=True, timeout=30)
        options = objects_pb2.TaskOptions(max_retries=1, partition_id="default")
        started = time.perf_counter()
        for i in range(calls):
            request = worker_common_pb2.ProcessRequest(
                communication_token="token",
                session_id="session",
                task_id=f"task-{i}",
                task_options=options,
                expected_output_keys=[f"out-{i}"],
                payload_id="payload",
                data_folder=str(folder),
                configuration=objects_pb2.Configuration(data_chunk_max_size=1 << 20),
            )
            await worker.Process(request)
        elapsed = time.perf_counter() - started
    await server.stop(None)
    print(json.dumps({"calls": calls, "seconds": elapsed}))


if __name__ == "__main__":
    run_event_loop(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])), "protocol agent")
