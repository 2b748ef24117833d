"""The `Amqp__*` settings the ActiveMQ and the RabbitMQ clients both read.

Upstream has one `Amqp` section whichever broker the queue is on; both clients name its common keys the same
(host, port, user, password, scheme, CA, TLS leniency, MaxPriority, Prefix, MaxRetries) and check the scheme
and the port the same way. Each broker's settings add their own keys and limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from armonik_core.settings.environment import ConfigurationError, Environment


@dataclass(frozen=True, slots=True)
class AmqpSettings:
    """The keys both brokers' settings have; their defaults are RabbitMQ's (ActiveMQ's settings change some)."""

    host: str = "127.0.0.1"
    port: int = 5672
    user: str = "guest"
    password: str = field(default="guest", repr=False)
    #: AMQP (plain TCP) or AMQPS (TLS, verified against `ca_path` or the system CAs).
    scheme: str = "AMQP"
    ca_path: str = ""
    #: TLS without any verification of the broker's certificate (test brokers with self-signed certificates).
    allow_insecure_tls: bool = False
    #: TLS with the certificate verified but not its host name.
    allow_host_mismatch: bool = False
    max_priority: int = 10
    prefix: str = ""
    #: Connection attempts before an operation gives up (each broker says how many at least).
    max_retries: int = 5

    def __post_init__(self) -> None:
        check_scheme_and_port(self.scheme, self.port)


def read_amqp(env: Environment, default: AmqpSettings) -> dict[str, Any]:
    """The common `Amqp__*` keys as keyword arguments of a broker's settings, `default`'s where unset."""
    return {
        "host": env.get("Amqp__Host", default.host),
        "port": env.get_int("Amqp__Port", default.port),
        "user": env.get("Amqp__User", default.user),
        "password": env.get("Amqp__Password", default.password),
        "scheme": env.get("Amqp__Scheme", default.scheme).strip().upper(),
        "ca_path": env.get("Amqp__CaPath", default.ca_path),
        "allow_host_mismatch": env.get_bool("Amqp__AllowHostMismatch", default.allow_host_mismatch),
        "allow_insecure_tls": env.get_bool("Amqp__AllowInsecureTls", default.allow_insecure_tls),
        "max_priority": env.get_int("Amqp__MaxPriority", default.max_priority),
        "prefix": env.get("Amqp__Prefix", default.prefix),
        "max_retries": env.get_int("Amqp__MaxRetries", default.max_retries),
    }


def check_scheme_and_port(scheme: str, port: int) -> None:
    if scheme not in ("AMQP", "AMQPS"):
        raise ConfigurationError(f"Amqp__Scheme={scheme!r}: expected AMQP or AMQPS")
    if not 1 <= port <= 65535:
        raise ConfigurationError(f"Amqp__Port={port}: expected a TCP port (1-65535)")
