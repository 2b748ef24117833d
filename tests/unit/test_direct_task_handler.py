"""An in-process processor's `TaskHandler` is built from the run itself, not from a ProcessRequest parsed back:
what the processor sees must be what the SDK's own `TaskHandler` makes of the request a separate worker gets."""

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from armonik.protogen.common.worker_common_pb2 import ProcessRequest
from armonik.worker import TaskHandler

from armonik_core.adapters.objects.filesystem import FilesystemObjectStorage
from armonik_core.control_plane.convert import options_to_proto
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.records import Task
from armonik_core.domain.statuses import TaskStatus
from armonik_core.polling_agent.agent_service import TaskRun
from armonik_core.polling_agent.backend import AcquiredTask
from armonik_core.polling_agent.direct_data import DirectTaskHandler, ObjectAccess, sdk_options
from armonik_core.polling_agent.worker_client import process_request
from tests.unit.test_record_conversion import OPTIONS


def _run(tmp_path: Path, options: TaskOptions, deps: list[str]) -> TaskRun:
    task = Task(
        task_id="task-1",
        session_id="session-1",
        status=TaskStatus.DISPATCHED,
        options=options,
        payload_id="payload-1",
        created_at=0.0,
        expected_output_ids=["out-1", "out-2"],
        data_dependencies=deps,
    )
    acquired = AcquiredTask(task, TaskOptions(), ["default"], "lease")
    return TaskRun(acquired, "token-1", tmp_path / "shared" / "token-1")


def _attributes(handler: TaskHandler) -> dict[str, Any]:
    """What a processor reads of a handler: its attributes, as the SDK's `__init__` sets them."""
    names = [
        name for name in vars(TaskHandler(ProcessRequest(), None)) if name not in ("_client", "_payload")
    ]
    return {name: getattr(handler, name) for name in names}


@pytest.mark.parametrize(
    "options",
    [
        TaskOptions(),
        OPTIONS,
        TaskOptions(max_duration=1.2345678),
        TaskOptions(max_duration=0.0000015),
        TaskOptions(max_duration=1.9999999999),
        TaskOptions(max_duration=86400 * 365 * 100 + 0.25),
    ],
)
def test_the_handler_holds_what_the_sdk_parses_from_the_process_request(
    tmp_path: Path, options: TaskOptions
) -> None:
    run = _run(tmp_path, options, ["dep-1", "dep-2"])
    loop = asyncio.new_event_loop()
    try:
        objects = ObjectAccess(FilesystemObjectStorage(tmp_path / "objects"), loop)
        direct = DirectTaskHandler(run, None, None, objects, 4096)  # type: ignore[arg-type]
    finally:
        loop.close()
    sdk = TaskHandler(process_request(run, 4096), None)  # type: ignore[arg-type]
    assert not run.data_folder.exists()  # made when the processor first asks for it (below)

    expected, got = _attributes(sdk), _attributes(direct)
    assert set(got) >= {"session_id", "task_id", "task_options", "token", "configuration", "payload_id"}
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert isinstance(got[name], type(value)), name
    # The inputs are listed alike, without reading any; everything else is equal.
    assert list(got.pop("data_dependencies")) == list(expected.pop("data_dependencies")) == ["dep-1", "dep-2"]
    assert got == expected
    assert type(direct.task_options.max_duration) is timedelta
    assert direct.expected_results is not run.task.expected_output_ids  # the processor's own list
    assert direct.task_options.options is not options.options


def test_sdk_options_convert_the_duration_as_protobuf_does() -> None:
    for seconds in (0.0, 0.5, 1e-7, 2.0000004, 3.9999996, 12345.678901, 7.0000009999):
        request = ProcessRequest(task_options=options_to_proto(TaskOptions(max_duration=seconds)))
        sdk = TaskHandler(request, None)  # type: ignore[arg-type]
        assert sdk_options(TaskOptions(max_duration=seconds)).max_duration == sdk.task_options.max_duration
