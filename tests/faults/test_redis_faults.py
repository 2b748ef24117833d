"""Redis that fails, for real: faults that need a server configuration (a memory limit, a user without write
permission) run on a private `redis-server` started for this module, so the shared Redis is never
reconfigured. The adapter raises a named error that says which backend at which address failed doing what to
which key, and loses nothing already stored."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from armonik_core.adapters.objects.errors import ObjectStorageError, ObjectStorageUnavailable
from armonik_core.adapters.objects.redis import RedisObjectStorage, RedisSettings
from armonik_core.config import Environment
from tests.contract.backends.service import require_service
from tests.faults.object_storage_support import MIB, PAUSE_MS, RETRIES, redis_server, stream, unique_prefix
from tests.support import free_port


@dataclass
class PrivateRedis:
    """A redis-server of this module's own, on a free port, keeping nothing on disk."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def admin(self) -> Redis:
        return Redis(host="127.0.0.1", port=self.port)

    def storage(self, prefix: str, user: str = "", password: str = "") -> RedisObjectStorage:
        return RedisObjectStorage(
            RedisSettings(
                endpoint_url=self.endpoint,
                instance_name=prefix,
                max_retry=RETRIES,
                ms_after_retry=PAUSE_MS,
                user=user,
                password=password,
            )
        )


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    port = free_port()
    with redis_server(port, "--port", str(port)) as process:
        yield PrivateRedis(port, process)


async def close(client: Redis) -> None:
    await client.aclose()  # type: ignore[attr-defined]  # the installed types-redis stubs predate aclose


async def test_redis_unreachable_gives_a_named_error() -> None:
    port = free_port()  # nothing listens there
    storage = RedisObjectStorage(
        RedisSettings(
            endpoint_url=f"127.0.0.1:{port}", timeout_ms=2000, max_retry=RETRIES, ms_after_retry=PAUSE_MS
        )
    )
    try:
        started = time.monotonic()
        with pytest.raises(ObjectStorageUnavailable) as writing:
            await storage.put_bytes("result", b"data")
        with pytest.raises(ObjectStorageUnavailable) as reading:
            await storage.get_bytes("result")
        with pytest.raises(ObjectStorageUnavailable):
            await storage.size("result")

        assert str(writing.value).startswith(
            f"Redis at 127.0.0.1:{port} is unreachable while writing 'result'"
        )
        assert str(reading.value).startswith(
            f"Redis at 127.0.0.1:{port} is unreachable while reading 'result'"
        )
        assert time.monotonic() - started < 10
    finally:
        await storage.close()


async def test_redis_out_of_memory_refuses_the_write_and_keeps_the_object(
    private_redis: PrivateRedis,
) -> None:
    prefix = unique_prefix()
    storage = private_redis.storage(prefix)
    admin = private_redis.admin()
    try:
        await storage.put_bytes("result", b"complete")
        used = int((await admin.info("memory"))["used_memory"])
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", str(used + 3 * MIB))
        try:
            with pytest.raises(ObjectStorageError) as large:
                await storage.put("result", stream(*[bytes([index]) * MIB for index in range(8)]))
            await admin.config_set("maxmemory", str(used + 64 * 1024))
            with pytest.raises(ObjectStorageError) as small:
                await storage.put_bytes("result", b"x" * 200_000)
        finally:
            await admin.config_set("maxmemory", "0")

        for caught in (large, small):
            assert not isinstance(caught.value, ObjectStorageUnavailable)
            message = str(caught.value)
            assert message.startswith(
                f"Redis at {private_redis.endpoint} refused writing 'result': OutOfMemoryError"
            ), message
        assert await storage.get_bytes("result") == b"complete"
        leftovers = [name async for name in admin.scan_iter(match=f"{prefix}:chunk:*")]
        assert leftovers == [], "the chunks of the refused write were not removed"
    finally:
        await storage.close()
        await close(admin)


async def test_redis_user_without_write_permission_is_refused(private_redis: PrivateRedis) -> None:
    prefix = unique_prefix()
    admin = private_redis.admin()
    owner = private_redis.storage(prefix)
    await admin.acl_setuser(
        "reader",
        enabled=True,
        passwords=["+reader-secret"],
        keys=["*"],
        categories=["+@read", "+@connection"],
    )
    reader = private_redis.storage(prefix, user="reader", password="reader-secret")
    try:
        await owner.put_bytes("result", b"complete")

        with pytest.raises(ObjectStorageError) as caught:
            await reader.put_bytes("result", b"overwritten")

        assert not isinstance(caught.value, ObjectStorageUnavailable)
        assert str(caught.value).startswith(f"Redis at {private_redis.endpoint} refused writing 'result'")
        assert "permission" in str(caught.value).lower()
        assert await reader.get_bytes("result") == b"complete"
    finally:
        await reader.close()
        await owner.close()
        await admin.acl_deluser("reader")
        await close(admin)


async def test_redis_wrong_password_is_refused_not_unreachable(private_redis: PrivateRedis) -> None:
    storage = private_redis.storage(unique_prefix(), user="nobody", password="not-the-password")
    try:
        with pytest.raises(ObjectStorageError) as caught:
            await storage.put_bytes("result", b"data")

        assert not isinstance(caught.value, ObjectStorageUnavailable)
        assert str(caught.value).startswith(f"Redis at {private_redis.endpoint} refused writing 'result'")
    finally:
        await storage.close()


async def test_redis_reader_of_a_replaced_object_is_told_not_given_mixed_data() -> None:
    """On the shared Redis: a large object replaced while a reader streams it. The reader must not receive
    the start of one version followed by the rest of another."""
    settings = RedisSettings.from_env(Environment())
    host, port, _ = settings.address()
    require_service("Redis", host, port)
    storage = RedisObjectStorage(
        RedisSettings(endpoint_url=settings.endpoint_url, instance_name=unique_prefix())
    )
    try:
        await storage.put_bytes("result", b"1" * (3 * MIB))
        reading = storage.get("result", MIB)
        first = await anext(reading)

        await storage.put_bytes("result", b"2" * (3 * MIB))

        with pytest.raises(ObjectStorageError, match="replaced or deleted while being read"):
            async for _ in reading:
                pass
        assert first == b"1" * MIB
        assert await storage.get_bytes("result") == b"2" * (3 * MIB)
    finally:
        await storage.delete(["result"])
        await storage.close()
