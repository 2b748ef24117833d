"""What the object storages behind a server (S3/MinIO, Redis) share: their settings, and errors that name
the backend and the address it was reached at (see `errors`), built the same way whatever the backend."""

from __future__ import annotations

from typing import ClassVar, Generic, Protocol, TypeVar

from .base import ObjectStorage
from .errors import ObjectStorageError


class ServerSettings(Protocol):
    """Settings of a storage reached at one address."""

    @property
    def endpoint_url(self) -> str: ...

    def validate(self) -> None:
        """Raise ConfigurationError naming the variable of a value that cannot be used."""


_Settings = TypeVar("_Settings", bound=ServerSettings)


class ServerObjectStorage(ObjectStorage, Generic[_Settings]):
    """An ObjectStorage reached at its settings' endpoint: the settings it was made with, and its errors."""

    #: The backend's name in its error messages.
    backend: ClassVar[str]

    def __init__(self, settings: _Settings) -> None:
        settings.validate()
        self._settings = settings

    @property
    def settings(self) -> _Settings:
        return self._settings

    def _error(
        self, kind: type[ObjectStorageError], action: str, key: str | None, reason: str
    ) -> ObjectStorageError:
        return kind(self.backend, self._settings.endpoint_url, action, key, reason)
