"""Object storage on Redis, through the `redis.asyncio` client.

Settings (upstream ArmoniK's names): `Redis__EndpointUrl` (`127.0.0.1:6379`; `redis://` or `rediss://` URLs are
accepted too), `Redis__User`, `Redis__Password`, `Redis__Ssl` (TLS, checked against `Redis__CaPath` when
given; `Redis__AllowHostMismatch` accepts a certificate issued for another name), `Redis__InstanceName`
(prefix of every key, `ArmoniKRedis`), `Redis__Timeout` (milliseconds, 30000), `Redis__ClientName`,
`Redis__MaxRetry` and `Redis__MsAfterRetry` (reconnections before a command fails).

Layout. An object's *head* is the string key `<InstanceName>:object:<key>` (the key's UTF-8 bytes, so any
character is fine). An object of at most `chunk_size` bytes (1 MiB) lives in its head: `I<data>`, one key, one
GET. A larger one is cut into chunks of `chunk_size` bytes stored under `<InstanceName>:chunk:<version>:<n>`
and its head says `C<version> <size> <count>`; readers fetch the chunks one by one, so neither side ever holds
more than a chunk. `version` is a random id drawn by each write.

Atomicity. A large write first stores its chunks under its new version, each with an expiry (`pending_ttl`,
a day) so that the chunks of a writer that dies are reclaimed; then one Lua script (atomic in Redis) checks
that every chunk is still there, removes their expiry, points the head at the new version and unlinks the
chunks of the version it replaces. Readers therefore see the old object or the new one, never a mix, and a
write that fails (the caller's chunk iterator raises, Redis refuses a chunk) leaves the previous object as it
was; its own chunks are unlinked at once, or expire. The script is idempotent (a retried commit of an
already committed version does nothing), because the client retries a command whose answer was lost.

A reader streaming a large object while it is replaced or deleted finds a chunk gone and gets an
ObjectStorageError saying so, instead of data mixed from two versions.

Not for Redis Cluster: the scripts reach chunk keys they build themselves, which a cluster forbids.
"""

from __future__ import annotations

import contextlib
import ssl
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff

from armonik_core.config import ConfigurationError, Environment

from .base import ObjectNotFound
from .errors import ObjectStorageError, ObjectStorageUnavailable
from .parts import Piece, write_in_parts
from .server import ServerObjectStorage

_MIB = 1 << 20
#: Keys handed to one script call or one pipeline by `delete` and `put_many`.
_BATCH = 500
_INLINE = b"I"

#: KEYS[1] head; ARGV: chunk key base, version ('' for an inline object), chunk count, size, inline data.
_COMMIT = """
local head, base, version, count = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local old_version, old_count = string.match(redis.call('GETRANGE', head, 0, 127), '^C(%x+) %d+ (%d+)$')
if version ~= '' and old_version == version then
  return 0
end
for i = 0, count - 1 do
  if redis.call('EXISTS', base .. version .. ':' .. i) == 0 then
    return redis.error_reply('ARMONIK_CHUNK_LOST chunk ' .. i .. ' of the new version expired or was evicted')
  end
end
for i = 0, count - 1 do
  redis.call('PERSIST', base .. version .. ':' .. i)
end
if version == '' then
  redis.call('SET', head, 'I' .. ARGV[5])
else
  redis.call('SET', head, 'C' .. version .. ' ' .. ARGV[4] .. ' ' .. count)
end
if old_version then
  for i = 0, tonumber(old_count) - 1 do
    redis.call('UNLINK', base .. old_version .. ':' .. i)
  end
end
return 1
"""

#: KEYS heads; ARGV[1] chunk key base.
_DELETE = """
for _, head in ipairs(KEYS) do
  local version, count = string.match(redis.call('GETRANGE', head, 0, 127), '^C(%x+) %d+ (%d+)$')
  if version then
    for i = 0, tonumber(count) - 1 do
      redis.call('UNLINK', ARGV[1] .. version .. ':' .. i)
    end
  end
  redis.call('UNLINK', head)
end
return 1
"""

#: KEYS[1] head. An inline head is never empty (it holds its 'I'), so an empty range means no object.
_SIZE = """
local start = redis.call('GETRANGE', KEYS[1], 0, 127)
if start == '' then
  return false
end
if string.sub(start, 1, 1) == 'I' then
  return redis.call('STRLEN', KEYS[1]) - 1
end
return tonumber(string.match(start, '^C%x+ (%d+) %d+$'))
"""


@dataclass(frozen=True, slots=True)
class RedisSettings:
    endpoint_url: str = "127.0.0.1:6379"
    user: str = ""
    password: str = ""
    ssl: bool = False
    ca_path: str = ""
    #: Accept a server certificate issued for another name (upstream's `AllowHostMismatch`).
    allow_host_mismatch: bool = False
    instance_name: str = "ArmoniKRedis"
    timeout_ms: int = 30_000
    client_name: str = "ArmoniK.Core"
    max_retry: int = 5
    ms_after_retry: int = 500
    chunk_size: int = _MIB
    #: Seconds the chunks of an unfinished write live: the time a single large write may take.
    pending_ttl: int = 24 * 3600

    @staticmethod
    def from_env(env: Environment) -> RedisSettings:
        default = RedisSettings()
        names = (
            "endpoint_url user password ssl ca_path allow_host_mismatch instance_name timeout_ms client_name"
        )
        names += " max_retry ms_after_retry"
        settings = RedisSettings(**env.section("Redis", default, names, {"timeout_ms": "Timeout"}))
        settings.validate()
        return settings

    def validate(self) -> None:
        """Reject settings that could only fail later, naming the variable."""
        self.address()
        if self.timeout_ms <= 0:
            raise ConfigurationError("Redis__Timeout must be a positive number of milliseconds")
        if self.max_retry < 0 or self.ms_after_retry < 0:
            raise ConfigurationError("Redis__MaxRetry and Redis__MsAfterRetry must not be negative")
        if self.chunk_size <= 0 or self.pending_ttl <= 0:
            raise ConfigurationError("the Redis chunk size and pending TTL must be positive")
        if self.ca_path and not Path(self.ca_path).is_file():
            raise ConfigurationError(f"Redis__CaPath={self.ca_path!r}: no such file")

    def address(self) -> tuple[str, int, bool]:
        """(host, port, TLS?) of `Redis__EndpointUrl`; `rediss://` implies TLS."""
        url = self.endpoint_url if "://" in self.endpoint_url else f"redis://{self.endpoint_url}"
        parts = urlsplit(url)
        try:
            port = parts.port or 6379
        except ValueError:
            port = -1
        if parts.scheme not in ("redis", "rediss") or not parts.hostname or port < 0:
            raise ConfigurationError(f"Redis__EndpointUrl={self.endpoint_url!r}: expected host:port")
        return parts.hostname, port, self.ssl or parts.scheme == "rediss"


def _connect(settings: RedisSettings) -> Redis:
    host, port, tls = settings.address()
    timeout = settings.timeout_ms / 1000
    return Redis(
        host=host,
        port=port,
        username=settings.user or None,
        password=settings.password or None,
        ssl=tls,
        ssl_ca_certs=settings.ca_path or None,
        ssl_cert_reqs="required" if tls else "none",
        ssl_check_hostname=tls and not settings.allow_host_mismatch,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        client_name=settings.client_name or None,
        retry=Retry(ConstantBackoff(settings.ms_after_retry / 1000), settings.max_retry),
    )


class RedisObjectStorage(ServerObjectStorage[RedisSettings]):
    """ObjectStorage in Redis (see the module docstring)."""

    backend = "Redis"

    def __init__(self, settings: RedisSettings | None = None) -> None:
        super().__init__(settings or RedisSettings())
        self._redis = _connect(self._settings)
        prefix = self._settings.instance_name.encode()
        self._head_prefix = prefix + b":object:"
        self._chunk_base = prefix + b":chunk:"
        self._commit = self._redis.register_script(_COMMIT)
        self._delete = self._redis.register_script(_DELETE)
        self._size = self._redis.register_script(_SIZE)

    @classmethod
    def from_env(cls, env: Environment | None = None) -> RedisObjectStorage:
        return cls(RedisSettings.from_env(env or Environment()))

    @property
    def redis(self) -> Redis:
        """The underlying client (health checks, operators' tools and tests)."""
        return self._redis

    def _head(self, key: str) -> bytes:
        return self._head_prefix + key.encode("utf-8", "surrogatepass")

    def _chunk(self, version: bytes, index: int) -> bytes:
        return b"%s%s:%d" % (self._chunk_base, version, index)

    @contextlib.contextmanager
    def _failures(self, action: str, key: str | None) -> Iterator[None]:
        """Turn a failure of Redis or of the network into an ObjectStorageError naming the endpoint."""
        try:
            yield
        except (redis_errors.AuthenticationError, redis_errors.AuthorizationError) as error:
            raise self._error(ObjectStorageError, action, key, _reason(error)) from error
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as error:
            kind = ObjectStorageError if _is_tls_refusal(error) else ObjectStorageUnavailable
            raise self._error(kind, action, key, _reason(error)) from error
        except redis_errors.RedisError as error:
            raise self._error(ObjectStorageError, action, key, _reason(error)) from error

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        writer = _VersionWriter(self, key)

        async def write(part: Piece, last: bool, size: int) -> None:
            if last and not writer.count:
                await writer.commit(size, part)  # small enough to live in the head
                return
            await writer.write(part)
            if last:
                await writer.commit(size, b"")

        return await write_in_parts(chunks, self._settings.chunk_size, write, writer.discard)

    async def put_many(self, objects: Mapping[str, bytes]) -> None:
        """Inline objects committed in pipelines of `_BATCH` (a large one is written as `put` does)."""
        small = {key: data for key, data in objects.items() if len(data) <= self._settings.chunk_size}
        for key in objects.keys() - small.keys():
            await self.put_bytes(key, objects[key])
        items = list(small.items())
        for start in range(0, len(items), _BATCH):
            batch = items[start : start + _BATCH]
            with self._failures(f"writing {len(batch)} objects, the first being", batch[0][0]):
                pipe = self._redis.pipeline(transaction=False)
                for key, data in batch:
                    await self._commit(
                        keys=[self._head(key)], args=[self._chunk_base, b"", 0, len(data), data], client=pipe
                    )
                await pipe.execute()

    async def get(self, key: str, chunk_size: int) -> AsyncIterator[bytes]:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, not {chunk_size}")
        with self._failures("reading", key):
            head = await self._get_bytes(self._head(key))
        if head is None:
            raise ObjectNotFound(key)
        if head[:1] == _INLINE:
            for start in range(1, len(head), chunk_size):
                yield head[start : start + chunk_size]
            return
        version, _, count = _parse_chunked(head)
        for index in range(count):
            with self._failures("reading", key):
                data = await self._get_bytes(self._chunk(version, index))
            if data is None:
                raise self._error(
                    ObjectStorageError, "reading", key, "the object was replaced or deleted while being read"
                )
            if len(data) <= chunk_size:
                yield data
                continue
            for start in range(0, len(data), chunk_size):
                yield data[start : start + chunk_size]

    async def _get_bytes(self, name: bytes | str) -> bytes | None:
        """GET of a client opened without response decoding: bytes (the typing says bytes or str)."""
        value = await self._redis.get(name)
        return value.encode() if isinstance(value, str) else value

    async def size(self, key: str) -> int | None:
        with self._failures("reading the size of", key):
            size = await self._size(keys=[self._head(key)])
        return None if size is None else int(size)

    async def delete(self, keys: Collection[str]) -> None:
        heads = [self._head(key) for key in keys]
        for start in range(0, len(heads), _BATCH):
            with self._failures(f"deleting {len(heads)} objects", None):
                await self._delete(keys=heads[start : start + _BATCH], args=[self._chunk_base])

    async def close(self) -> None:
        await self._redis.aclose()


def _reason(error: BaseException) -> str:
    """The error's message, led by its class when that says more (the client strips `OOM`, `NOPERM`, ...
    from the server's message and names the class after them instead)."""
    name = type(error).__name__
    return str(error) if name in ("ResponseError", "ConnectionError") else f"{name}: {error}"


def _is_tls_refusal(error: BaseException) -> bool:
    """Whether the server was reached but not trusted (its certificate): retrying will not help. The
    client raises its own ConnectionError while handling the TLS error, which stays in the chain."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _parse_chunked(head: bytes) -> tuple[bytes, int, int]:
    """(version, size, chunk count) of a chunked object's head."""
    version, size, count = head[1:].split(b" ")
    return version, int(size), int(count)


class _VersionWriter:
    """The chunks of one write, under a version of their own until `commit` makes it the object's."""

    def __init__(self, storage: RedisObjectStorage, key: str) -> None:
        self._storage = storage
        self._redis = storage._redis
        self._key = key
        self._version = uuid.uuid4().hex.encode()
        self.count = 0

    async def write(self, data: Piece) -> None:
        name = self._storage._chunk(self._version, self.count)
        with self._storage._failures("writing", self._key):
            # Any buffer is sent as is (no copy); the stubs only name bytes.
            await self._redis.set(name, cast(bytes, data), ex=self._storage.settings.pending_ttl)
        self.count += 1

    async def commit(self, size: int, inline: Piece) -> None:
        """Make this version the object (`inline` is the whole object when no chunk was written)."""
        storage = self._storage
        if self.count:
            args: list[bytes | int] = [storage._chunk_base, self._version, self.count, size, b""]
        else:
            args = [storage._chunk_base, b"", 0, size, cast(bytes, inline)]
        try:
            with storage._failures("writing", self._key):
                await storage._commit(keys=[storage._head(self._key)], args=args)
        except ObjectStorageUnavailable:
            # The connection broke: the commit may have happened, so the chunks must stay. Had it not, they
            # still expire (`pending_ttl`).
            self.count = 0
            raise
        self.count = 0  # committed: nothing left to discard

    async def discard(self) -> None:
        """Unlink the chunks of a write that will not be committed (they would expire anyway)."""
        if not self.count:
            return
        names = [self._storage._chunk(self._version, index) for index in range(self.count)]
        with contextlib.suppress(redis_errors.RedisError, OSError):
            await self._redis.unlink(*names)
