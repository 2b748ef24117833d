"""The S3 object storage backend, against moto's S3 server (one process for the whole session, see
`tests.s3_server`), or against the S3 server named by `S3__EndpointUrl` when that variable is set (a real
MinIO in CI, with `S3__Login` / `S3__Password`).

Each test gets a bucket of its own, which the adapter creates on first use (so that path is exercised by every
test) and which is emptied and removed after the test: a session leaves nothing behind on the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from armonik_core.adapters.objects.s3 import S3ObjectStorage, S3Settings, _make_client, endpoint_address
from armonik_core.config import Environment
from tests.contract.backends.service import require_service
from tests.contract.harness import StorageBackend
from tests.s3_server import ACCESS_KEY, SECRET_KEY, shared_s3_server


def _server_settings() -> S3Settings:
    env = Environment()
    if env.get("S3__EndpointUrl", ""):
        settings = S3Settings.from_env(env)
    else:
        server = shared_s3_server()
        settings = S3Settings(endpoint_url=server.endpoint, login=ACCESS_KEY, password=SECRET_KEY)
    host, secure = endpoint_address(settings.endpoint_url)
    address = urlsplit(f"//{host}")
    require_service("S3", address.hostname or "127.0.0.1", address.port or (443 if secure else 80))
    return settings


def drop_bucket(settings: S3Settings) -> None:
    """Remove every object of the bucket, then the bucket (blocking; test clean-up)."""
    client, http = _make_client(settings)  # the adapter's own client, as the store it cleans up after
    try:
        names = [item.object_name for item in client.list_objects(settings.bucket_name, recursive=True)]
        failures = list(client.remove_objects(settings.bucket_name, (DeleteObject(n) for n in names if n)))
        assert not failures, failures
        client.remove_bucket(settings.bucket_name)
    except S3Error as error:
        if error.code != "NoSuchBucket":
            raise
    finally:
        http.clear()


class _BucketJanitor(S3ObjectStorage):
    """One more client in the harness's list: the harness closes its clients after each test, and closing
    this one removes the test's bucket (the harness has no other clean-up hook)."""

    async def close(self) -> None:
        await asyncio.to_thread(drop_bucket, self.settings)
        await super().close()


def _s3_storage(tmp_path: Path) -> StorageBackend:
    settings = dataclasses.replace(_server_settings(), bucket_name=f"armonik-test-{uuid.uuid4().hex[:12]}")
    backend = StorageBackend(name="s3", new_client=lambda: S3ObjectStorage(settings))
    backend.clients.append(_BucketJanitor(settings))
    return backend


STORAGE_BACKENDS: dict[str, Callable[[Path], StorageBackend]] = {"s3": _s3_storage}
