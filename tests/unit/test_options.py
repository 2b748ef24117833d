"""Option merging, as ArmoniK.Core's TaskOptions.Merge does it."""

from armonik_core.domain.options import TaskOptions, effective_options, merge_options


def test_task_values_win_and_unset_fall_back() -> None:
    default = TaskOptions(
        max_duration=60,
        max_retries=3,
        priority=2,
        partition_id="default",
        application_name="app",
        engine_type="e",
    )
    task = TaskOptions(max_duration=5, partition_id="gpu")
    merged = merge_options(task, default)
    assert merged.max_duration == 5
    assert merged.max_retries == 3
    assert merged.partition_id == "gpu"
    assert merged.application_name == "app"
    assert merged.engine_type == "e"


def test_priority_is_always_the_tasks() -> None:
    default = TaskOptions(priority=7)
    assert merge_options(TaskOptions(priority=0), default).priority == 0
    assert merge_options(TaskOptions(priority=3), default).priority == 3


def test_free_form_maps_are_unioned_task_keys_winning() -> None:
    default = TaskOptions(options={"a": "1", "b": "2"})
    merged = merge_options(TaskOptions(options={"b": "task", "c": "3"}), default)
    assert merged.options == {"a": "1", "b": "task", "c": "3"}


def test_missing_task_options_copy_the_defaults_without_aliasing() -> None:
    default = TaskOptions(priority=4, options={"k": "v"})
    merged = merge_options(None, default)
    assert merged == default
    merged.options["k"] = "changed"
    assert default.options == {"k": "v"}


def test_effective_options_layers_task_over_request_over_session() -> None:
    session = TaskOptions(
        max_duration=100, max_retries=1, priority=1, partition_id="p", options={"s": "1", "x": "s"}
    )
    request = TaskOptions(max_retries=5, priority=2, options={"x": "r"})
    task = TaskOptions(priority=9, options={"t": "1"})
    merged = effective_options(session, request, task)
    assert merged.max_duration == 100
    assert merged.max_retries == 5
    assert merged.priority == 9
    assert merged.partition_id == "p"
    assert merged.options == {"s": "1", "x": "r", "t": "1"}
    assert effective_options(session, None, None) == session
