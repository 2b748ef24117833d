"""A local deployment's data in memory: the plan puts the shared cache folders and the filesystem object
storage under the deployment's memory folder when the parameters ask for it, and that folder is created
private to this user, refused when someone else's, and removed whole."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from armonik_deploy.local import destroy
from armonik_deploy.memory import MemoryFolderError, memory_root, prepare_memory_root, remove_memory_root
from armonik_deploy.parameters import ParametersError, parameters_from_dict
from armonik_deploy.plan import Plan, build_plan
from armonik_deploy.supervisor import Layout
from tests.support import short_folder

WORKER = {"command": ["{python}", "worker.py"]}


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    yield from short_folder("akmem-")


def plan_of(tmp_path: Path, **overrides: Any) -> Plan:
    data: dict[str, Any] = {
        "compute_plane": {
            "fast": {"replicas": 1, "worker": [WORKER], "cache_config": {"memory": True}},
            "disk": {"replicas": 1, "worker": [WORKER]},
        },
        "control_plane": {"default_partition": "fast"},
    }
    data.update(overrides)
    file = tmp_path / "p.tfvars"
    return build_plan(parameters_from_dict(data, str(file)), file, tmp_path / "generated", cwd=tmp_path)


def env_of(plan: Plan, name: str) -> dict[str, str]:
    return next(spec.env for spec in plan.processes if spec.name == name)


def test_a_memory_cache_puts_that_partitions_data_folders_in_memory(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    root = memory_root(tmp_path / "generated")
    assert plan.memory_root == str(root)
    assert root.parent == Path("/dev/shm")
    fast, disk = env_of(plan, "fast-0-polling-agent"), env_of(plan, "disk-0-polling-agent")
    assert fast["Pollster__SharedCacheFolder"] == str(root / "shared")
    assert env_of(plan, "fast-0-worker")["Pollster__SharedCacheFolder"] == str(root / "shared")
    assert disk["Pollster__SharedCacheFolder"] == str(tmp_path / "generated" / "cache" / "shared")
    # The objects stay where they were: only the cache was asked for.
    assert "LocalStorage__Path" not in fast
    assert "LocalStorage__Path" not in env_of(plan, "control-plane")


def test_objects_in_memory_for_every_process_that_opens_them(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, local={"object_storage": {"memory": True}})
    objects = str(memory_root(tmp_path / "generated") / "objects")
    for name in ("control-plane", "fast-0-polling-agent", "disk-0-polling-agent"):
        assert env_of(plan, name)["LocalStorage__Path"] == objects
    assert "LocalStorage__Path" not in env_of(plan, "fast-0-worker")  # a worker never opens the storage


def test_objects_in_a_folder_of_ones_choice(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, local={"object_storage": {"path": "objects-elsewhere"}})
    assert env_of(plan, "control-plane")["LocalStorage__Path"] == str(
        tmp_path / "generated" / "objects-elsewhere"
    )


def test_nothing_in_memory_unless_asked(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, compute_plane={"fast": {"replicas": 1, "worker": [WORKER]}})
    assert plan.memory_root is None
    assert "/dev/shm" not in env_of(plan, "fast-0-polling-agent")["Pollster__SharedCacheFolder"]


def test_two_deployments_have_two_memory_folders(tmp_path: Path) -> None:
    assert memory_root(tmp_path / "a") != memory_root(tmp_path / "b")
    assert memory_root(tmp_path / "a") == memory_root(tmp_path / "x" / ".." / "a")


@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        (
            {"local": {"object_storage": {"memory": True, "path": "/srv"}}},
            "local.object_storage.path",
            "not both",
        ),
        ({"local": {"object_storage": {"memory": True}}, "redis": {}}, "local.object_storage", "redis"),
        ({"local": {"object_storage": {"path": "/srv"}}, "minio": {}}, "local.object_storage", "minio"),
        ({"local": {"object_storage": {"path": ""}}}, "local.object_storage.path", ""),
    ],
)
def test_contradictory_object_storage_settings_are_refused(
    tmp_path: Path, overrides: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ParametersError) as raised:
        plan_of(tmp_path, **overrides)
    assert raised.value.path == key
    assert message in str(raised.value)


def test_a_size_limit_is_said_not_to_be_enforced_locally(tmp_path: Path) -> None:
    fast = {"replicas": 1, "worker": [WORKER], "cache_config": {"memory": True, "size_limit": "1Gi"}}
    plan = plan_of(tmp_path, compute_plane={"fast": fast})
    assert any("size_limit: not enforced locally" in warning for warning in plan.warnings), plan.warnings


def test_the_memory_folder_is_created_private(tmp_path: Path) -> None:
    root = memory_root(tmp_path / "generated", base=tmp_path)
    prepare_memory_root(root)
    prepare_memory_root(root)  # again, at a redeploy
    assert root.is_dir() and (root.stat().st_mode & 0o777) == 0o700
    (root / "objects").mkdir()
    (root / "objects" / "an-object").write_bytes(b"data")
    remove_memory_root(root)
    assert not root.exists()
    remove_memory_root(root)  # already gone: nothing to do


def test_a_memory_folder_others_may_enter_is_refused(tmp_path: Path) -> None:
    root = memory_root(tmp_path / "generated", base=tmp_path)
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    with pytest.raises(MemoryFolderError, match="closed to others"):
        prepare_memory_root(root)


def test_a_link_in_place_of_the_memory_folder_is_refused_and_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (target / "keep").write_bytes(b"not ours to remove")
    root = memory_root(tmp_path / "generated", base=tmp_path)
    root.symlink_to(target)
    with pytest.raises(MemoryFolderError):
        prepare_memory_root(root)
    remove_memory_root(root)
    assert (target / "keep").read_bytes() == b"not ours to remove"


def test_no_memory_file_system_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MemoryFolderError, match="no memory file system"):
        prepare_memory_root(memory_root(tmp_path, base=tmp_path / "missing"))


def test_destroy_removes_the_memory_folder_even_when_the_last_plan_kept_nothing_there(tmp_path: Path) -> None:
    generated = tmp_path / "generated"
    Layout(generated).deploy.mkdir(parents=True)
    root = memory_root(generated)
    prepare_memory_root(root)  # an earlier deploy kept data in memory; the last plan (none here) does not
    (root / "objects").mkdir()
    try:
        destroy(Layout(generated))
        assert not root.exists()
    finally:
        remove_memory_root(root)
