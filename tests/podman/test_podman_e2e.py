"""End to end on the podman target: the local suite's tests (tests/e2e) against the images run as the
Kubernetes objects say, and what only containers show: the control plane's container killed mid-run, the
ingress pod (the project's nginx image, gRPC-Web, /static/, /admin/ from the host), and every container, nginx's
among them, stopping within 5 s.

The shared tests are imported, so that each runs here on the `deployment` fixture of tests/podman/conftest.py;
they run in the order of the imports below (the metrics test counts what the tests before it did)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable

import grpc
import pytest
from armonik.common import Result, ResultStatus, Task, TaskDefinition, TaskStatus

from tests.e2e.conftest import clients, partition, pymonik_partition  # noqa: F401  (the imported tests take them)
from tests.e2e.scenarios import (
    RESULT_TIMEOUT,
    Clients,
    behaviour_options,
    new_session,
    session_report,
    submit_one,
    task_status,
)
from tests.e2e.test_local_deployment import (  # noqa: F401  (collected here)
    test_a_task_exceeding_its_max_duration_times_out,
    test_a_task_of_a_killed_agent_is_retried_and_the_agent_restarted,
    test_a_task_that_crashes_once_succeeds_on_its_retry,
    test_an_error_aborts_its_outputs_and_the_tasks_depending_on_them,
    test_analytics_computes_the_throughput_of_a_finished_session,
    test_armonik_cli_lists_the_completed_tasks_of_a_session,
    test_cancelling_a_running_task,
    test_hello_world_with_the_sdk,
    test_linear_subtasking_hands_the_output_down_three_levels,
    test_metrics_exporter_counts_the_tasks,
    test_pymonik_estimates_pi,
    test_sample_clients,
    wait_results,
)
from tests.podman import ingress_checks
from tests.podman.conftest import PodmanDeployment

pytestmark = pytest.mark.podman


FAULT_TASKS = 40
STOP_LIMIT = 5.0


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except grpc.RpcError:
            pass  # the control plane is restarting
        time.sleep(0.5)
    raise TimeoutError(what)


def test_control_plane_killed_mid_run_comes_back_and_every_task_completes_once(
    deployment: PodmanDeployment,
    clients: Clients,  # noqa: F811  (the imported fixture)
) -> None:
    session_id = new_session(clients, behaviour_options("sleep", sleep="0.3", max_retries=3))
    deployment.sessions["control_plane_killed"] = session_id
    names = [f"o{i}" for i in range(FAULT_TASKS)]
    outputs = clients.results.create_results_metadata(names, session_id)
    payloads = clients.results.create_results({f"p{i}": b"once" for i in range(FAULT_TASKS)}, session_id)
    submitted = clients.tasks.submit_tasks(
        session_id,
        [
            TaskDefinition(payloads[f"p{i}"].result_id, expected_output_ids=[outputs[f"o{i}"].result_id])
            for i in range(FAULT_TASKS)
        ],
    )
    output_ids = {o.result_id for o in outputs.values()}
    until(
        lambda: (
            clients.tasks.count_tasks_by_status(Task.session_id == session_id).get(TaskStatus.COMPLETED, 0)
            > 2
        ),
        30,
        "a few tasks completed before the kill",
    )
    name = deployment.container("-control-plane-0-control-plane")
    before = deployment.process(name)
    os.kill(before["pid"], signal.SIGKILL)

    until(
        lambda: (p := deployment.process(name))["status"] == "running" and p["pid"] != before["pid"],
        60,
        "the control plane's container restarted",
    )
    assert deployment.process(name)["restarts"] == before["restarts"] + 1

    def all_completed() -> bool:
        _, results = clients.results.list_results(Result.session_id == session_id, page_size=1000)
        done = {r.result_id for r in results if r.status == ResultStatus.COMPLETED}
        return output_ids <= done

    until(
        all_completed, 120, "every output completed after the restart\n" + session_report(clients, session_id)
    )
    _, tasks = clients.tasks.list_tasks(Task.session_id == session_id, page_size=1000)
    completed = [t for t in tasks if TaskStatus(t.status) == TaskStatus.COMPLETED]
    assert len(completed) == FAULT_TASKS, session_report(clients, session_id)
    # Exactly once: each submitted task has one completed run (itself or its retry), owning its output.
    by_initial = {}
    for task in completed:
        initial = task.initial_task_id or task.id
        assert initial not in by_initial, f"task {initial} completed twice"
        by_initial[initial] = task
    assert set(by_initial) == {t.id for t in submitted}
    owners = clients.results.get_owner_task_id(sorted(output_ids), session_id)
    assert set(owners.values()) == {t.id for t in completed}
    for output in output_ids:
        assert clients.results.download_result_data(output, session_id) == b"once"


def test_a_redeploy_with_more_replicas_keeps_the_sessions(
    deployment: PodmanDeployment,
    clients: Clients,  # noqa: F811  (the imported fixture)
) -> None:
    """The partitions' settings (PodMax) are in the control plane's ConfigMap: a Kubernetes rollout restarts
    it, and so does this; the pods whose objects did not change are kept, and the state is on its volume."""
    exporter = deployment.container("-metrics-exporter-0-metrics-exporter")
    before = json.loads(deployment.podman("container", "inspect", exporter).stdout)[0]["Id"]
    values = json.loads(deployment.parameters_file.read_text())
    values["compute_plane"]["default"]["replicas"] = 3
    deployment.parameters_file.write_text(json.dumps(values, indent=2))

    done = deployment.deploy_cli("deploy")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "removed 0" in done.stdout, done.stdout
    after = json.loads(deployment.podman("container", "inspect", exporter).stdout)[0]["Id"]
    assert after == before, "the metrics exporter was replaced though its objects did not change"
    assert len(deployment.agent_ids("default")) == 3
    session_id = deployment.sessions["hello_world"]
    assert clients.tasks.count_tasks_by_status(Task.session_id == session_id)[TaskStatus.COMPLETED] == 1


def test_a_redeploy_adds_then_removes_a_partition_keeping_the_sessions(
    deployment: PodmanDeployment,
    clients: Clients,  # noqa: F811  (the imported fixture)
) -> None:
    """A partition added to the parameters gets its pods and runs tasks; a session made before the redeploy is
    still listed and takes new tasks; the partition removed again takes its pods away and nothing else."""
    values = json.loads(deployment.parameters_file.read_text())
    values["compute_plane"]["extra"] = {**values["compute_plane"]["default"], "replicas": 1}
    deployment.parameters_file.write_text(json.dumps(values, indent=2))
    earlier = deployment.sessions["control_plane_killed"]

    done = deployment.deploy_cli("deploy")

    assert done.returncode == 0, done.stdout + done.stderr
    assert deployment.agent_ids("extra") == (deployment.agent_ids("default")[0].replace("default", "extra"),)
    assert clients.sessions.get_session(earlier).session_id == earlier
    task_id, output = submit_one(clients, earlier, b"after the redeploy")
    wait_results(deployment, clients, earlier, [output], RESULT_TIMEOUT)  # type: ignore[arg-type]
    assert clients.results.download_result_data(output, earlier) == b"after the redeploy"
    assert task_status(clients, task_id) == TaskStatus.COMPLETED
    test_hello_world_with_the_sdk(deployment, clients, "extra")  # type: ignore[arg-type]

    del values["compute_plane"]["extra"]
    deployment.parameters_file.write_text(json.dumps(values, indent=2))
    done = deployment.deploy_cli("deploy")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "removed 1)" in done.stdout, done.stdout
    assert deployment.agent_ids("extra") == ()
    assert not [c for c in deployment.containers() if "-compute-plane-extra-" in c["Names"][0]]
    assert len(deployment.agent_ids("default")) == 3
    assert clients.sessions.get_session(deployment.sessions["hello_world@extra"]).session_id


def test_the_ingress_runs_the_projects_nginx(deployment: PodmanDeployment) -> None:
    ingress_checks.check_runs_the_projects_nginx(deployment)


def test_grpc_web_through_the_ingress_lists_a_session_the_test_made(deployment: PodmanDeployment) -> None:
    ingress_checks.check_lists_a_session_through_grpc_web(deployment)


def test_the_ingress_serves_static_files_and_sends_admin_to_the_console(deployment: PodmanDeployment) -> None:
    ingress_checks.check_static_and_admin_pages(deployment)


def test_every_container_stops_within_5_seconds(deployment: PodmanDeployment) -> None:
    """Last of the suite: `podman stop` (SIGTERM, then SIGKILL after 30 s) returns within 5 s for every
    container, the workers first, as PID 1 each of them."""
    containers = sorted(
        (c["Names"][0] for c in deployment.containers() if c.get("State") == "running"),
        key=lambda n: (not n.endswith("-worker"), n),
    )
    assert len(containers) >= 6, containers
    durations = {}
    for name in containers:
        start = time.monotonic()
        done = deployment.podman("stop", "--time", "30", name)
        durations[name] = time.monotonic() - start
        assert done.returncode == 0, done.stderr
    slow = {n: round(d, 1) for n, d in durations.items() if d >= STOP_LIMIT}
    # What the slow ones did between the signal and their exit, with podman's timestamps.
    tails = {n: deployment.podman("logs", "-t", "--tail", "15", n).stdout for n in slow}
    assert not slow, f"containers slower than {STOP_LIMIT:g} s to stop: {slow}\n" + "\n".join(
        f"--- {n}\n{text}" for n, text in tails.items()
    )
    for name in containers:
        code = deployment.process(name)["last_exit"]
        assert code in (0, -signal.SIGTERM), (name, code)
