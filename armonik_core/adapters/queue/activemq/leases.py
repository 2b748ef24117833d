"""Leases on ActiveMQ: pulls, acks, renewals, give-backs and their expiry, on the engine's thread.

A lease is an unsettled delivery, held by the group (AMQP session) of the pull that took it. `ack` settles
it as accepted; giving messages back (`release`, or a lease that ran out) ends the group's session, and
ActiveMQ puts every unsettled message of the session back in its place at once, counting a redelivery. A
give-back that concerns only part of a group takes the other messages back through a receiver with a JMS
selector on their `MessageUid` (`_take_back`). Lease expiry is the client's: a timer gives back every lease
not renewed by its deadline. Handles are only valid on the connection that took them.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from proton import Delivery, Message

from ..base import Lease, QueueMessage
from .drain import Drainer, Group, Held
from .errors import ActiveMQError
from .futures import Countdown, fail, nothing, resolve
from .messages import decode
from .sending import Sending
from .settings import ActiveMQSettings

log = logging.getLogger("armonik_core.adapters.queue.activemq")


class Engine(Sending):
    """One AMQP connection and the leases taken on it; runs on its own thread (see the package docstring)."""

    def __init__(self, settings: ActiveMQSettings) -> None:
        super().__init__(settings)
        self._pulls: dict[int, tuple[Future[Any], Drainer]] = {}
        self._drainers: set[Drainer] = set()
        self._groups: dict[int, Group] = {}
        self._held: dict[str, Held] = {}
        #: Give-backs whose session end the broker has not confirmed yet; pulls, acks, releases and expiries
        #: wait for them (so a pull finds the messages back, and a kept lease has its new delivery).
        self._returning = 0
        self._deferred: list[Callable[[], None]] = []
        self._expiries: list[tuple[float, int, str]] = []
        self._timer: Any = None
        self._timer_at = float("inf")

    def track(self, drainer: Drainer, active: bool) -> None:
        """Drainers under way, so that a lost connection stops them."""
        if active:
            self._drainers.add(drainer)
        else:
            self._drainers.discard(drainer)

    def _fail_everything(self, error: BaseException) -> None:
        super()._fail_everything(error)
        for future, _ in list(self._pulls.values()):
            fail(future, error)
        for drainer in list(self._drainers):
            drainer.fail()
        self._drainers.clear()
        self._pulls.clear()
        groups = list(self._groups.values())
        self._groups.clear()
        self._held.clear()
        self._expiries.clear()
        for group in groups:
            group.live.clear()
            self._group_closed(group)
        self._returning = 0
        deferred, self._deferred = self._deferred, []
        for work in deferred:
            work()

    # -- pull -----------------------------------------------------------------------------------------------

    def do_pull(
        self, addresses: dict[int, str], wanted: int, lease_seconds: float, consumer: str, future: Future[Any]
    ) -> None:
        """Count the messages available in each band first: bands with none are skipped (no receiver, and an
        empty partition answers in one round trip), and a drain never asks for more than there is, which keeps
        ActiveMQ's drain race (see `Drainer`) to the messages other clients take meanwhile."""
        self._require_connection()
        if self._returning:
            self._deferred.append(
                lambda: self._guard(future, self.do_pull, addresses, wanted, lease_seconds, consumer)
            )
            return

        def counted(available: dict[str, int]) -> None:
            limits = {
                band: available[address] for band, address in addresses.items() if available[address] > 0
            }
            if not limits:
                resolve(future, [])
            elif self._opened:
                self._drain(addresses, limits, wanted, lease_seconds, consumer, future)

        self._count(list(addresses.values()), future, counted)

    def _drain(
        self,
        addresses: dict[int, str],
        limits: dict[int, int],
        wanted: int,
        lease_seconds: float,
        consumer: str,
        future: Future[Any],
    ) -> None:
        group = self._new_group()
        ident = next(self._sequence)

        def done(got: list[tuple[Delivery, Message, int]]) -> None:
            self._pulls.pop(ident, None)
            leases = self._hold(group, got, lease_seconds)
            if future.done():  # the caller gave up (timeout): nobody knows these leases
                self._give_back(group, list(group.live.values()), nothing)
                return
            resolve(future, leases)

        def failed(error: ActiveMQError) -> None:
            self._pulls.pop(ident, None)
            self._close_group(group)
            fail(future, error)

        bands = {band: addresses[band] for band in limits}
        drainer = Drainer(self, group, bands, wanted, done, consumer, limits=limits, on_error=failed)
        self._pulls[ident] = (future, drainer)
        drainer.start()

    def _guard(self, future: Future[Any], work: Callable[..., None], *args: Any) -> None:
        """Run deferred work, failing its future instead of raising on the reactor."""
        try:
            work(*args, future)
        except Exception as error:
            fail(future, error)

    def _new_group(self) -> Group:
        assert self._connection is not None
        session = self._connection.session()
        group = Group(next(self._sequence), session)
        session.armonik_group = group.ident
        session.open()
        self._groups[group.ident] = group
        return group

    def _hold(
        self, group: Group, got: list[tuple[Delivery, Message, int]], lease_seconds: float
    ) -> list[Lease]:
        deadline = time.monotonic() + lease_seconds
        leases: list[Lease] = []
        for delivery, message, band in got:
            try:
                task, uid = decode(message)
            except (KeyError, ValueError, TypeError):
                log.error(
                    "rejecting a message that is not an ArmoniK task on %s: %r",
                    delivery.link.source.address,
                    message,
                )
                delivery.update(Delivery.REJECTED)
                delivery.settle()
                continue
            handle = f"{self._uid}.{self._generation}.{group.ident}.{next(self._sequence)}"
            held = Held(handle, uid, band, task, (message.delivery_count or 0) + 1, group, delivery, deadline)
            group.live[handle] = held
            self._held[handle] = held
            self._expire_at(held)
            leases.append(Lease(handle, task, held.deliveries))
        if not group.live:
            self._close_group(group)
        return leases

    def on_message(self, event: Any) -> None:
        link = event.link
        if self._replies is not None and link == self._replies:
            self._on_reply(event)
            return
        drainer = getattr(link, "armonik_drainer", None)
        if drainer is None or drainer.finished:
            self._late(link, event.delivery, event.message)
            return
        drainer.on_message(link, event.delivery, event.message)

    def _late(self, link: Any, delivery: Delivery, message: Message) -> None:
        """A message that arrived after its pull was over (see `Drainer`): nobody holds it, give it back."""
        group = self._groups.get(getattr(link.session, "armonik_group", -1))
        if group is None or group.closing:
            return  # its session is ending: the broker takes it back
        log.warning(
            "ActiveMQ at %s sent a message after a drain was over: giving it back", self.settings.endpoint
        )
        try:
            task, uid = decode(message)
        except (KeyError, ValueError, TypeError):
            task, uid = QueueMessage("", "", ""), ""
        handle = f"{self._uid}.late.{next(self._sequence)}"
        held = Held(handle, uid, getattr(link, "armonik_band", 0), task, 1, group, delivery)
        group.live[handle] = held
        self._held[handle] = held
        if self._returning:
            self._deferred.append(lambda: self._give_back_if_held(held))
        else:
            self._give_back(group, [held], nothing)

    def _give_back_if_held(self, held: Held) -> None:
        if self._held.get(held.handle) is held and held.delivery is not None:
            self._give_back(held.group, [held], nothing)

    def on_link_flow(self, event: Any) -> None:
        drainer = getattr(event.link, "armonik_drainer", None)
        if drainer is not None:
            drainer.check(event.link)

    def on_link_error(self, event: Any) -> None:
        drainer = getattr(event.link, "armonik_drainer", None)
        if drainer is None:
            super().on_link_error(event)
            return
        link = event.link
        condition = link.remote_condition
        reason = f"{condition.name}: {condition.description}" if condition else "closed by the broker"
        self._drainer_failed(
            drainer,
            ActiveMQError(
                f"ActiveMQ at {self.settings.endpoint} refused a receiver on {link.source.address}: {reason}"
            ),
        )

    def _drainer_failed(self, drainer: Drainer, error: ActiveMQError) -> None:
        drainer.abort(error)

    # -- ack, renew, release --------------------------------------------------------------------------------

    def do_ack(self, handles: list[str], future: Future[Any]) -> None:
        if self._returning:
            self._deferred.append(lambda: self._guard(future, self.do_ack, handles))
            return
        for handle in handles:
            held = self._held.pop(handle, None)
            if held is None or held.delivery is None:
                continue
            held.delivery.update(Delivery.ACCEPTED)
            held.delivery.settle()
            group = held.group
            group.live.pop(handle, None)
            if not group.live:
                self._close_group(group)
        resolve(future, None)

    def do_renew(self, handles: list[str], lease_seconds: float, future: Future[Any]) -> None:
        deadline = time.monotonic() + lease_seconds
        for handle in handles:
            held = self._held.get(handle)
            if held is not None:
                held.deadline = deadline
                self._expire_at(held)
        resolve(future, None)

    def do_release(self, handles: list[str], future: Future[Any]) -> None:
        if self._returning:
            self._deferred.append(lambda: self._guard(future, self.do_release, handles))
            return
        by_group: dict[int, list[Held]] = {}
        for handle in handles:
            held = self._held.get(handle)
            if held is not None:
                by_group.setdefault(held.group.ident, []).append(held)
        countdown = Countdown(future, len(by_group))
        for give in by_group.values():
            self._give_back(give[0].group, give, countdown.done)

    def _give_back(self, group: Group, give: list[Held], on_done: Callable[[], None]) -> None:
        """Put `give` back in the queue at once, with a redelivery counted, by ending the group's session; the
        group's other leases are then received again (`_take_back`). `on_done` runs once the broker confirmed."""
        for held in give:
            self._held.pop(held.handle, None)
            group.live.pop(held.handle, None)
        keep = list(group.live.values())
        group.live.clear()  # `keep` stay in self._held: their handles remain valid
        self._returning += 1

        def finish() -> None:
            on_done()
            self._returning = max(0, self._returning - 1)
            self._run_deferred()

        def returned() -> None:
            if keep and self._opened:
                self._take_back(keep, finish)
            else:
                for held in keep:
                    self._held.pop(held.handle, None)
                finish()

        # The take-back must reach the broker after the session's end: proton does not keep the order of
        # frames across sessions, hence waiting for the broker's end.
        group.on_closed.append(returned)
        self._close_group(group)

    def _take_back(self, keep: list[Held], finish: Callable[[], None]) -> None:
        """Receive the kept messages of a partial give-back again, by MessageUid, on a new session."""
        group = self._new_group()
        for held in keep:
            held.group, held.delivery = group, None
            group.live[held.handle] = held
        by_band: dict[int, list[str]] = {}
        for held in keep:
            by_band.setdefault(held.band, []).append(held.uid)
        selectors = {
            band: "MessageUid IN ({})".format(", ".join(f"'{uid}'" for uid in uids))
            for band, uids in by_band.items()
        }
        addresses = {band: self.settings.address(keep[0].message.partition_id, band) for band in by_band}

        def done(got: list[tuple[Delivery, Message, int]]) -> None:
            pending = {held.uid: held for held in group.live.values()}
            for delivery, message, _band in got:
                properties: dict[Any, Any] = message.properties or {}
                held = pending.pop(str(properties.get("MessageUid", "")), None)
                if held is not None:
                    held.delivery = delivery
            for held in pending.values():  # taken by another consumer in the meantime: the handle is stale
                self._held.pop(held.handle, None)
                group.live.pop(held.handle, None)
            if not group.live:
                self._close_group(group)
            finish()

        Drainer(self, group, addresses, len(keep), done, "take-back", selectors).start()

    def _run_deferred(self) -> None:
        while self._deferred and not self._returning:
            self._deferred.pop(0)()

    def _close_group(self, group: Group) -> None:
        if group.closing:
            return
        group.closing = True
        for held in group.live.values():
            self._held.pop(held.handle, None)
        group.live.clear()
        group.session.close()

    def on_session_closed(self, event: Any) -> None:
        group = self._groups.pop(getattr(event.session, "armonik_group", -1), None)
        if group is not None:
            self._group_closed(group)

    def _group_closed(self, group: Group) -> None:
        callbacks, group.on_closed = group.on_closed, []
        for callback in callbacks:
            callback()

    # -- lease expiry ---------------------------------------------------------------------------------------

    def _expire_at(self, held: Held) -> None:
        heapq.heappush(self._expiries, (held.deadline, next(self._sequence), held.handle))
        if held.deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = held.deadline
            self._timer = self._container.schedule(max(0.0, held.deadline - time.monotonic()), self)

    def on_timer_task(self, _event: Any) -> None:
        self._timer, self._timer_at = None, float("inf")
        if self._returning:  # a give-back is under way: look again when it is done
            self._deferred.append(self._expire_due)
        else:
            self._expire_due()

    def _expire_due(self) -> None:
        now = time.monotonic()
        due: dict[int, list[Held]] = {}
        while self._expiries and self._expiries[0][0] <= now:
            _, _, handle = heapq.heappop(self._expiries)
            held = self._held.get(handle)
            if held is not None and held.deadline <= now and held.delivery is not None:
                due.setdefault(held.group.ident, []).append(held)
        for give in due.values():
            log.info(
                "lease of %d message(s) on %s expired: giving them back", len(give), self.settings.endpoint
            )
            self._give_back(give[0].group, give, nothing)
        if self._expiries:
            deadline = self._expiries[0][0]
            self._timer_at = deadline
            self._timer = self._container.schedule(max(0.0, deadline - now), self)

    # -- closing --------------------------------------------------------------------------------------------

    def do_close(self, future: Future[Any]) -> None:
        """Stop the pulls under way, then close the connection: the broker puts every message still leased
        back at once."""
        for pending, drainer in list(self._pulls.values()):
            drainer.fail()
            fail(pending, ActiveMQError("the ActiveMQ client was closed during a pull"))
        self._pulls.clear()
        super().do_close(future)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super()._stop()
