"""Errors of object storage backends behind a server (S3/MinIO, Redis).

A caller (the control plane answering an upload, a polling agent storing a task's output) must be able to tell
"the object does not exist" (`ObjectNotFound`, in `base`) from "the storage failed", and an operator reading
the message must see which backend, at which address, failed doing what to which object, and why: e.g.
`S3 at http://127.0.0.1:9000 refused writing 'result-1': AccessDenied: Access Denied`.

`ObjectStorageUnavailable` (could not reach the server, or the connection broke) is worth retrying later;
other `ObjectStorageError`s (the server answered no: permissions, quota, out of memory) usually are not.
Errors raised by the caller's own chunk iterator are never wrapped: they propagate unchanged.
"""

from __future__ import annotations


class ObjectStorageError(Exception):
    """The storage backend refused or failed an operation."""

    def __init__(self, backend: str, endpoint: str, action: str, key: str | None, reason: str) -> None:
        self.backend = backend
        self.endpoint = endpoint
        self.action = action
        self.key = key
        self.reason = reason
        super().__init__(self._describe())

    def _describe(self) -> str:
        target = f" {self.key!r}" if self.key is not None else ""
        return f"{self.backend} at {self.endpoint} refused {self.action}{target}: {self.reason}"


class ObjectStorageUnavailable(ObjectStorageError):
    """The backend could not be reached, or the connection to it broke during the operation."""

    def _describe(self) -> str:
        target = f" {self.key!r}" if self.key is not None else ""
        return f"{self.backend} at {self.endpoint} is unreachable while {self.action}{target}: {self.reason}"
