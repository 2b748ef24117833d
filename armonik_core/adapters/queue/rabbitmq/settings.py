"""Upstream's `Amqp__*` settings of the RabbitMQ queue, and the layout they give.

Each partition has one durable classic queue, `armonik.<prefix>.<partition>` (`armonik.<partition>` when
`Amqp__Prefix` is empty, so that tests or tenants sharing a broker keep apart), declared with
`x-max-priority = Amqp__MaxPriority`.
"""

from __future__ import annotations

import ssl
from dataclasses import asdict, dataclass
from typing import Any

import pika

from armonik_core.settings.environment import ConfigurationError, Environment

from ..amqp_settings import AmqpSettings, read_amqp


@dataclass(frozen=True, slots=True)
class RabbitMQSettings(AmqpSettings):
    """Connection and layout settings, read from upstream's `Amqp__*` variables by `from_env`."""

    #: When set, queues are declared with `x-expires`: the broker deletes a queue unused for that long. For
    #: tests on a shared broker; every client of a queue must use the same value (RabbitMQ refuses a
    #: redeclaration with other arguments).
    queue_expires_seconds: float | None = None

    def __post_init__(self) -> None:
        AmqpSettings.__post_init__(self)
        if not 1 <= self.max_priority <= 255:
            raise ConfigurationError(f"Amqp__MaxPriority={self.max_priority}: expected 1 to 255")
        if self.max_retries < 1:
            raise ConfigurationError(f"Amqp__MaxRetries={self.max_retries}: expected at least 1")
        if self.queue_expires_seconds is not None and self.queue_expires_seconds <= 0:
            raise ConfigurationError("queue_expires_seconds must be positive")

    @classmethod
    def from_env(cls, env: Environment | None = None) -> RabbitMQSettings:
        return cls(**read_amqp(env or Environment(), cls()))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def as_kwargs(self) -> dict[str, Any]:
        """The settings as keyword arguments, to rebuild them elsewhere (another process)."""
        return asdict(self)

    def queue_name(self, partition_id: str) -> str:
        name = ".".join(part for part in ("armonik", self.prefix, partition_id) if part)
        if len(name.encode()) > 255:
            raise ValueError(f"queue name {name!r} is longer than RabbitMQ's 255 bytes")
        return name

    def queue_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"x-max-priority": self.max_priority}
        if self.queue_expires_seconds is not None:
            arguments["x-expires"] = int(self.queue_expires_seconds * 1000)
        return arguments

    def ssl_options(self) -> pika.SSLOptions | None:
        """TLS for AMQPS; reading the CA now makes a wrong `Amqp__CaPath` fail at start-up, not at first use."""
        if self.scheme != "AMQPS":
            return None
        try:
            context = ssl.create_default_context(cafile=self.ca_path or None)
        except OSError as error:
            raise ConfigurationError(f"Amqp__CaPath={self.ca_path!r}: cannot load the CA ({error})") from None
        if self.allow_insecure_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.allow_host_mismatch:
            context.check_hostname = False
        return pika.SSLOptions(context, server_hostname=self.host)
