"""The attacks on the agents' compute gateway, replayed as an attacker would: a plain gRPC client sending MessagePack
bodies to `armonik_py.ComputeGateway/*`, against a real control plane process.

Each test runs twice: on the local target's settings (the gateway on its unix socket under the data folder)
and on the settings the Kubernetes render gives the control plane and agent containers (the gateway on a TCP
port of its own, the secret and the agents' credentials from the rendered Secrets), only the addresses and the
data folder changed to fit this machine.

What each attack did before, and must no longer do: take a task without being an agent, take another
partition's task, complete a task with an output naming another session's object, finish a task another
agent holds (with its id and a made-up lease), and read another session's result records.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import ResultStatus, TaskDefinition, TaskOptions, TaskStatus

from armonik_core.adapters.objects.filesystem import FilesystemObjectStorage
from armonik_core.domain.outcomes import DataCompletion, OutcomeKind, TaskOutcome
from armonik_core.gateway import codec
from armonik_core.polling_agent.gateway_backend import GatewayBackend
from tests.conftest import ROOT, ControlPlaneProcess
from tests.support import free_port, render_file
from tests.unit.kubernetes_render_support import container_env, containers

SERVICE = "/armonik_py.ComputeGateway"
QUICK_DEPLOY = ROOT / "infrastructure" / "quick-deploy" / "localhost"
PARTITIONS = ("default", "pymonik")
METHODS = ("Acquire", "Start", "Heartbeat", "Finish", "Exchange", "GetResults")


@dataclass
class Target:
    """A running control plane, where its gateway listens, and the credential of each partition's agents."""

    plane: ControlPlaneProcess
    gateway: str
    credentials: dict[str, str]

    def agent(self, agent_id: str, partition: str = "default") -> GatewayBackend:
        """A real agent's backend, as `armonik_core.polling_agent` builds it."""
        return GatewayBackend(
            self.gateway, agent_id, partition_id=partition, credential=self.credentials[partition]
        )


def kubernetes_target(tmp_path: Path) -> Target:
    """A control plane started with the environment the Kubernetes render gives its container."""
    file = QUICK_DEPLOY / "parameters.tfvars"
    rendered = render_file(file, tmp_path)
    env = container_env(rendered, containers(rendered.get("Deployment", "control-plane"))[0])
    assert env["ComputeGateway__Port"] == "1081" and "ComputeGateway__Socket" not in env
    gateway_port = free_port()
    plane = ControlPlaneProcess(tmp_path / "data")
    plane.env = {
        **env,
        "ControlPlane__Host": "127.0.0.1",
        "ControlPlane__Port": str(plane.port),
        "ComputeGateway__Host": "127.0.0.1",
        "ComputeGateway__Port": str(gateway_port),
        "Embedded__DataDirectory": str(plane.data_dir),
    }
    credentials = {}
    for partition in PARTITIONS:
        agent = container_env(
            rendered, containers(rendered.get("Deployment", f"compute-plane-{partition}"))[0]
        )
        assert agent["ComputeGateway__Endpoint"] == "http://compute-gateway.armonik.svc:1081"
        credentials[partition] = agent["ComputeGateway__Credential"]
    plane.start()
    return Target(plane, f"127.0.0.1:{gateway_port}", credentials)


@pytest.fixture(params=["local", "kubernetes"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "local":
        plane = ControlPlaneProcess(tmp_path / "data")
        plane.start()
        found = Target(plane, plane.gateway_endpoint, {p: plane.credential(p) for p in PARTITIONS})
    else:
        found = kubernetes_target(tmp_path)
    yield found
    found.plane.kill()


# -- the attacker's tools: a plain channel and MessagePack bodies ------------------------------------------------------
def metadata(partition: str, credential: str) -> list[tuple[str, str]]:
    return [("x-armonik-partition", partition), ("x-armonik-agent-credential", credential)]


def call(target: str, method: str, body: Any, meta: list[tuple[str, str]] | None = None) -> Any:
    with grpc.insecure_channel(target) as channel:
        reply = channel.unary_unary(f"{SERVICE}/{method}")(codec.dumps(body), metadata=meta, timeout=30)
    return codec.loads(reply)


def refused(code: grpc.StatusCode, target: str, method: str, body: Any, meta: Any = None) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        call(target, method, body, meta)
    error = caught.value
    assert error.code() == code, f"{method}: expected {code.name}, got {error.code().name}: {error.details()}"
    return str(error.details())


def acquire_body(partition: str = "default", agent: str = "thief", wait: float = 5.0) -> dict[str, Any]:
    return {"partition_id": partition, "agent_id": agent, "hostname": "attacker", "wait_seconds": wait}


def take(target: str, meta: list[tuple[str, str]], agent: str = "thief") -> codec.Handover:
    """A task acquired through the gateway, as the agents read it."""
    return codec.handover_from_wire(call(target, "Acquire", acquire_body(agent=agent), meta))


# -- what a user submits ---------------------------------------------------------------------------------------
@dataclass
class Submitted:
    session: str
    task: str
    payload: str
    output: str


def submit(plane: ControlPlaneProcess, data: bytes, partition: str = "default") -> Submitted:
    options = TaskOptions(
        max_duration=timedelta(seconds=60), priority=1, max_retries=2, partition_id=partition
    )
    with grpc.insecure_channel(plane.endpoint) as channel:
        session = ArmoniKSessions(channel).create_session(options, list(PARTITIONS))
        results = ArmoniKResults(channel)
        payload = results.create_results({"payload": data}, session)["payload"].result_id
        output = results.create_results_metadata(["output"], session)["output"].result_id
        task = ArmoniKTasks(channel).submit_tasks(
            session, [TaskDefinition(payload_id=payload, expected_output_ids=[output])]
        )[0]
    return Submitted(session, task.id, payload, output)


def task_of(plane: ControlPlaneProcess, task_id: str) -> Any:
    with grpc.insecure_channel(plane.endpoint) as channel:
        return ArmoniKTasks(channel).get_task(task_id)


def download(plane: ControlPlaneProcess, result_id: str, session: str) -> bytes:
    with grpc.insecure_channel(plane.endpoint) as channel:
        return bytes(ArmoniKResults(channel).download_result_data(result_id, session))


def success(completions: list[tuple[str, int, bytes]], **extra: Any) -> TaskOutcome:
    return TaskOutcome(OutcomeKind.SUCCESS, completions=[DataCompletion(*c) for c in completions], **extra)


# -- the attacks -----------------------------------------------------------------------------------------------
def test_the_client_port_does_not_serve_the_gateway(target: Target) -> None:
    submit(target.plane, b"work")
    meta = metadata("default", target.credentials["default"])
    for method in METHODS:
        refused(grpc.StatusCode.UNIMPLEMENTED, target.plane.endpoint, method, acquire_body(), meta)


def altered(credential: str) -> str:
    """The credential with its last character changed (to another one: a fixed replacement is the same
    credential one time in sixteen)."""
    return credential[:-1] + ("1" if credential[-1] == "0" else "0")


def test_no_credential_or_a_wrong_one_is_unauthenticated(target: Target) -> None:
    work = submit(target.plane, b"work")
    wrong = [
        None,
        metadata("default", ""),
        metadata("default", "0" * 64),
        metadata("default", altered(target.credentials["default"])),
        metadata("nonexistent", target.credentials["default"]),
    ]
    for meta in wrong:
        for method in METHODS:
            refused(grpc.StatusCode.UNAUTHENTICATED, target.gateway, method, acquire_body(wait=0), meta)
    with grpc.insecure_channel(target.gateway) as channel:
        stream = channel.stream_stream(f"{SERVICE}/ExchangeStream")
        with pytest.raises(grpc.RpcError) as caught:
            list(stream(iter([codec.dumps({"acquire": acquire_body(wait=0)})]), timeout=30))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert TaskStatus(task_of(target.plane, work.task).status) == TaskStatus.SUBMITTED  # nobody took it


def test_a_body_that_is_not_a_messagepack_map_is_an_invalid_argument(target: Target) -> None:
    """A malformed body from a caller with a valid credential is its mistake, said as such (never INTERNAL)."""
    meta = metadata("default", target.credentials["default"])
    bodies = {
        b'{"leases": []}': "not MessagePack",  # JSON, as agents of earlier versions spoke
        b"\xc1": "not MessagePack",  # a byte MessagePack never uses
        codec.dumps([1, 2]): "not a map",
    }
    with grpc.insecure_channel(target.gateway) as channel:
        for body, words in bodies.items():
            with pytest.raises(grpc.RpcError) as caught:
                channel.unary_unary(f"{SERVICE}/Heartbeat")(body, metadata=meta, timeout=30)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
            assert words in (caught.value.details() or "")


def test_a_malformed_outcome_is_an_invalid_argument_and_records_nothing(target: Target) -> None:
    """An outcome that is not the array the gateway decodes (the map form of earlier versions, a field
    missing, a status or an object key of the wrong type) is refused as such, and the task stays as it was."""
    meta = metadata("default", target.credentials["default"])
    work = submit(target.plane, b"work")
    held = take(target.gateway, meta)
    good = codec.to_wire(success([(work.output, 4, (held.object_prefix + "0" * 32).encode())]))
    malformed = {
        "not an array": {"kind": "success", "completions": []},
        "not an array of 8 fields": good[:5],
        "no such status or kind": ["finished", *good[1:]],
        "data completion is not bytes": [*good[:3], [[work.output, 4, "key"]], *good[4:]],
        "outcome is malformed": [*good[:4], 12, *good[5:]],
    }
    for words, outcome in malformed.items():
        body = {"lease": held.lease, "agent_id": "thief", "outcome": outcome}
        message = refused(grpc.StatusCode.INVALID_ARGUMENT, target.gateway, "Finish", body, meta)
        assert words in message, message
        call(target.gateway, "Exchange", {"finished": [body], "acquire": None}, meta)  # logged, not recorded
    assert TaskStatus(task_of(target.plane, work.task).status) == TaskStatus.DISPATCHED


def test_another_partitions_credential_cannot_take_the_task(target: Target) -> None:
    work = submit(target.plane, b"work", partition="default")
    pymonik = metadata("pymonik", target.credentials["pymonik"])
    message = refused(grpc.StatusCode.PERMISSION_DENIED, target.gateway, "Acquire", acquire_body(), pymonik)
    assert "partition" in message
    exchange = {"finished": [], "acquire": {**acquire_body(), "max_tasks": 4}}
    refused(grpc.StatusCode.PERMISSION_DENIED, target.gateway, "Exchange", exchange, pymonik)
    assert call(target.gateway, "Acquire", acquire_body("pymonik", wait=0), pymonik) is None
    assert TaskStatus(task_of(target.plane, work.task).status) == TaskStatus.SUBMITTED
    # the partition's own credential takes it (so the refusal above was about the partition)
    taken = take(target.gateway, metadata("default", target.credentials["default"]))
    assert taken.task.task_id == work.task


def test_an_outcome_naming_another_sessions_object_is_refused(target: Target) -> None:
    """A compromised agent of the partition (it holds the credential) takes a task of session B, so it knows
    where B's payload is stored, then tries to complete a task of session A with that object."""
    meta = metadata("default", target.credentials["default"])
    other = submit(target.plane, b"session B's secret")
    mine = submit(target.plane, b"session A's input")
    taken = {}
    for _ in range(2):
        reply = take(target.gateway, meta)
        taken[reply.task.session_id] = reply
    stolen = next(r.opaque_id for r in taken[other.session].inputs if r.result_id == other.payload)
    held = taken[mine.session]
    own_key = (held.object_prefix + "f" * 32).encode()
    planted = dataclasses.replace(taken[other.session].inputs[0], result_id="planted", created_by=mine.task)
    forged = [
        success([(mine.output, 18, stolen)]),  # B's object as A's output
        success([(other.payload, 4, own_key)]),  # a result of session B completed by A's task
        success([(other.output, 4, own_key)]),  # the output of B's task, from A's
        success([], created_results=[planted]),  # a result created in session B
    ]
    for outcome in forged:
        body = {"lease": held.lease, "agent_id": "thief", "outcome": outcome}
        refused(grpc.StatusCode.PERMISSION_DENIED, target.gateway, "Finish", body, meta)
        # the same through the agents' batched exchange: not recorded either
        call(target.gateway, "Exchange", {"finished": [body], "acquire": None}, meta)
    for work in (mine, other):
        status = TaskStatus(task_of(target.plane, work.task).status)
        assert status == TaskStatus.DISPATCHED, status  # still the thief's, not COMPLETED with the forgery
    with grpc.insecure_channel(target.plane.endpoint) as channel:
        results = ArmoniKResults(channel)
        assert results.get_result(mine.output).status != ResultStatus.COMPLETED
        with pytest.raises(grpc.RpcError):
            results.get_result("planted")


def test_finishing_a_task_another_agent_holds_is_refused_and_its_result_stands(target: Target) -> None:
    meta = metadata("default", target.credentials["default"])
    work = submit(target.plane, b"the real input")
    decoy = submit(target.plane, b"a task of the thief's own")
    objects = FilesystemObjectStorage(target.plane.data_dir / "objects")

    async def real_agent_takes() -> Any:
        real = target.agent("real-agent")
        try:
            acquired = await real.acquire("default", "real-agent", "host", 5.0)
            assert acquired is not None and acquired.task.task_id == work.task
            await real.start(acquired)
            return acquired
        finally:
            await real.close()

    acquired = asyncio.run(real_agent_takes())
    owner = task_of(target.plane, work.task).owner_pod_id  # what the attacker reads through ListTasks
    assert owner == "real-agent"
    lease = json.dumps([f"{work.task}:{owner}", work.task, work.session, "default", 1, 1])
    forged_output = success([(work.output, 6, b"forged")])
    made_up = [
        f"{'0' * 16}.{'0' * 64}.{lease}",
        lease,
        acquired.lease.replace(acquired.lease[:16], "1" * 16, 1),
    ]
    for handle in made_up:
        body = {"lease": handle, "agent_id": owner, "outcome": forged_output}
        refused(grpc.StatusCode.PERMISSION_DENIED, target.gateway, "Finish", body, meta)
        refused(grpc.StatusCode.PERMISSION_DENIED, target.gateway, "Start", body, meta)
        refused(
            grpc.StatusCode.PERMISSION_DENIED,
            target.gateway,
            "Heartbeat",
            {"leases": [handle], "agent_id": owner},
            meta,
        )
    # the thief's own genuine handle (of another task) under the real agent's id
    own = take(target.gateway, meta)
    assert own.task.task_id == decoy.task
    body = {"lease": own.lease, "agent_id": owner, "outcome": forged_output}
    refused(grpc.StatusCode.PERMISSION_DENIED, target.gateway, "Finish", body, meta)
    # the real handle under another agent's id
    body = {"lease": acquired.lease, "agent_id": "thief", "outcome": forged_output}
    refused(grpc.StatusCode.PERMISSION_DENIED, target.gateway, "Finish", body, meta)
    assert TaskStatus(task_of(target.plane, work.task).status) == TaskStatus.PROCESSING

    async def real_agent_finishes() -> None:
        key = acquired.object_prefix + "0123456789abcdef"
        await objects.put_many({key: b"the real output"})
        real = target.agent("real-agent")
        try:
            outcome = TaskOutcome(
                OutcomeKind.SUCCESS, completions=[DataCompletion(work.output, 15, key.encode())]
            )
            await real.finish(acquired, outcome)
        finally:
            await real.close()

    asyncio.run(real_agent_finishes())
    deadline = time.monotonic() + 10
    while TaskStatus(task_of(target.plane, work.task).status) != TaskStatus.COMPLETED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert download(target.plane, work.output, work.session) == b"the real output"


def test_result_records_of_another_session_are_not_given(target: Target) -> None:
    meta = metadata("default", target.credentials["default"])
    mine = submit(target.plane, b"mine")
    other = submit(target.plane, b"someone else's", partition="pymonik")
    held = take(target.gateway, meta)
    assert held.task.task_id == mine.task
    asked = {
        "result_ids": [mine.payload, other.payload, other.output],
        "lease": held.lease,
        "agent_id": "thief",
    }
    records = call(target.gateway, "GetResults", asked, meta)
    assert [codec.result_from_wire(r).result_id for r in records] == [mine.payload]
    refused(
        grpc.StatusCode.PERMISSION_DENIED, target.gateway, "GetResults", {"result_ids": [other.payload]}, meta
    )
    body = {**asked, "agent_id": "someone-else"}
    refused(grpc.StatusCode.PERMISSION_DENIED, target.gateway, "GetResults", body, meta)


def test_a_lease_handle_survives_a_restart_of_the_control_plane(target: Target) -> None:
    """Agents keep running their tasks across a restart: the handle is checked by its MAC, not a table."""
    meta = metadata("default", target.credentials["default"])
    work = submit(target.plane, b"input")
    held = take(target.gateway, meta, agent="steady")
    target.plane.kill()
    target.plane.start()
    renewed = {"leases": [held.lease], "agent_id": "steady"}
    assert call(target.gateway, "Heartbeat", renewed, meta) == []
    forged = {**renewed, "agent_id": "thief"}
    refused(grpc.StatusCode.PERMISSION_DENIED, target.gateway, "Heartbeat", forged, meta)
    released = TaskOutcome(OutcomeKind.RELEASED)
    call(target.gateway, "Finish", {"lease": held.lease, "agent_id": "steady", "outcome": released}, meta)
    assert TaskStatus(task_of(target.plane, work.task).status) == TaskStatus.SUBMITTED  # given back, as asked
