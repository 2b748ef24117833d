"""What the ActiveMQ client raises, and the two signals its reactor thread gives the asyncio side."""

from __future__ import annotations


class ActiveMQError(RuntimeError):
    """The broker refused or failed an operation; the message says which broker and what happened."""


class ActiveMQUnavailable(ActiveMQError):
    """The broker could not be reached within the bounded retries."""


class ConnectionLost(Exception):
    """The connection went away while an operation was under way (internal: retried or turned into a
    named error by the async layer)."""


class ConnectFailed(Exception):
    def __init__(self, reason: str, fatal: bool = False) -> None:
        super().__init__(reason)
        self.fatal = fatal
