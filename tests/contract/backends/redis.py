"""The Redis object storage backend, against the Redis server of `Redis__EndpointUrl` (127.0.0.1:6379).

Each test gets a key prefix of its own (`Redis__InstanceName`), so tests never see each other's keys on the
shared server, and every key under it is removed after the test.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path

from armonik_core.adapters.objects.redis import RedisObjectStorage, RedisSettings
from armonik_core.config import Environment
from tests.contract.backends.service import require_service
from tests.contract.harness import StorageBackend


async def drop_prefix(storage: RedisObjectStorage) -> None:
    """Unlink every key under the storage's instance name (test clean-up)."""
    connection = storage.redis
    pattern = storage.settings.instance_name.encode() + b":*"
    batch: list[bytes] = []
    async for name in connection.scan_iter(match=pattern, count=1000):
        batch.append(name)
        if len(batch) >= 1000:
            await connection.unlink(*batch)
            batch.clear()
    if batch:
        await connection.unlink(*batch)


class _PrefixJanitor(RedisObjectStorage):
    """One more client in the harness's list: the harness closes its clients after each test, and closing
    this one removes the test's keys (the harness has no other clean-up hook)."""

    async def close(self) -> None:
        await drop_prefix(self)
        await super().close()


def _redis_storage(tmp_path: Path) -> StorageBackend:
    settings = RedisSettings.from_env(Environment())
    host, port, _ = settings.address()
    require_service("Redis", host, port)
    settings = dataclasses.replace(settings, instance_name=f"armonik-test-{uuid.uuid4().hex[:12]}")
    backend = StorageBackend(name="redis", new_client=lambda: RedisObjectStorage(settings))
    backend.clients.append(_PrefixJanitor(settings))
    return backend


STORAGE_BACKENDS: dict[str, Callable[[Path], StorageBackend]] = {"redis": _redis_storage}
