"""Object storage on S3 (MinIO, AWS S3, or any S3-compatible server) through the `minio` client.

Settings (upstream ArmoniK's names): `S3__EndpointUrl` (`http://127.0.0.1:9000`; `https://` means TLS, checked
against `S3__CaPath` when given, the system's CAs otherwise), `S3__BucketName` (`armonik`, created when
missing), `S3__Login`, `S3__Password`, `S3__Region`, `S3__MustForcePathStyle` (path-style URLs; MinIO's client
already uses them for every host but AWS's), `S3__DegreeOfParallelism` (concurrent requests of one client),
`S3__MaxRetry` and `S3__MsAfterRetry` (retries of a request the server could not answer).

Object names: a key made of 1 to 200 characters of `[A-Za-z0-9_-]` (every id ArmoniK makes) is the object's
name as is, so an operator finds a result under its id. Any other key (with `/`, `.` segments, spaces,
unicode, or longer) would be rejected or altered somewhere between the client, the URL and the server (MinIO
refuses `.` and `..` segments, names over 1024 bytes and segments over 255 bytes), so it is stored under
`<readable prefix>~<SHA-256 of the key>`, as the filesystem backend names its files. The two forms never
collide: only the second holds a `~`.

Writes stream: the chunks are re-cut into parts of `part_size` bytes (5 MiB, S3's smallest part; see
`parts.fixed_size_parts`). An object that ends within the first part is sent in a single PUT; a larger one
becomes a multipart upload, one part at a time, so a client holds at most one part (plus the caller's chunk)
whatever the object's size. S3 makes an object visible only when its upload completes, so a write that fails
(the caller's chunk iterator raises, the server goes away) aborts the upload and leaves the previous object
as it was. A client killed mid-upload leaves an incomplete upload on the server, invisible to readers; a
bucket lifecycle rule (`AbortIncompleteMultipartUpload`) reclaims its space.

Why the multipart protocol is driven here rather than by `Minio.put_object(length=-1)`: that method assembles
each part by concatenating reads and then slices off a look-ahead byte, so it holds two or three copies of a
part at once (measured with tracemalloc on a 20 MiB stream in 5 MiB parts: 16 MiB with one upload thread,
25 MiB with its default three, where the contract allows 10). The adapter calls the client's per-request
methods (`_put_object`, `_create_multipart_upload`, `_upload_part`, ...) instead, all in `_Requests`. They
are private to minio, hence the project's `minio<8` pin; a release that changed them would fail every write
of the contract suite at once.

The client is synchronous: every request runs in the storage's own thread pool (`S3__DegreeOfParallelism`
threads), which also bounds the concurrency of `put_many` and `delete`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar, cast
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.datatypes import Part
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error
from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError, SSLError

from armonik_core.config import ConfigurationError, Environment

from .base import ObjectNotFound
from .errors import ObjectStorageError, ObjectStorageUnavailable
from .filesystem import object_file_name
from .parts import Piece, write_in_parts
from .server import ServerObjectStorage

_LOG = logging.getLogger(__name__)
_MIB = 1 << 20
#: S3 refuses smaller parts (except the last one).
MIN_PART_SIZE = 5 * _MIB
#: Bytes read from a response per thread hop when the caller asks for smaller chunks.
_READ_BLOCK = _MIB
_VERBATIM_KEY = re.compile(r"[A-Za-z0-9_-]{1,200}")
_NOT_FOUND = frozenset({"NoSuchKey", "NotFound", "NoSuchObject"})
_CONTENT_TYPE = "application/octet-stream"
_T = TypeVar("_T")


def object_name(key: str) -> str:
    """The S3 object name of a key (see the module docstring)."""
    if _VERBATIM_KEY.fullmatch(key):
        return key
    return object_file_name(key)[1]


@dataclass(frozen=True, slots=True)
class S3Settings:
    endpoint_url: str = "http://127.0.0.1:9000"
    bucket_name: str = "armonik"
    login: str = ""
    password: str = ""
    region: str = ""
    ca_path: str = ""
    must_force_path_style: bool = True
    degree_of_parallelism: int = 8
    part_size: int = MIN_PART_SIZE
    max_retry: int = 5
    ms_after_retry: int = 500
    #: Seconds a request may wait for the server (connecting, then between two reads of its answer).
    timeout: float = 60.0

    @staticmethod
    def from_env(env: Environment) -> S3Settings:
        default = S3Settings()
        names = "endpoint_url bucket_name login password region ca_path must_force_path_style"
        names += " degree_of_parallelism max_retry ms_after_retry"
        settings = S3Settings(**env.section("S3", default, names))
        settings.validate()
        return settings

    def validate(self) -> None:
        """Reject settings that could only fail later, naming the variable."""
        endpoint_address(self.endpoint_url)
        if not self.bucket_name:
            raise ConfigurationError("S3__BucketName must not be empty")
        if self.degree_of_parallelism < 1:
            raise ConfigurationError("S3__DegreeOfParallelism must be at least 1")
        if self.part_size < MIN_PART_SIZE:
            raise ConfigurationError(f"the S3 part size must be at least {MIN_PART_SIZE} bytes")
        if self.max_retry < 0 or self.ms_after_retry < 0:
            raise ConfigurationError("S3__MaxRetry and S3__MsAfterRetry must not be negative")
        if self.ca_path and not Path(self.ca_path).is_file():
            raise ConfigurationError(f"S3__CaPath={self.ca_path!r}: no such file")


def endpoint_address(url: str) -> tuple[str, bool]:
    """(host:port, TLS?) of `S3__EndpointUrl`; a URL without a scheme is plain HTTP."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"S3__EndpointUrl={url!r}: expected http://host:port or https://host:port")
    if parts.path not in ("", "/") or parts.query:
        raise ConfigurationError(f"S3__EndpointUrl={url!r}: a path or query is not supported")
    return parts.netloc, parts.scheme == "https"


def _make_client(settings: S3Settings) -> tuple[Minio, urllib3.PoolManager]:
    host, secure = endpoint_address(settings.endpoint_url)
    pause = settings.ms_after_retry / 1000
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(settings.timeout, 10.0), read=settings.timeout),
        maxsize=settings.degree_of_parallelism + 2,
        cert_reqs="CERT_REQUIRED",
        ca_certs=settings.ca_path or certifi.where(),
        retries=urllib3.Retry(
            total=settings.max_retry,
            backoff_factor=pause,
            backoff_max=pause,
            status_forcelist=[500, 502, 503, 504],
            raise_on_status=False,  # the last answer reaches the client, which reads the S3 error in it
        ),
    )
    client = Minio(
        host,
        access_key=settings.login or None,
        secret_key=settings.password or None,
        secure=secure,
        region=settings.region or None,
        http_client=http,
    )
    if settings.must_force_path_style:
        client.disable_virtual_style_endpoint()
    return client, http


def _network_reason(error: BaseException) -> str:
    """The root cause of a transport failure, without urllib3's pool and object addresses."""
    if isinstance(error, MaxRetryError) and error.reason is not None:
        error = error.reason
    if isinstance(error, NewConnectionError):
        return str(error).split(": ", 1)[-1]
    return f"{type(error).__name__}: {error}"


def _is_tls_refusal(error: BaseException) -> bool:
    """Whether the server was reached but not trusted (its certificate): retrying will not help."""
    if isinstance(error, MaxRetryError) and error.reason is not None:
        error = error.reason
    return isinstance(error, (SSLError, ssl.SSLError))


class _Requests:
    """The S3 requests of one bucket, blocking (run in the storage's threads).

    The only place that uses the client's per-request methods (see the module docstring); every method
    passes a fresh header dict, because the client adds its own headers to the one it is given."""

    def __init__(self, client: Minio, bucket: str, region: str) -> None:
        self._client = client
        self._bucket = bucket
        self._region = region

    def ensure_bucket(self) -> None:
        if self._client.bucket_exists(self._bucket):
            return
        try:
            self._client.make_bucket(self._bucket, location=self._region or None)
        except S3Error as error:
            if error.code != "BucketAlreadyOwnedByYou":  # another client made it meanwhile
                raise

    def put(self, name: str, data: Piece) -> None:
        # The client needs a buffer (len, hashing, sendall), which any Piece is: no copy into bytes.
        self._client._put_object(self._bucket, name, cast(bytes, data), {"Content-Type": _CONTENT_TYPE})

    def start_upload(self, name: str) -> str:
        return self._client._create_multipart_upload(self._bucket, name, {"Content-Type": _CONTENT_TYPE})

    def upload_part(self, name: str, upload_id: str, number: int, data: Piece) -> Part:
        etag = self._client._upload_part(self._bucket, name, cast(bytes, data), None, upload_id, number)
        return Part(number, etag)

    def complete_upload(self, name: str, upload_id: str, parts: list[Part]) -> None:
        self._client._complete_multipart_upload(self._bucket, name, upload_id, parts)

    def abort_upload(self, name: str, upload_id: str) -> None:
        self._client._abort_multipart_upload(self._bucket, name, upload_id)

    def open(self, key: str, name: str) -> _Download:
        try:
            return _Download(self._client.get_object(self._bucket, name))
        except S3Error as error:
            if error.code in _NOT_FOUND:
                raise ObjectNotFound(key) from None
            raise

    def size(self, name: str) -> int | None:
        try:
            return self._client.stat_object(self._bucket, name).size
        except S3Error as error:
            if error.code in _NOT_FOUND:
                return None
            raise

    def remove(self, names: list[str]) -> list[str]:
        """Remove objects (batched by the client); returns the failures, one line per object."""
        failures = self._client.remove_objects(self._bucket, (DeleteObject(name) for name in names))
        return [f"{failure.name}: {failure.code} {failure.message}" for failure in failures]


class _Call(Generic[_T]):
    """A request for the pool that lets go of its arguments as soon as it has run. The pool's worker thread
    drops the request only after the awaiting coroutine was woken up, which may be several chunks later:
    holding on to a 5 MiB part until then would keep two parts alive."""

    __slots__ = ("_function", "_args")

    def __init__(self, function: Callable[..., _T], args: tuple[object, ...]) -> None:
        self._function = function
        self._args = args

    def __call__(self) -> _T:
        args, self._args = self._args, ()
        return self._function(*args)


class _Download:
    """An object's HTTP response, read from worker threads under a lock: a reader that is cancelled leaves
    its thread running, so closing must wait for a read still in progress."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response
        self._lock = threading.Lock()
        self._finished = False

    def read(self, size: int) -> bytes:
        with self._lock:
            data = self._response.read(size)
            self._finished = not data
            return data

    def close(self) -> None:
        """Give the connection back to the pool if the body was read whole; drop it otherwise."""
        with self._lock:
            if not self._finished:
                self._response.close()
            self._response.release_conn()


class S3ObjectStorage(ServerObjectStorage[S3Settings]):
    """ObjectStorage in one bucket of an S3 server (see the module docstring)."""

    backend = "S3"

    def __init__(self, settings: S3Settings | None = None) -> None:
        super().__init__(settings or S3Settings())
        client, self._http = _make_client(self._settings)
        self._requests = _Requests(client, self._settings.bucket_name, self._settings.region)
        self._pool = ThreadPoolExecutor(self._settings.degree_of_parallelism, thread_name_prefix="s3-storage")
        self._bucket_ready = False

    @classmethod
    def from_env(cls, env: Environment | None = None) -> S3ObjectStorage:
        return cls(S3Settings.from_env(env or Environment()))

    async def _call(self, action: str, key: str | None, function: Callable[..., _T], *args: object) -> _T:
        """Run a blocking request in the pool; a failure of the server or of the network becomes an
        ObjectStorageError naming the endpoint, the action and the key."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, _Call(function, args))
        except MinioException as error:
            reason = f"{error.code}: {error.message}" if isinstance(error, S3Error) else str(error)
            raise self._error(ObjectStorageError, action, key, reason) from error
        except (HTTPError, OSError) as error:
            kind = ObjectStorageError if _is_tls_refusal(error) else ObjectStorageUnavailable
            raise self._error(kind, action, key, _network_reason(error)) from error

    async def ensure_bucket(self, action: str = "checking", key: str | None = None) -> None:
        """Create the bucket unless it exists (done once per client, before its first request). A failure
        is reported as one of the caller's `action` on `key`, saying that the bucket was the problem."""
        if self._bucket_ready:
            return
        bucket = self._settings.bucket_name
        try:
            await self._call(action, key, self._requests.ensure_bucket)
        except ObjectStorageError as error:
            reason = f"checking or creating the bucket {bucket!r}: {error.reason}"
            raise self._error(type(error), action, key, reason) from error.__cause__
        self._bucket_ready = True

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        await self.ensure_bucket("writing", key)
        upload = _Upload(self, key)

        async def write(part: Piece, last: bool, size: int) -> None:
            await (upload.finish(part) if last else upload.send(part))

        return await write_in_parts(chunks, self._settings.part_size, write, upload.abort)

    async def put_many(self, objects: Mapping[str, bytes]) -> None:
        """One PUT per object, `S3__DegreeOfParallelism` at a time (S3 has no batched write). Every write
        is over when this returns, failed or not."""
        if not objects:
            return
        await self.ensure_bucket(f"writing {len(objects)} objects, the first being", next(iter(objects)))
        results = await asyncio.gather(
            *(
                self._call("writing", key, self._requests.put, object_name(key), data)
                for key, data in objects.items()
            ),
            return_exceptions=True,
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise failures[0]

    async def get(self, key: str, chunk_size: int) -> AsyncIterator[bytes]:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, not {chunk_size}")
        await self.ensure_bucket("reading", key)
        download = await self._call("reading", key, self._requests.open, key, object_name(key))
        block_size = chunk_size * max(1, _READ_BLOCK // chunk_size)
        try:
            while block := await self._call("reading", key, download.read, block_size):
                if len(block) <= chunk_size:
                    yield block
                    continue
                for start in range(0, len(block), chunk_size):
                    yield block[start : start + chunk_size]
        finally:
            await asyncio.shield(asyncio.get_running_loop().run_in_executor(self._pool, download.close))

    async def size(self, key: str) -> int | None:
        await self.ensure_bucket("reading the size of", key)
        return await self._call("reading the size of", key, self._requests.size, object_name(key))

    async def delete(self, keys: Collection[str]) -> None:
        if not keys:
            return
        await self.ensure_bucket(f"deleting {len(keys)} objects")
        names = [object_name(key) for key in keys]
        failures = await self._call(f"deleting {len(keys)} objects", None, self._requests.remove, names)
        if failures:
            raise self._error(
                ObjectStorageError, f"deleting {len(failures)} objects", None, "; ".join(failures)
            )

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.clear()


class _Upload:
    """One object being written: nothing on the server until the first full part is sent (a small object
    is then one PUT in `finish`), a multipart upload afterwards."""

    def __init__(self, storage: S3ObjectStorage, key: str) -> None:
        self._storage = storage
        self._requests = storage._requests
        self._key = key
        self._name = object_name(key)
        self._upload_id: str | None = None
        self._parts: list[Part] = []

    async def send(self, part: Piece) -> None:
        """Upload a part that is not the last one (starting the multipart upload on the first)."""
        if self._upload_id is None:
            self._upload_id = await self._call(self._requests.start_upload, self._name)
        number = len(self._parts) + 1
        self._parts.append(
            await self._call(self._requests.upload_part, self._name, self._upload_id, number, part)
        )

    async def finish(self, last: Piece) -> None:
        """Send what remains and make the object visible."""
        if self._upload_id is None:
            await self._call(self._requests.put, self._name, last)
            return
        await self.send(last)
        await self._call(self._requests.complete_upload, self._name, self._upload_id, self._parts)
        self._upload_id = None

    async def abort(self) -> None:
        """Drop an unfinished multipart upload. A failure here is logged, not raised: the caller is already
        handling the error that stopped the write, and an upload left behind is invisible to readers."""
        if self._upload_id is None:
            return
        try:
            await self._call(self._requests.abort_upload, self._name, self._upload_id)
        except ObjectStorageError as error:
            _LOG.warning("could not abort the multipart upload of %r: %s", self._key, error)

    async def _call(self, function: Callable[..., _T], *args: object) -> _T:
        return await self._storage._call("writing", self._key, function, *args)
