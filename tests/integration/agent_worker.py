"""The worker the polling agent tests run: an `armonik_worker` process written with the official Python SDK, on
unix sockets, driven by the JSON payload of each task (`python agent_worker.py worker [gate]`). The agent may
also call `process` itself (`Worker__Module`, the in-process mode). Run as a script, this module imports
nothing from the tests."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import timedelta
from typing import Any

import grpc
from armonik.common import Output, TaskDefinition
from armonik.common import TaskOptions as SdkOptions
from armonik.protogen.common import agent_common_pb2 as a
from armonik.worker import TaskHandler


def outcome_of(call: Any) -> list[str]:
    try:
        call()
        return ["OK", ""]
    except grpc.RpcError as exc:
        return [exc.code().name, exc.details()]


def process(th: TaskHandler) -> Output:
    """The worker's processor, driven by the JSON payload of each task: run by a separate worker process
    (`run_worker`) or by the agent itself (`Worker__Module`, the `inprocess` variant of the tests)."""
    spec = json.loads(th.payload)
    action = spec["action"]
    out = th.expected_results[0] if th.expected_results else ""
    if action == "inspect":
        report = {
            "files": sorted(os.listdir(th.data_folder)),
            "payload_id": th.payload_id,
            "deps": {rid: data.decode() for rid, data in th.data_dependencies.items()},
            "task_id": th.task_id,
            "session_id": th.session_id,
            "token": th.token,
            "folder": th.data_folder,
            "expected": th.expected_results,
            "options": th.task_options.options,
            "max_duration": th.task_options.max_duration.total_seconds(),
            "priority": th.task_options.priority,
            "chunk": th.configuration.data_chunk_max_size,
        }
        th.send_results({out: json.dumps(report).encode()})
        return Output()
    if action == "error":
        return Output(spec["details"])
    if action == "die":  # a poison task: it kills every worker that runs it
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "die_once":  # the first run leaves results, a subtask and an output, then its worker dies
        if not os.path.exists(spec["marker"]):
            open(spec["marker"], "w").close()
            child = th.create_results({"dead-payload": b"from the dead run"})["dead-payload"].result_id
            dead_out = th.create_results_metadata(["dead-out"])["dead-out"].result_id
            th.submit_tasks([TaskDefinition(child, [dead_out])])
            th.send_results({out: b"written by the dead run"})
            os.kill(os.getpid(), signal.SIGKILL)
        th.send_results({out: b"written by the second run"})
        return Output()
    if action == "raise":
        raise RuntimeError("the worker function failed")
    if action == "sleep":
        deadline = time.monotonic() + spec["seconds"]
        while time.monotonic() < deadline and not os.path.exists(spec["marker"]):
            time.sleep(0.02)
        th.send_results({out: b"slept"})
        return Output()
    if action == "subtasks":
        created = th.create_results_metadata(["child-out"])
        payloads = th.create_results({"child-payload": b"child payload data"})
        child_out = created["child-out"].result_id
        child_payload = payloads["child-payload"].result_id
        request_options = SdkOptions(
            max_duration=timedelta(0), priority=1, max_retries=0, options={"level": "request"}
        )
        own = SdkOptions(
            max_duration=timedelta(seconds=7), priority=3, max_retries=1, options={"level": "task"}
        )
        # TaskHandler.submit_tasks cannot send per-task options (armonik 3.29.4 assigns a message field,
        # which protobuf refuses), so the request is built here, as the SDK would.
        creations = [
            # Takes over the parent's output, from the sibling's result.
            a.SubmitTasksRequest.TaskCreation(
                payload_id=child_payload, expected_output_keys=[out], data_dependencies=[child_out]
            ),
            a.SubmitTasksRequest.TaskCreation(
                payload_id=child_payload, expected_output_keys=[child_out], task_options=own.to_message()
            ),
        ]
        reply = th._client.SubmitTasks(
            a.SubmitTasksRequest(
                session_id=th.session_id,
                communication_token=th.token,
                task_options=request_options.to_message(),
                task_creations=creations,
            )
        )
        tasks = list(reply.task_infos)
        report = {
            "tasks": [t.task_id for t in tasks],
            "child_out": child_out,
            "child_payload": child_payload,
        }
        th.create_results({"report": json.dumps(report).encode()})
        return Output()  # the parent's output is delegated: nothing written
    if action == "resource":
        report = {rid: th.get_resource_data(rid).decode() for rid in spec["ids"]}
        report["missing"] = outcome_of(lambda: th.get_resource_data("no-such-result"))
        th.send_results({out: json.dumps(report).encode()})
        return Output()
    if action == "probe":
        stub = th._client

        def notify(token: str, rid: str) -> Any:
            ids = [a.NotifyResultDataRequest.ResultIdentifier(session_id=th.session_id, result_id=rid)]
            return stub.NotifyResultData(a.NotifyResultDataRequest(ids=ids, communication_token=token))

        def submit(partition: str) -> Any:
            creation = a.SubmitTasksRequest.TaskCreation(
                payload_id=th.payload_id,
                expected_output_keys=[out],
                task_options=SdkOptions(
                    max_duration=timedelta(seconds=1), priority=1, max_retries=1, partition_id=partition
                ).to_message(),
            )
            request = a.SubmitTasksRequest(
                session_id=th.session_id, communication_token=th.token, task_creations=[creation]
            )
            return stub.SubmitTasks(request)

        report = {
            "wrong_token": outcome_of(lambda: notify("not-the-token", out)),
            "missing_token": outcome_of(lambda: notify("", out)),
            "missing_file": outcome_of(lambda: notify(th.token, out)),
            "wrong_partition": outcome_of(lambda: submit("elsewhere")),
            "common_data": outcome_of(
                lambda: stub.GetCommonData(a.DataRequest(communication_token=th.token, result_id=out))
            ),
        }
        th.send_results({out: json.dumps(report).encode()})
        return Output()
    return Output(f"unknown action {action}")


def run_worker(gate: str | None) -> None:
    """An SDK worker serving `process`; with `gate`, it reports NOT_SERVING while the file `gate` does not
    exist."""
    from armonik.common.channel import create_channel
    from armonik.protogen.common.worker_common_pb2 import HealthCheckReply
    from armonik.worker import ArmoniKWorker

    def health() -> Any:
        if gate is None or os.path.exists(gate):
            return HealthCheckReply.SERVING
        return HealthCheckReply.NOT_SERVING

    agent = "unix://" + os.environ["ComputePlane__AgentChannel__Address"]
    with create_channel(agent, options=(("grpc.default_authority", "localhost"),)) as channel:
        worker = ArmoniKWorker(channel, process, health_check=health)
        worker.start("unix://" + os.environ["ComputePlane__WorkerChannel__Address"])


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    run_worker(sys.argv[2] if len(sys.argv) > 2 else None)
