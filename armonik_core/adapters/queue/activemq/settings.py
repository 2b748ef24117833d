"""Upstream's `Amqp__*` settings of the ActiveMQ queue, and where a task's priority puts its message.

ActiveMQ orders a queue by JMS priority (0-9) when the queue's policy has `prioritizedMessages="true"`, so one
address holds ten priority levels: task priority p (clamped to 0..MaxPriority) goes to band p // 10 with JMS
priority p % 10, on `{Prefix}{partition}{Separator}q{band}` (upstream's naming).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from proton import SSLDomain

from armonik_core.settings.environment import ConfigurationError, Environment

from ..amqp_settings import AmqpSettings, read_amqp

#: JMS priorities ActiveMQ orders a queue by.
JMS_LEVELS = 10
#: Characters ActiveMQ reads as wildcards or separators in a destination name.
_FORBIDDEN_IN_PARTITION = set("*>, \t\r\n")


@dataclass(frozen=True, slots=True)
class ActiveMQSettings(AmqpSettings):
    """Upstream's `Amqp__*` settings. Port 5673: the broker `tools/activemq/start-activemq.sh` starts (5672,
    upstream's, is RabbitMQ's on a developer machine). No user: SASL ANONYMOUS. `max_retries`: connection
    attempts after the first before an operation fails with ActiveMQUnavailable."""

    port: int = 5673
    user: str = ""
    password: str = field(default="", repr=False)
    separator: str = "###"
    #: The most messages one drain asks for; a larger pull drains again. Keep it within the broker's
    #: maxPageSize (200 by default, 1000 on our broker) so that a drain is answered in one page.
    link_credit: int = 500
    #: Longest wait for the broker's answer to one operation.
    operation_timeout: float = 30.0

    def __post_init__(self) -> None:
        AmqpSettings.__post_init__(self)
        if self.max_priority < 1:
            raise ConfigurationError(f"Amqp__MaxPriority={self.max_priority}: expected at least 1")
        if self.link_credit < 1:
            raise ConfigurationError(f"Amqp__LinkCredit={self.link_credit}: expected at least 1")
        if self.max_retries < 0:
            raise ConfigurationError(f"Amqp__MaxRetries={self.max_retries}: expected 0 or more")
        if self.ca_path and not os.path.isfile(self.ca_path):
            raise ConfigurationError(f"Amqp__CaPath={self.ca_path!r}: no such file")
        if self.password and not self.user:
            raise ConfigurationError("Amqp__Password is set but Amqp__User is not")

    @classmethod
    def from_env(cls, env: Environment) -> ActiveMQSettings:
        default = cls()
        return cls(
            **read_amqp(env, default),
            separator=env.get("Amqp__Separator", default.separator),
            link_credit=env.get_int("Amqp__LinkCredit", default.link_credit),
        )

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'amqps' if self.scheme == 'AMQPS' else 'amqp'}://{self.host}:{self.port}"

    @property
    def bands(self) -> int:
        return self.max_priority // JMS_LEVELS + 1

    def placement(self, priority: int) -> tuple[int, int]:
        """(band, JMS priority) of a task priority."""
        level = min(max(priority, 0), self.max_priority)
        return level // JMS_LEVELS, level % JMS_LEVELS

    def address(self, partition_id: str, band: int) -> str:
        if not partition_id or _FORBIDDEN_IN_PARTITION & set(partition_id):
            raise ValueError(f"partition id {partition_id!r} cannot name an ActiveMQ queue")
        return f"{self.prefix}{partition_id}{self.separator}q{band}"

    def ssl_domain(self) -> SSLDomain | None:
        if self.scheme != "AMQPS":
            return None
        domain = SSLDomain(SSLDomain.MODE_CLIENT)
        if self.ca_path:
            domain.set_trusted_ca_db(self.ca_path)
        if self.allow_insecure_tls:
            domain.set_peer_authentication(SSLDomain.ANONYMOUS_PEER)
        elif self.allow_host_mismatch:
            domain.set_peer_authentication(SSLDomain.VERIFY_PEER, self.ca_path or None)
        else:
            domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME, self.ca_path or None)
        return domain
