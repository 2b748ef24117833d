"""The MongoDB state store's connection settings (upstream's `MongoDB__*` variables) and its errors.

Apart from the store so that what reads the settings (the factory, the Kubernetes renderer) needs no store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from armonik_core.adapters.state.mongodb_db import Document
from armonik_core.config import ConfigurationError, Environment


class MongoStateError(RuntimeError):
    """A MongoDB operation failed; the message names the server and the unit of work."""


class MongoStateUnavailable(MongoStateError):
    """The server could not be reached, or the connection broke during the unit of work."""


def _seconds(raw: str, variable: str) -> float:
    """A duration as upstream's .NET settings write it (`00:02:00`, `1.00:00:00`) or in seconds (`120`)."""
    text = raw.strip()
    try:
        if ":" not in text:
            return float(text)
        head, minutes, seconds = text.split(":")
        days, _, hours = head.rpartition(".")
        return timedelta(
            days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=float(seconds)
        ).total_seconds()
    except ValueError:
        raise ConfigurationError(f"{variable}={raw!r}: expected seconds or [d.]hh:mm:ss") from None


@dataclass(frozen=True, slots=True)
class MongoSettings:
    """Connection settings, from upstream's `MongoDB__*` variables (`from_env`).

    `connection_string`, when set, wins over host, port, user and password, and names the database when its
    path does (`mongodb://.../name`)."""

    connection_string: str = field(default="", repr=False)
    host: str = "127.0.0.1"
    port: int = 27017
    user: str = ""
    password: str = field(default="", repr=False)
    database_name: str = "ArmoniK"
    replica_set: str = ""
    tls: bool = False
    ca_file: str = ""
    allow_insecure_tls: bool = False
    direct_connection: bool = False
    auth_source: str = ""
    server_selection_timeout: float = 120.0
    max_connection_pool_size: int = 500

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigurationError(f"MongoDB__Port={self.port}: expected a TCP port (1-65535)")
        if self.server_selection_timeout <= 0:
            raise ConfigurationError("MongoDB__ServerSelectionTimeout must be positive")
        if not self.database_name and not self.connection_string:
            raise ConfigurationError("MongoDB__DatabaseName must not be empty")

    @classmethod
    def from_env(cls, env: Environment | None = None) -> MongoSettings:
        env = env or Environment()
        return cls(
            connection_string=env.get("MongoDB__ConnectionString", ""),
            host=env.get("MongoDB__Host", "127.0.0.1"),
            port=env.get_int("MongoDB__Port", 27017),
            user=env.get("MongoDB__User", ""),
            password=env.get("MongoDB__Password", ""),
            database_name=env.get("MongoDB__DatabaseName", "ArmoniK"),
            replica_set=env.get("MongoDB__ReplicaSet", ""),
            tls=env.get_bool("MongoDB__Tls", False),
            ca_file=env.get("MongoDB__CAFile", ""),
            allow_insecure_tls=env.get_bool("MongoDB__AllowInsecureTls", False),
            direct_connection=env.get_bool("MongoDB__DirectConnection", False),
            auth_source=env.get("MongoDB__AuthSource", ""),
            server_selection_timeout=_seconds(
                env.get("MongoDB__ServerSelectionTimeout", "120"), "MongoDB__ServerSelectionTimeout"
            ),
            max_connection_pool_size=env.get_int("MongoDB__MaxConnectionPoolSize", 500),
        )

    @property
    def address(self) -> str:
        """Where the server is, for messages (never the password)."""
        if not self.connection_string:
            return f"{self.host}:{self.port}"
        from pymongo.uri_parser import parse_uri

        try:
            nodes = parse_uri(self.connection_string, validate=False, warn=True)["nodelist"]
        except (PyMongoError, ValueError):
            return "the server of MongoDB__ConnectionString"
        return ",".join(f"{host}:{port}" for host, port in nodes)

    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "serverSelectionTimeoutMS": int(self.server_selection_timeout * 1000),
            "maxPoolSize": self.max_connection_pool_size,
            "tz_aware": False,
        }
        if self.replica_set:
            options["replicaSet"] = self.replica_set
        if self.tls:
            options["tls"] = True
            if self.ca_file:
                options["tlsCAFile"] = self.ca_file
            if self.allow_insecure_tls:
                options["tlsInsecure"] = True
        if self.direct_connection:
            options["directConnection"] = True
        if self.auth_source:
            options["authSource"] = self.auth_source
        if not self.connection_string:
            options.update(host=self.host, port=self.port)
            if self.user:
                options.update(username=self.user, password=self.password)
        return options

    def connect(self) -> MongoClient[Document]:
        """A client (it connects lazily, at its first operation)."""
        if self.tls and self.ca_file:
            try:
                open(self.ca_file, "rb").close()
            except OSError as error:
                raise ConfigurationError(
                    f"MongoDB__CAFile={self.ca_file!r}: cannot read it ({error})"
                ) from None
        try:
            if self.connection_string:
                return MongoClient(self.connection_string, **self.client_options())
            return MongoClient(**self.client_options())
        except PyMongoError as error:  # a malformed connection string or option
            raise ConfigurationError(f"MongoDB settings for {self.address}: {error}") from None

    def database(self, client: MongoClient[Document]) -> str:
        if self.connection_string:
            default = client.get_default_database(default=self.database_name or None)
            return default.name
        return self.database_name
