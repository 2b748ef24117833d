"""Choosing the storage backends: `Components__*` variables, and the parameters blocks that set them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from armonik_core.adapters import factory
from armonik_core.config import ConfigurationError, ControlPlaneSettings, Environment
from armonik_deploy.parameters import ParametersError, parameters_from_dict
from armonik_deploy.plan import build_plan
from armonik_deploy.storage import storage_env
from tests.support import short_folder

WORKER = {"command": ["{python}", "worker.py"]}


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A short folder: unix socket paths (under it) are limited to about 100 bytes."""
    yield from short_folder("akstore-")


# -- Components__* -----------------------------------------------------------------------------------------------
def test_embedded_backends_by_default() -> None:
    env = Environment({})
    assert (factory.table_storage(env), factory.queue_storage(env), factory.object_storage(env)) == (
        "sqlite",
        "memory",
        "filesystem",
    )


@pytest.mark.parametrize(
    ("variables", "folder"),
    [({}, "data/objects"), ({"LocalStorage__Path": "{tmp}/in-memory"}, "in-memory")],
)
def test_filesystem_objects_go_to_upstreams_local_storage_path(
    tmp_path: Path, variables: dict[str, str], folder: str
) -> None:
    env = Environment({key: value.replace("{tmp}", str(tmp_path)) for key, value in variables.items()})
    storage = factory.open_object_storage(env, "filesystem", tmp_path / "data", durable=False)
    assert storage.path_of("a-key").is_relative_to(tmp_path / folder)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"Components__TableStorage": "MongoDB"}, ("mongodb", "memory", "filesystem")),
        (
            {"Components__TableStorage": "ArmoniK.Adapters.MongoDB.TableStorage"},
            ("mongodb", "memory", "filesystem"),
        ),
        ({"Components__QueueStorage": "rabbitmq"}, ("sqlite", "rabbitmq", "filesystem")),
        (
            {"Components__QueueAdaptorSettings__ClassName": "ArmoniK.Core.Adapters.Amqp.QueueBuilder"},
            ("sqlite", "activemq", "filesystem"),
        ),
        (
            {"Components__QueueAdaptorSettings__ClassName": "ArmoniK.Core.Adapters.RabbitMQ.QueueBuilder"},
            ("sqlite", "rabbitmq", "filesystem"),
        ),
        (
            {"Components__ObjectStorage": "ArmoniK.Adapters.Redis.ObjectStorage"},
            ("sqlite", "memory", "redis"),
        ),
        (
            {"Components__ObjectStorageAdaptorSettings__ClassName": "ArmoniK.Core.Adapters.S3.ObjectBuilder"},
            ("sqlite", "memory", "s3"),
        ),
        ({"components__objectstorage": "minio"}, ("sqlite", "memory", "s3")),
    ],
)
def test_backends_named_ours_or_upstreams_way(
    variables: dict[str, str], expected: tuple[str, str, str]
) -> None:
    env = Environment(variables)
    assert (factory.table_storage(env), factory.queue_storage(env), factory.object_storage(env)) == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Components__TableStorage", "postgres"),
        ("Components__QueueStorage", "kafka"),
        ("Components__ObjectStorage", "gcs"),
    ],
)
def test_unknown_backend_is_named_with_the_choices(key: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"{key}='{value}': expected one of "):
        ControlPlaneSettings.from_env({key: value})


def test_control_plane_settings_carry_the_choices() -> None:
    settings = ControlPlaneSettings.from_env(
        {"Components__QueueStorage": "rabbitmq", "Components__ObjectStorage": "redis", "Amqp__Host": "broker"}
    )
    assert (settings.table_storage, settings.queue_storage, settings.object_storage) == (
        "sqlite",
        "rabbitmq",
        "redis",
    )
    assert settings.environment.get("Amqp__Host", "") == "broker"


def test_in_memory_queue_needs_the_embedded_state() -> None:
    with pytest.raises(ConfigurationError, match="Components__QueueStorage=memory needs"):
        ControlPlaneSettings.from_env({"Components__TableStorage": "mongodb"})


# -- parameters.tfvars blocks -------------------------------------------------------------------------------------
def params(tmp_path: Path, **blocks: Any) -> Any:
    data = {"compute_plane": {"default": {"replicas": 1, "worker": [WORKER]}}, **blocks}
    return parameters_from_dict(data, str(tmp_path / "p.tfvars"))


def test_no_block_keeps_the_embedded_backends(tmp_path: Path) -> None:
    assert storage_env(params(tmp_path), tmp_path / "p.tfvars") == {}


def test_rabbitmq_and_redis_blocks(tmp_path: Path) -> None:
    env = storage_env(
        params(tmp_path, rabbitmq={"user": "u", "password": "p", "max_priority": 5}, redis={"port": 6380}),
        tmp_path / "p.tfvars",
    )
    assert env == {
        "Components__QueueStorage": "rabbitmq",
        "Amqp__Host": "127.0.0.1",
        "Amqp__Port": "5672",
        "Amqp__User": "u",
        "Amqp__Password": "p",
        "Amqp__MaxPriority": "5",
        "Components__ObjectStorage": "redis",
        "Redis__EndpointUrl": "127.0.0.1:6380",
    }


def test_kubernetes_keys_of_a_block_are_ignored(tmp_path: Path) -> None:
    env = storage_env(
        params(tmp_path, activemq={"image_name": "apache/activemq-classic", "limits": {"cpu": "1"}}),
        tmp_path / "p.tfvars",
    )
    assert env == {"Components__QueueStorage": "activemq", "Amqp__Host": "127.0.0.1", "Amqp__Port": "5673"}


def test_mongodb_block_brings_a_queue_of_its_own(tmp_path: Path) -> None:
    env = storage_env(
        params(tmp_path, mongodb={"connection_string": "mongodb://h/?replicaSet=rs0", "tls": True}),
        tmp_path / "p.tfvars",
    )
    assert env["Components__TableStorage"] == "mongodb"
    assert env["Components__QueueStorage"] == "embedded"
    assert env["MongoDB__ConnectionString"] == "mongodb://h/?replicaSet=rs0"
    assert env["MongoDB__Tls"] == "true"
    ControlPlaneSettings.from_env(env)  # a consistent choice


def test_minio_block(tmp_path: Path) -> None:
    env = storage_env(
        params(
            tmp_path,
            minio={"endpoint_url": "http://s3:9000", "login": "a", "password": "b", "default_bucket": "k"},
        ),
        tmp_path / "p.tfvars",
    )
    assert env == {
        "Components__ObjectStorage": "s3",
        "S3__EndpointUrl": "http://s3:9000",
        "S3__Login": "a",
        "S3__Password": "b",
        "S3__BucketName": "k",
    }


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ({"rabbitmq": {}, "activemq": {}}, r"p.tfvars: activemq: rabbitmq and activemq are both set"),
        ({"redis": {}, "minio": {}}, r"p.tfvars: minio: redis and minio are both set"),
        ({"rabbitmq": {"port": "5672"}}, r"p.tfvars: rabbitmq.port: expected a whole number, got '5672'"),
        ({"mongodb": {"tls": "yes"}}, r"p.tfvars: mongodb.tls: expected true or false, got 'yes'"),
        ({"redis": {"port": True}}, r"p.tfvars: redis.port: expected a whole number, got True"),
    ],
)
def test_bad_blocks_are_named(tmp_path: Path, blocks: dict[str, Any], message: str) -> None:
    with pytest.raises(ParametersError, match=message):
        storage_env(params(tmp_path, **blocks), tmp_path / "p.tfvars")


def test_every_process_but_the_workers_gets_the_choice(tmp_path: Path) -> None:
    plan = build_plan(
        params(tmp_path, rabbitmq={}, redis={}, configurations={"core": {"env": {"Amqp__Port": "5999"}}}),
        tmp_path / "p.tfvars",
        tmp_path / "generated",
        cwd=tmp_path,
    )
    for spec in [*plan.processes, *plan.jobs]:
        is_worker = getattr(spec, "role", "") == "worker"
        assert ("Components__QueueStorage" in spec.env) is not is_worker, spec.name
        if not is_worker:
            assert spec.env["Components__ObjectStorage"] == "redis"
            assert spec.env["Amqp__Port"] == "5999", "configurations.core.env overrides the block"
