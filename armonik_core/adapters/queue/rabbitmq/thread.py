"""The one thread that owns a RabbitMQ connection (pika's BlockingConnection is not thread-safe).

It runs every broker operation in call order and, between operations, ticks every `idle_seconds`: the tick
lets pika answer heartbeats, notices a lost connection, and expires leases.
"""

from __future__ import annotations

import logging
import queue as queue_module
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("armonik_core.adapters.queue.rabbitmq")


def do_nothing() -> None:
    pass


class BrokerThread:
    """The one thread that touches the connection: runs submitted jobs in order, and `idle` between them at
    most every `idle_seconds` (also while jobs keep coming, so heartbeats are never starved)."""

    def __init__(self, name: str, idle: Callable[[], None], idle_seconds: float) -> None:
        self._jobs: queue_module.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = (
            queue_module.SimpleQueue()
        )
        self._idle = idle
        self._idle_seconds = idle_seconds
        self._stopping = False
        # A daemon thread: a client nobody closed must not keep the interpreter alive (the broker requeues
        # the deliveries of a connection that disappears with the process).
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put((job, future))
        return future

    def stop(self) -> None:
        """Let the jobs already submitted finish, then end the thread."""
        self._stopping = True
        self.submit(do_nothing)  # wakes the loop up
        self._thread.join()

    def _loop(self) -> None:
        next_idle = time.monotonic() + self._idle_seconds
        while not (self._stopping and self._jobs.empty()):
            try:
                job, future = self._jobs.get(timeout=max(0.0, next_idle - time.monotonic()))
            except queue_module.Empty:
                pass
            else:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(job())
                    except BaseException as error:  # handed to the caller, whatever it is
                        future.set_exception(error)
            if time.monotonic() >= next_idle:
                try:
                    self._idle()
                except Exception:  # the thread must outlive any failure, or every later call would hang
                    log.exception("RabbitMQ queue: the idle tick failed")
                next_idle = time.monotonic() + self._idle_seconds
