"""What the RabbitMQ client raises, and the pika errors that mean a connection or a channel is gone."""

from __future__ import annotations

import pika.exceptions

#: Errors meaning the connection or one of its channels is gone.
LINK_ERRORS = (pika.exceptions.AMQPError, OSError)
AUTH_ERRORS = (
    pika.exceptions.AuthenticationError,
    pika.exceptions.ProbableAuthenticationError,
    pika.exceptions.ProbableAccessDeniedError,
)


class RabbitMQError(RuntimeError):
    """A RabbitMQ operation failed; the message names the broker."""


class RabbitMQUnavailableError(RabbitMQError):
    """The broker cannot be reached, or the connection was lost and could not be restored."""


class RabbitMQRefusedError(RabbitMQError):
    """The broker answered but refused: a nacked or unroutable publish, a queue declared with other arguments."""
