"""End to end: a real local deployment (`armonik-deploy deploy`) driven by the official clients.

Control plane, polling agents, workers (the bundled generic worker in partition `default`, the PymoniK worker
in partition `pymonik`) and the metrics exporter all run as the deployment starts them. The tests use the PyPI
`armonik` SDK, the samples' clients, PymoniK, armonik-analytics, Prometheus' parser and armonik-cli, as users do.

The tests run in the order of this file, on one deployment. A worker goes on with a task its agent gave up
(the SDK's worker cannot be interrupted): the cancelled task's worker sleeps on for 30 s, so cancellation comes
after the tests that need both agents of `default`; the metrics test comes after every test that created tasks,
and counts them through the sessions recorded in `deployment.sessions`.

Every wait is bounded: results are awaited on a channel of their own, in a thread, and the channel is closed
when the time is up, so that a bug fails the test with the session's task statuses rather than hanging it.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from armonik.common import Result, ResultStatus, Task, TaskDefinition, TaskStatus
from prometheus_client.parser import text_string_to_metric_families
from pymonik import Pymonik, materialize

from armonik_core.metrics import metric_name
from armonik_samples import linear_subtasking
from tests.e2e.pymonik_tasks import estimate_pi_partial, fetch_resource, read_materialized, sum_pi_results
from tests.e2e.scenarios import (
    PYMONIK_PARTITIONS,
    RESULT_TIMEOUT,
    SAMPLE_PARTITIONS,
    Clients,
    behaviour_options,
    error_text,
    new_session,
    poll,
    processing,
    result_status,
    run_with_timeout,
    session_key,
    session_report,
    submit_one,
    task_status,
    tasks_of,
    wait_results,
)
from tests.support import sample_options

if TYPE_CHECKING:
    from conftest import Deployment

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


# -- 1. hello world and the samples' clients ------------------------------------------------------------------
def test_hello_world_with_the_sdk(deployment: Deployment, clients: Clients, partition: str) -> None:
    options = sample_options("hello_world", partition=partition)
    session_id = new_session(clients, options, partition)
    deployment.sessions[session_key("hello_world", partition)] = session_id
    output = clients.results.create_results_metadata(["output"], session_id)["output"].result_id
    payload = clients.results.create_results({"payload": b"World"}, session_id)["payload"].result_id
    (submitted,) = clients.tasks.submit_tasks(
        session_id, [TaskDefinition(payload, expected_output_ids=[output])]
    )

    wait_results(deployment, clients, session_id, [output], RESULT_TIMEOUT)

    assert clients.results.download_result_data(output, session_id) == b"Hello World!"
    assert result_status(clients, output) == ResultStatus.COMPLETED
    done = clients.tasks.get_task(submitted.id)
    assert TaskStatus(done.status) == TaskStatus.COMPLETED
    assert done.owner_pod_id in deployment.agent_ids(partition)
    assert done.options is not None and done.options.options["sample"] == "hello_world"
    assert clients.results.get_owner_task_id([output], session_id) == {output: submitted.id}
    clients.sessions.close_session(session_id)


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("hello_world", "Hello World!"),
        ("multiple_results", "result 4: Hello #4"),
        ("subtasking", "Result: 5050, Expected: 5050"),
        ("dynamic_submission", "OK dynamic submission"),
    ],
)
def test_sample_clients(deployment: Deployment, sample: str, expected: str, partition: str) -> None:
    done = subprocess.run(
        [
            PYTHON,
            "-m",
            f"armonik_samples.{sample}",
            "--endpoint",
            deployment.endpoint,
            "--partition",
            partition,
            "--timeout",
            "45",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, (
        f"python -m armonik_samples.{sample} exited with {done.returncode}:\n{output}"
    )
    assert expected in output
    assert "OK" in done.stderr


# -- 2. a chain of output delegations -------------------------------------------------------------------------
def test_linear_subtasking_hands_the_output_down_three_levels(
    deployment: Deployment, clients: Clients, partition: str
) -> None:
    levels = 3
    options = sample_options("linear_subtasking", partition=partition)
    session_id = new_session(clients, options, partition)
    deployment.sessions[session_key("linear_subtasking", partition)] = session_id
    root_id, output = submit_one(clients, session_id, linear_subtasking.payload_of(0, levels, 0))
    # The root owns it at submission; an agent quick enough may already have handed it down the chain.
    (owner_at_submission,) = clients.results.get_owner_task_id([output], session_id).values()

    wait_results(deployment, clients, session_id, [output], RESULT_TIMEOUT)

    value = clients.results.download_result_data(output, session_id)
    assert value == str(linear_subtasking.expected_value(levels)).encode() == b"6"
    tasks = tasks_of(clients, session_id)
    assert len(tasks) == levels + 1, session_report(clients, session_id)
    assert {TaskStatus(t.status) for t in tasks.values()} == {TaskStatus.COMPLETED}
    # The chain: each level was submitted by the previous one, and every task expected the same output.
    chain = [tasks[root_id]]
    while len(chain) <= levels:
        children = [t for t in tasks.values() if t.created_by == chain[-1].id]
        assert len(children) == 1, f"level {len(chain)}: {children}\n{session_report(clients, session_id)}"
        chain.append(children[0])
    assert chain[0].created_by in ("", None)
    for t in chain:
        assert t.expected_output_ids == [output]
        assert t.retry_of_ids == []
    for parent, child in zip(chain, chain[1:], strict=False):
        assert child.parent_task_ids[-1] == parent.id
    assert owner_at_submission in [t.id for t in chain]
    # The output's owner moved down the chain to the last level, which wrote it.
    assert clients.results.get_owner_task_id([output], session_id) == {output: chain[-1].id}
    (result,) = clients.results.list_results(Result.result_id == output)[1]
    assert result.owner_task_id == chain[-1].id
    assert result.status == ResultStatus.COMPLETED


# -- 3. a crash, then a successful retry ----------------------------------------------------------------------
def test_a_task_that_crashes_once_succeeds_on_its_retry(
    deployment: Deployment, clients: Clients, partition: str
) -> None:
    options = behaviour_options("crash_once", max_retries=2, partition=partition)
    session_id = new_session(clients, options, partition)
    deployment.sessions[session_key("crash_once", partition)] = session_id
    first_id, output = submit_one(clients, session_id, b"survivor")

    wait_results(deployment, clients, session_id, [output], RESULT_TIMEOUT)

    assert clients.results.download_result_data(output, session_id) == b"survivor"
    tasks = tasks_of(clients, session_id)
    retry_id = f"{first_id}###1"
    assert set(tasks) == {first_id, retry_id}, session_report(clients, session_id)
    first, retry = tasks[first_id], tasks[retry_id]
    assert TaskStatus(first.status) == TaskStatus.RETRIED
    # The SDK's worker answers a raising handler with no reply (INTERNAL), as does an in-process one; the
    # worker's log (the agent's, in process) tells why.
    assert "Worker returned error INTERNAL" in error_text(first), error_text(first)
    worker_logs = deployment.worker_logs(partition)
    assert f"deliberate crash (action crash_once) of task {first_id}" in worker_logs
    assert TaskStatus(retry.status) == TaskStatus.COMPLETED
    assert retry.retry_of_ids == [first_id]
    assert retry.initial_task_id == first_id
    assert retry.expected_output_ids == [output]
    assert clients.results.get_owner_task_id([output], session_id) == {output: retry_id}


# -- 4. an error cascades to the tasks that depend on it -------------------------------------------------------
def test_an_error_aborts_its_outputs_and_the_tasks_depending_on_them(
    deployment: Deployment, clients: Clients, partition: str
) -> None:
    session_id = new_session(
        clients, behaviour_options("echo", max_retries=2, partition=partition), partition
    )
    deployment.sessions[session_key("fail", partition)] = session_id
    outputs = clients.results.create_results_metadata(["failing output", "final output"], session_id)
    failing_output, final_output = outputs["failing output"].result_id, outputs["final output"].result_id
    payloads = clients.results.create_results({"doomed": b"doomed", "never": b"never"}, session_id)
    # Submitted together: the dependent task is accepted while its dependency is still to be produced.
    failing, dependent = clients.tasks.submit_tasks(
        session_id,
        [
            TaskDefinition(
                payloads["doomed"].result_id,
                expected_output_ids=[failing_output],
                options=behaviour_options("fail", max_retries=2, partition=partition),
            ),
            TaskDefinition(
                payloads["never"].result_id,
                expected_output_ids=[final_output],
                data_dependencies=[failing_output],
            ),
        ],
    )
    failing_id, dependent_id = failing.id, dependent.id

    with pytest.raises(RuntimeError, match="aborted"):
        wait_results(deployment, clients, session_id, [final_output], RESULT_TIMEOUT)

    poll(
        lambda: task_status(clients, dependent_id) == TaskStatus.ERROR,
        10,
        "the dependent task ERROR",
        details=lambda: session_report(clients, session_id),
    )
    tasks = tasks_of(clients, session_id)
    assert set(tasks) == {failing_id, dependent_id}, "an error output is not retried"
    failing = tasks[failing_id]
    assert TaskStatus(failing.status) == TaskStatus.ERROR
    assert f"deliberate failure (action fail) of task {failing_id}" in error_text(failing)
    assert TaskStatus(tasks[dependent_id].status) == TaskStatus.ERROR
    assert result_status(clients, failing_output) == ResultStatus.ABORTED
    assert result_status(clients, final_output) == ResultStatus.ABORTED
    with pytest.raises(RuntimeError, match="aborted"):
        wait_results(deployment, clients, session_id, [failing_output], 10)


# -- 5. a task running past its max_duration ------------------------------------------------------------------
def test_a_task_exceeding_its_max_duration_times_out(
    deployment: Deployment, clients: Clients, partition: str
) -> None:
    options = behaviour_options(
        "sleep", sleep="5", max_retries=0, max_duration=timedelta(seconds=1), partition=partition
    )
    session_id = new_session(clients, options, partition)
    deployment.sessions[session_key("timeout", partition)] = session_id
    started = time.monotonic()
    task_id, output = submit_one(clients, session_id, b"too slow")

    with pytest.raises(RuntimeError, match="aborted"):
        wait_results(deployment, clients, session_id, [output], 30)

    elapsed = time.monotonic() - started
    assert elapsed < 5, f"the output was aborted after {elapsed:.1f}s: the task was not stopped at 1 s"
    poll(lambda: task_status(clients, task_id) == TaskStatus.TIMEOUT, 10, "the task TIMEOUT")
    assert result_status(clients, output) == ResultStatus.ABORTED
    timed_out = tasks_of(clients, session_id)[task_id]
    assert "max_duration" in error_text(timed_out) or "DEADLINE_EXCEEDED" in error_text(timed_out)
    assert timed_out.ended_at is not None and timed_out.started_at is not None
    assert timed_out.ended_at - timed_out.started_at < timedelta(seconds=4)
    assert list(tasks_of(clients, session_id)) == [task_id]


# -- 7. a polling agent killed while it runs a task ------------------------------------------------------------
@pytest.mark.timeout(120)
def test_a_task_of_a_killed_agent_is_retried_and_the_agent_restarted(
    deployment: Deployment, clients: Clients
) -> None:
    session_id = new_session(clients, behaviour_options("sleep", sleep="4", max_retries=2))
    deployment.sessions["killed_agent"] = session_id
    task_id, output = submit_one(clients, session_id, b"still here")

    running = processing(clients, session_id, task_id)
    agent = f"{running.owner_pod_id}-polling-agent"
    before = deployment.process(agent)
    assert before["status"] == "running" and isinstance(before["pid"], int), before
    os.kill(before["pid"], signal.SIGKILL)

    wait_results(deployment, clients, session_id, [output], 60)

    assert clients.results.download_result_data(output, session_id) == b"still here"
    tasks = tasks_of(clients, session_id)
    retry_id = f"{task_id}###1"
    assert set(tasks) == {task_id, retry_id}, session_report(clients, session_id)
    assert TaskStatus(tasks[task_id].status) == TaskStatus.RETRIED
    assert TaskStatus(tasks[retry_id].status) == TaskStatus.COMPLETED
    assert tasks[retry_id].retry_of_ids == [task_id]
    assert clients.results.get_owner_task_id([output], session_id) == {output: retry_id}

    restarted = poll(
        lambda: (
            (entry := deployment.process(agent))["status"] == "running"
            and entry["pid"] not in (None, before["pid"])
            and entry
        ),
        20,
        f"the supervisor restarting {agent}",
        details=deployment.status_table,
    )
    assert restarted["restarts"] == before["restarts"] + 1
    assert restarted["last_exit"] == -signal.SIGKILL


# -- 9. armonik-analytics ---------------------------------------------------------------------------------------
def test_analytics_computes_the_throughput_of_a_finished_session(
    deployment: Deployment, clients: Clients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from armonik_analytics import ArmoniKStatistics
    from armonik_analytics.metrics import AvgThroughput, TimestampsTransition, TotalElapsedTime
    from armonik_analytics.utils import TaskTimestamps

    count = 20
    session_id = new_session(clients, behaviour_options("echo"))
    deployment.sessions["analytics"] = session_id
    outputs = clients.results.create_results_metadata([f"out {i}" for i in range(count)], session_id)
    payloads = clients.results.create_results({f"in {i}": b"x" for i in range(count)}, session_id)
    clients.tasks.submit_tasks(
        session_id,
        [
            TaskDefinition(payloads[f"in {i}"].result_id, expected_output_ids=[outputs[f"out {i}"].result_id])
            for i in range(count)
        ],
    )
    wait_results(deployment, clients, session_id, [r.result_id for r in outputs.values()], RESULT_TIMEOUT)
    clients.sessions.close_session(session_id)

    monkeypatch.chdir(tmp_path)  # analytics writes *.dat files in the working directory
    stats = ArmoniKStatistics(
        clients.channel,
        Task.session_id == session_id,
        [
            TotalElapsedTime(),
            AvgThroughput(),
            TimestampsTransition(TaskTimestamps.CREATED, TaskTimestamps.ENDED),
        ],
    )
    run_with_timeout(stats.compute, 30, "ArmoniKStatistics.compute")
    values = stats.values

    elapsed = values["TotalElapsedTime"]
    throughput = values["AvgThroughput"]
    transition = values["CreatedToEnded"]
    assert 0 < elapsed < RESULT_TIMEOUT
    assert throughput > 0
    assert math.isclose(throughput, count / elapsed, rel_tol=1e-6)
    assert 0 < transition["min"] <= transition["avg"] <= transition["max"] <= elapsed


# -- 6. cancelling a running task -------------------------------------------------------------------------------
def test_cancelling_a_running_task(deployment: Deployment, clients: Clients) -> None:
    session_id = new_session(clients, behaviour_options("sleep", sleep="30", max_retries=2))
    deployment.sessions["cancel"] = session_id
    task_id, output = submit_one(clients, session_id, b"long")
    running = processing(clients, session_id, task_id)

    clients.tasks.cancel_tasks([task_id])
    cancelled_at = time.monotonic()
    poll(
        lambda: task_status(clients, task_id) == TaskStatus.CANCELLED,
        5,
        f"task {task_id} CANCELLED",
        details=lambda: session_report(clients, session_id),
    )
    assert time.monotonic() - cancelled_at < 5
    assert result_status(clients, output) == ResultStatus.ABORTED
    with pytest.raises(RuntimeError, match="aborted"):
        wait_results(deployment, clients, session_id, [output], 10)
    assert list(tasks_of(clients, session_id)) == [task_id], "a cancelled task is not retried"

    # The compute plane goes on: a quick task submitted next completes. Its options map is merged with the
    # session's, so it says `sleep = 0` to not inherit the 30 s.
    echo_id, echo_output = submit_one(
        clients, session_id, b"next", options=behaviour_options("echo", sleep="0"), name="next"
    )
    wait_results(deployment, clients, session_id, [echo_output], 20)
    assert clients.results.download_result_data(echo_output, session_id) == b"next"
    assert task_status(clients, echo_id) == TaskStatus.COMPLETED
    assert running.owner_pod_id in deployment.agent_ids("default")


# -- 8. PymoniK estimating pi -----------------------------------------------------------------------------------
@pytest.mark.timeout(150)
def test_pymonik_estimates_pi(deployment: Deployment, clients: Clients, pymonik_partition: str) -> None:
    count, samples = 100, 20000
    with Pymonik(endpoint=deployment.endpoint, partition=pymonik_partition) as pymonik:
        session_id = pymonik._session_id
        deployment.sessions[session_key("pymonik", pymonik_partition)] = session_id
        parts = estimate_pi_partial.map_invoke([(samples,)] * count)
        estimate = sum_pi_results.invoke(parts)
        wait_results(deployment, clients, session_id, [estimate.result_id], 120)
        value = run_with_timeout(lambda: estimate.wait().get(), 30, "downloading the estimate")
    assert abs(value - math.pi) < 0.1, value
    tasks = tasks_of(clients, session_id)
    assert len(tasks) == count + 1
    assert {TaskStatus(t.status) for t in tasks.values()} == {TaskStatus.COMPLETED}
    assert {t.owner_pod_id for t in tasks.values()} == set(deployment.agent_ids(pymonik_partition))
    assert {t.options.partition_id for t in tasks.values() if t.options is not None} == {pymonik_partition}


@pytest.mark.timeout(120)
def test_pymonik_materializes_resources_where_it_looks_for_them(
    deployment: Deployment, clients: Clients, pymonik_partition: str, tmp_path: Path
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights " * 1000)
    worker_path = tmp_path / "materialized" / "model.bin"
    with Pymonik(endpoint=deployment.endpoint, partition=pymonik_partition) as pymonik:
        session_id = pymonik._session_id
        deployment.sessions[session_key("pymonik_resources", pymonik_partition)] = session_id
        stored = pymonik.put({"answer": 42}, name="resource")
        fetched = fetch_resource.invoke(stored.result_id)  # the id only: not an input of the task
        # PymoniK looks for an earlier upload with the SDK's get_results_ids, which creates the result it looks
        # for (CreateResultsMetaData, upstream as here): without force_upload nothing would be uploaded.
        mat = pymonik.upload_materialize(materialize(source, worker_path), force_upload=True)
        copied = read_materialized.invoke(mat, str(worker_path))
        wait_results(deployment, clients, session_id, [fetched.result_id, copied.result_id], 60)
        report = run_with_timeout(lambda: fetched.wait().get(), 30, "downloading the report")
        copy = run_with_timeout(lambda: copied.wait().get(), 30, "downloading the copy")
    assert report["value"] == {"answer": 42}, report
    # The data folder is where PymoniK looks: /cache/shared/<communication token>.
    assert Path(report["path"]).parent == Path(report["folder"]), report
    assert Path(report["folder"]).parent == Path("/cache/shared"), report
    assert copy == source.read_bytes()
    assert worker_path.read_bytes() == source.read_bytes()


# -- 10. the metrics exporter ------------------------------------------------------------------------------------
def scrape(deployment: Deployment) -> dict[str, float]:
    """Every sample of the exporter's page, by name (the parser gives ints for integral values)."""
    with urllib.request.urlopen(deployment.metrics_url, timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers.get_content_type() == "text/plain"
        text = reply.read().decode("utf-8")
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = sample.value
    return values


def test_metrics_exporter_counts_the_tasks(deployment: Deployment, clients: Clients) -> None:
    counts = {
        session: clients.tasks.count_tasks_by_status(Task.session_id == session_id)
        for session, session_id in deployment.sessions.items()
    }
    ours = sum(c.get(TaskStatus.COMPLETED, 0) for c in counts.values())
    assert ours >= 101 + 20, counts  # at least PymoniK's and the analytics' tasks
    all_counts = clients.tasks.count_tasks_by_status()
    everything = all_counts.get(TaskStatus.COMPLETED, 0)
    # Every test waited for its results: nothing needs a worker any more.
    queued = sum(
        all_counts.get(s, 0) for s in (TaskStatus.SUBMITTED, TaskStatus.DISPATCHED, TaskStatus.PROCESSING)
    )
    assert queued == 0, all_counts

    # The exporter caches a collection for a while: poll until it shows the tasks of the tests above.
    values = poll(
        lambda: (
            (v := scrape(deployment)).get("armonik_tasks_completed", -1) >= everything
            and v.get("armonik_tasks_queued") == 0
            and v
        ),
        15,
        f"armonik_tasks_completed >= {everything} and armonik_tasks_queued == 0",
        interval=0.5,
    )
    for name, value in values.items():
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (name, value)
        assert math.isfinite(value) and value >= 0, (name, value)
    assert values["armonik_tasks_completed"] >= ours
    assert values["armonik_pymonik_tasks_completed"] >= counts["pymonik"].get(TaskStatus.COMPLETED, 0) == 101
    assert "armonik_default_tasks_queued" in values
    assert values["armonik_default_tasks_queued"] == 0
    assert "armonik_pymonik_tasks_queued" in values
    assert values["armonik_tasks_retried"] >= 2  # the crash_once and the killed agent's tasks
    assert values["armonik_tasks_error"] >= 2  # the failing task and its dependent
    assert values["armonik_tasks_timeout"] >= 1
    assert values["armonik_tasks_cancelled"] >= 1
    partitions = (*SAMPLE_PARTITIONS, *PYMONIK_PARTITIONS)
    assert (
        sum(values[metric_name(p, "tasks_completed")] for p in partitions)
        == values["armonik_tasks_completed"]
    )
    assert values[metric_name("pymonik-inprocess", "tasks_completed")] >= 101


# -- 11. armonik-cli -------------------------------------------------------------------------------------------
def test_armonik_cli_lists_the_completed_tasks_of_a_session(
    deployment: Deployment, clients: Clients, tmp_path: Path
) -> None:
    session_id = new_session(clients, behaviour_options("crash_once", max_retries=2))
    deployment.sessions["cli"] = session_id
    first_ids = []
    outputs = []
    for i in range(2):
        task_id, output = submit_one(clients, session_id, b"cli", name=f"t{i}")
        first_ids.append(task_id)
        outputs.append(output)
    wait_results(deployment, clients, session_id, outputs, RESULT_TIMEOUT)

    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "AKCONFIG": str(deployment.cli_config),
        "COLUMNS": "100000",  # the CLI prints through rich, which would wrap long strings inside the JSON
    }
    env.pop("AK_ENDPOINT", None)

    def cli(*args: str) -> Any:
        done = subprocess.run(
            [str(Path(PYTHON).parent / "armonik"), "-o", "json", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, (
            f"armonik {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
        return json.loads(done.stdout)

    completed = cli("task", "list", "-f", f'status = completed and session_id = "{session_id}"')
    assert sorted(t["Id"] for t in completed) == sorted(f"{i}###1" for i in first_ids)
    assert {t["Status"] for t in completed} == {"Completed"}
    assert {t["SessionId"] for t in completed} == {session_id}

    every = cli("task", "list", "-f", f'session_id = "{session_id}"')
    assert len(every) == 4
    assert sorted(t["Status"] for t in every) == ["Completed", "Completed", "Retried", "Retried"]

    # Across the sessions of this suite: the CLI's count of completed tasks matches the SDK's.
    for name in ("hello_world", "linear_subtasking"):
        if name in deployment.sessions:
            sid = deployment.sessions[name]
            listed = cli("task", "list", "-f", f'status = completed and session_id = "{sid}"')
            expected = clients.tasks.count_tasks_by_status(Task.session_id == sid)[TaskStatus.COMPLETED]
            assert len(listed) == expected


# -- the README's first session ----------------------------------------------------------------------------------
def test_the_readme_sdk_example_runs_as_written(deployment: Deployment) -> None:
    """The README's SDK example is the first code a newcomer runs: it must work as printed (only the endpoint
    is this deployment's)."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) == 1, "the README has one Python example"
    example = blocks[0]
    assert '"127.0.0.1:5001"' in example
    done = subprocess.run(
        [PYTHON, "-c", example.replace('"127.0.0.1:5001"', repr(deployment.endpoint))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("Hello World!")
