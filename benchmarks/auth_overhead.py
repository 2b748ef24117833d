"""What authentication costs a client: the same work against a control plane over mTLS with authentication
and authorization off, then required (the admin's certificate), alternated.

Two figures per run: task submission (`create_results_metadata` + `submit_tasks` in batches of 500, 4 client
threads, one channel each; no compute plane: tasks stay SUBMITTED) and small unary calls (`GetSession`, one at a
time, the call where a per-call cost shows most).

    python benchmarks/auth_overhead.py --tasks 20000 --calls 3000 --rounds 2

The last line of standard output is a JSON object with every run's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import grpc
from _cluster import ROOT, free_port
from armonik.client import ArmoniKResults, ArmoniKSessions, ArmoniKTasks
from armonik.common import TaskDefinition, TaskOptions
from armonik.common.channel import create_channel
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from armonik_deploy.certificates import Certificates, ServerIdentity, ensure_certificates

BATCH = 500
CLIENTS = 4


def start(folder: Path, certs: Certificates, auth: bool) -> tuple[subprocess.Popen[bytes], str]:
    data = folder / ("auth" if auth else "plain") / "data"
    data.mkdir(parents=True)
    server = certs.servers["control-plane"]
    env = {
        **os.environ,
        "ControlPlane__Host": "127.0.0.1",
        "ControlPlane__Port": str(port := free_port()),
        "Embedded__DataDirectory": str(data),
        "ControlPlane__Tls__CertificateFile": str(server.certificate),
        "ControlPlane__Tls__KeyFile": str(server.key),
        "ControlPlane__Tls__ClientCaFile": str(certs.ca.certificate),
    }
    if auth:
        client = certs.clients["bench"].certificate
        fingerprint = x509.load_pem_x509_certificate(client.read_bytes()).fingerprint(hashes.SHA1()).hex()
        datafile = folder / "auth.json"
        datafile.write_text(
            json.dumps(
                {
                    "users_list": [{"Username": "bench", "Roles": ["Admin"]}],
                    "certificates_list": [{"Username": "bench", "Cn": "bench", "Fingerprint": fingerprint}],
                }
            )
        )
        env |= {
            "InitServices__Authentication__DataFile": str(datafile),
            "Authenticator__RequireAuthentication": "true",
            "Authenticator__RequireAuthorization": "true",
        }
        subprocess.run([sys.executable, "-m", "armonik_deploy.init_job"], env=env, cwd=ROOT, check=True)
    log = open(data.parent / "control-plane.log", "ab")  # noqa: SIM115 - the process writes it until killed
    process = subprocess.Popen(
        [sys.executable, "-m", "armonik_core.control_plane"], env=env, stdout=log, stderr=log
    )
    return process, f"https://127.0.0.1:{port}"


def channel(url: str, certs: Certificates) -> grpc.Channel:
    pair = certs.clients["bench"]
    return create_channel(
        url,
        certificate_authority=str(certs.ca.certificate),
        client_certificate=str(pair.certificate),
        client_key=str(pair.key),
    )


def measure(url: str, certs: Certificates, tasks: int, calls: int) -> dict[str, float]:
    channels = [channel(url, certs) for _ in range(CLIENTS)]
    deadline = time.monotonic() + 60
    while True:
        try:
            grpc.channel_ready_future(channels[0]).result(timeout=0.5)
            break
        except grpc.FutureTimeoutError:
            assert time.monotonic() < deadline, "control plane not ready"
    options = TaskOptions(
        max_duration=timedelta(minutes=5), priority=1, max_retries=1, partition_id="default"
    )
    sessions = ArmoniKSessions(channels[0])
    session_id = sessions.create_session(options, partition_ids=["default"])
    payload = ArmoniKResults(channels[0]).create_results({"payload": b"x"}, session_id)["payload"].result_id

    def submit(index: int) -> None:
        results, client = ArmoniKResults(channels[index]), ArmoniKTasks(channels[index])
        for start in range(index * (tasks // CLIENTS), (index + 1) * (tasks // CLIENTS), BATCH):
            names = [f"out-{start + i}" for i in range(BATCH)]
            outputs = results.create_results_metadata(names, session_id)
            definitions = [
                TaskDefinition(payload_id=payload, expected_output_ids=[outputs[n].result_id]) for n in names
            ]
            client.submit_tasks(session_id, definitions)

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(submit, range(CLIENTS)))
    submit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(calls):
        sessions.get_session(session_id)
    call_seconds = time.perf_counter() - started
    for ch in channels:
        ch.close()
    return {"tasks_per_s": round(tasks / submit_seconds), "calls_per_s": round(calls / call_seconds)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="auth-bench-"))
    server = ServerIdentity("control-plane", ["localhost", "127.0.0.1"])
    certs = ensure_certificates(folder / "certs", [server], ["bench"], key_size=2048)
    runs = []
    for round_ in range(args.rounds):
        for auth in (False, True):
            sub = folder / f"round-{round_}"
            process, url = start(sub, certs, auth)
            try:
                figures = measure(url, certs, args.tasks, args.calls)
            finally:
                process.kill()
                process.wait()
            runs.append({"authentication": auth, **figures})
            print(runs[-1], flush=True)
    print(json.dumps({"runs": runs}))


if __name__ == "__main__":
    main()
