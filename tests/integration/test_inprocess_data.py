"""An in-process worker's data goes between its processor and object storage with no files (`direct_data`):
inputs read when the processor asks for them, outputs stored as objects, the data folder made only when
something uses it, a failed run's objects deleted, and the checks NotifyResultData applies. Each test runs a
real agent on a real object storage with a processor written against the SDK's `TaskHandler`."""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from armonik.common import Output, TaskDefinition
from armonik.worker import TaskHandler

from armonik_core.adapters.objects.base import ObjectStorage
from armonik_core.adapters.objects.filesystem import FilesystemObjectStorage
from armonik_core.domain.outcomes import OutcomeKind
from tests.integration.agent_harness import Running, Sockets, agent_settings, files_left, start_agent

Seen = dict[str, Any]


@asynccontextmanager
async def agent_with(
    tmp_path: Path, processor: Callable[[TaskHandler], Output], objects: ObjectStorage | None = None
) -> AsyncIterator[Running]:
    running = await start_agent(agent_settings(tmp_path, Sockets(tmp_path)), processor, objects)
    try:
        yield running
    finally:
        await running.stop()


def object_files(running: Running) -> set[Path]:
    return {path for path in running.settings.objects_directory.rglob("*") if path.is_file()}


def known_object_files(running: Running) -> set[Path]:
    """The files of the objects the backend's results point at (inputs, and data it recorded)."""
    objects = running.backend.objects
    assert isinstance(objects, FilesystemObjectStorage)
    return {objects.path_of(r.opaque_id.decode()) for r in running.backend.results.values() if r.opaque_id}


def refusal(call: Callable[[], Any]) -> list[str]:
    try:
        call()
    except grpc.RpcError as exc:
        return [exc.code().name, exc.details() or ""]  # type: ignore[attr-defined]
    return ["OK", ""]


async def test_inputs_are_read_and_outputs_stored_with_no_file_in_the_data_folder(tmp_path: Path) -> None:
    seen: Seen = {}

    def processor(th: TaskHandler) -> Output:
        folder = os.path.join(tmp_path / "shared", th.token)
        deps = dict(th.data_dependencies.items())
        th.send_results({th.expected_results[0]: th.payload + b" / " + b" ".join(deps.values())})
        seen["folder existed"] = os.path.exists(folder)
        seen["shared"] = (
            sorted(os.listdir(tmp_path / "shared")) if os.path.exists(tmp_path / "shared") else []
        )
        return Output()

    async with agent_with(tmp_path, processor) as running:
        acquired = await running.backend.submit({"action": "any"}, deps=[b"first", b"second"])
        outcome = await running.backend.outcome(acquired)
        assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
        [output] = acquired.task.expected_output_ids
        assert [c.result_id for c in outcome.completions] == [output]
        assert await running.backend.data(outcome, output) == b'{"action": "any"} / first second'
        # Under the run's prefix, as an output file moved into storage would be.
        assert outcome.completions[0].opaque_id.decode().startswith(acquired.object_prefix)
        assert seen == {"folder existed": False, "shared": []}
        await running.idle()
        assert files_left(running.shared) == []


async def test_the_data_folder_is_made_for_resource_data_and_for_a_processor_that_uses_it(
    tmp_path: Path,
) -> None:
    seen: Seen = {}

    def processor(th: TaskHandler) -> Output:
        spec = json.loads(th.payload)
        folder = tmp_path / "shared" / th.token
        seen.setdefault("folders", []).append(str(folder))
        seen["before"] = folder.exists()
        if spec["action"] == "resource":
            data = th.get_resource_data(spec["id"])  # the SDK reads the file GetResourceData wrote
            seen["file"] = (folder / spec["id"]).read_bytes()
        else:
            with open(os.path.join(th.data_folder, "scratch"), "wb") as scratch:
                scratch.write(b"my own file")
            data = (folder / "scratch").read_bytes()
        th.send_results({th.expected_results[0]: data})
        return Output()

    async with agent_with(tmp_path, processor) as running:
        backend = running.backend
        resource = await backend.add_data("session-r", b"a resource")
        fetching = await backend.submit({"action": "resource", "id": resource}, session_id="session-r")
        outcome = await backend.outcome(fetching)
        assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
        assert await backend.data(outcome, fetching.task.expected_output_ids[0]) == b"a resource"
        assert (seen["before"], seen["file"]) == (False, b"a resource")

        writing = await backend.submit({"action": "scratch"})
        outcome = await backend.outcome(writing)
        assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
        assert await backend.data(outcome, writing.task.expected_output_ids[0]) == b"my own file"
        assert seen["before"] is False
        await running.idle()
        # Removed at the end of each run, as a separate worker's.
        assert not any(Path(folder).exists() for folder in seen["folders"])
        assert files_left(running.shared) == []


@pytest.mark.parametrize("ending", ["raise", "error"])
async def test_the_outputs_of_a_failed_run_are_deleted(tmp_path: Path, ending: str) -> None:
    seen: Seen = {}

    def processor(th: TaskHandler) -> Output:
        th.send_results({th.expected_results[0]: b"not kept"})
        seen["objects while running"] = {p for p in (tmp_path / "data").rglob("*") if p.is_file()}
        if ending == "raise":
            raise RuntimeError("failed after sending its result")
        return Output("failed after sending its result")

    async with agent_with(tmp_path, processor) as running:
        acquired = await running.backend.submit({"action": "any"})
        outcome = await running.backend.outcome(acquired)
        assert outcome.kind is (OutcomeKind.CRASH if ending == "raise" else OutcomeKind.ERROR)
        assert not outcome.completions
        known = known_object_files(running)
        assert len(seen["objects while running"] - known) == 1, "the output was stored while it ran"
        await running.idle()
        assert object_files(running) == known, "and deleted with the failed run"


async def test_outputs_outside_the_tasks_scope_are_refused_as_notified_files_are(tmp_path: Path) -> None:
    seen: Seen = {}

    def processor(th: TaskHandler) -> Output:
        out = th.expected_results[0]
        made = th.create_results({"made": b"with its data"})["made"].result_id
        later = th.create_results_metadata(["later"])["later"].result_id
        th.submit_tasks([TaskDefinition(th.payload_id, [later])])
        seen["unknown"] = refusal(lambda: th.send_results({"not-a-result-of-mine": b"x"}))
        seen["created with data"] = refusal(lambda: th.send_results({made: b"again"}))
        seen["handed over"] = refusal(lambda: th.send_results({later: b"mine after all"}))
        # Sent twice: the second replaces the first, as rewriting a file would.
        th.send_results({out: b"first"})
        th.send_results({out: b"second"})
        return Output()

    async with agent_with(tmp_path, processor) as running:
        acquired = await running.backend.submit({"action": "any"})
        outcome = await running.backend.outcome(acquired)
        assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
        code, details = seen["unknown"]
        assert code == "INVALID_ARGUMENT" and "neither an expected output" in details
        code, details = seen["created with data"]
        assert code == "INVALID_ARGUMENT" and "already received its data through CreateResults" in details
        code, details = seen["handed over"]
        assert code == "INVALID_ARGUMENT" and "handed over to subtask" in details
        [output] = acquired.task.expected_output_ids
        assert sorted(c.result_id for c in outcome.completions if c.result_id == output) == [output]
        assert await running.backend.data(outcome, output) == b"second"
        # One object per result: nothing stored for the refused sends, none left by the replaced one.
        await running.idle()
        stored = {running.backend.objects.path_of(c.opaque_id.decode()) for c in outcome.completions}  # type: ignore[attr-defined]
        assert object_files(running) == known_object_files(running) | stored
        assert len(stored) == 2


@pytest.mark.parametrize("reads_it", [False, True])
async def test_an_input_is_read_only_if_asked_for_and_a_missing_one_is_an_error(
    tmp_path: Path, reads_it: bool
) -> None:
    def processor(th: TaskHandler) -> Output:
        [dep] = list(th.data_dependencies)  # listing reads nothing
        spec = json.loads(th.payload)
        os.unlink(spec["object"])  # the input's object goes away while the task runs
        if reads_it:
            try:
                th.data_dependencies[dep]
            except FileNotFoundError:  # what the SDK raises for a missing file: caught, and yet the run fails
                pass
        th.send_results({th.expected_results[0]: b"done"})
        return Output()

    async with agent_with(tmp_path, processor) as running:
        backend = running.backend
        dep = await backend.add_data("session-m", b"lost")
        objects = backend.objects
        assert isinstance(objects, FilesystemObjectStorage)
        path = objects.path_of(backend.results[dep].opaque_id.decode())
        acquired = await backend.submit({"object": str(path)}, session_id="session-m")
        acquired.task.data_dependencies.append(dep)
        outcome = await backend.outcome(acquired)
        if reads_it:
            assert outcome.kind is OutcomeKind.ERROR
            assert outcome.message.startswith("Input data unavailable: object ")
            assert not outcome.completions
        else:
            assert outcome.kind is OutcomeKind.SUCCESS, outcome.message


async def test_a_storage_behind_a_network_is_reached_through_the_agents_loop(tmp_path: Path) -> None:
    """Redis: the small payload is read before the call, the large input when the processor asks for it,
    the output stored through the agent's loop; a failed run's output deleted there too."""
    from armonik_core.adapters.objects.redis import RedisObjectStorage, RedisSettings
    from armonik_core.config import Environment
    from tests.contract.backends.redis import drop_prefix
    from tests.contract.backends.service import require_service

    settings = RedisSettings.from_env(Environment())
    host, port, _ = settings.address()
    require_service("Redis", host, port)
    settings = dataclasses.replace(settings, instance_name=f"armonik-test-{uuid.uuid4().hex[:12]}")
    objects = RedisObjectStorage(settings)
    large = os.urandom(200_000)
    seen: Seen = {}

    def processor(th: TaskHandler) -> Output:
        [dep] = list(th.data_dependencies)
        out = th.expected_results[0]
        th.send_results({out: th.payload + th.data_dependencies[dep]})
        if json.loads(th.payload)["action"] == "raise":
            seen["key"] = th._run.stored[out].opaque_id.decode()  # type: ignore[attr-defined]
            raise RuntimeError("failed after sending its result")
        return Output()

    try:
        async with agent_with(tmp_path, processor, objects) as running:
            acquired = await running.backend.submit({"action": "ok"}, deps=[large])
            outcome = await running.backend.outcome(acquired)
            assert outcome.kind is OutcomeKind.SUCCESS, outcome.message
            data = await running.backend.data(outcome, acquired.task.expected_output_ids[0])
            assert data == b'{"action": "ok"}' + large

            failing = await running.backend.submit({"action": "raise"}, deps=[large])
            outcome = await running.backend.outcome(failing)
            assert outcome.kind is OutcomeKind.CRASH
            await running.idle()
            assert seen["key"] and await objects.size(seen["key"]) is None
    finally:
        await drop_prefix(objects)
        await objects.close()
