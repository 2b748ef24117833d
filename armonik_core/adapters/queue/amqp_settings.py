"""The `Amqp__*` settings the ActiveMQ and the RabbitMQ clients both read.

Upstream has one `Amqp` section whichever broker the queue is on; both clients name its common keys the same
(host, port, user, password, scheme, CA, TLS leniency, MaxPriority, Prefix, MaxRetries) and check the scheme
and the port the same way. Each broker's settings add their own keys and limits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from armonik_core.settings.environment import ConfigurationError, Environment

if TYPE_CHECKING:  # the brokers' settings call this module
    from .activemq.settings import ActiveMQSettings
    from .rabbitmq.settings import RabbitMQSettings


def read_amqp(env: Environment, default: ActiveMQSettings | RabbitMQSettings) -> dict[str, Any]:
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
