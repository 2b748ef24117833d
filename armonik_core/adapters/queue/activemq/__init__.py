"""The task queue on an ActiveMQ classic broker, over AMQP 1.0 (upstream ArmoniK's default queue).

Addressing. A partition's messages live on `{Prefix}{partition}{Separator}q{band}` (upstream's naming). ActiveMQ
orders a queue by JMS priority (0-9) when the queue's policy has `prioritizedMessages="true"`, so one address
holds ten priority levels: task priority p (clamped to 0..MaxPriority) goes to band p // 10 with JMS priority
p % 10, and a pull drains the bands from the highest down. MaxPriority <= 9 gives a partition a single address;
upstream's MaxPriority=10 gives two (band 1 holding priority 10 alone). The message carries the task, its
session, partition and priority (unclamped) as application properties, and a `MessageUid`.

Leases. A lease is an unsettled delivery: the broker keeps the message, invisible to other consumers, until the
client settles it. `pull` asks the broker how many messages each band has, then opens one AMQP session (a
"group") and takes them with *drains* (take up to n, answer at once, even with nothing), so that a pull never
waits for publications. `ack` settles deliveries as accepted. Giving messages back (`release`, or a lease that
ran out) ends the group's session: ActiveMQ then puts every unsettled message of the session back in its place
in the queue at once and counts a redelivery (the AMQP `released`/`modified` outcomes do not do that: ActiveMQ 5
hands those back to the *same* link, and detaching a link does not count a redelivery). A release that
concerns only part of a group ends the session and takes the other messages back through a receiver with a JMS
selector on their `MessageUid` (another consumer may take one in that instant: at-least-once delivery covers
it, and its holder's handle then does nothing). Lease expiry is the client's: a timer gives back every lease
not renewed by its deadline. A client that closes or dies loses its connection, and the broker puts the
messages it held back at once, counting a redelivery, rather than when their leases would have run out.
Handles are only valid on the connection that took them: after an expiry, a release or a reconnection they are
stale, and ack/renew/release ignore them.

ActiveMQ 5's drains have a race between connections (see `drain.Drainer`): when another connection makes a queue
dispatch at the very moment a drain ends, a message may stay assigned to the draining receiver without being
sent; it comes back when that receiver's group ends (its leases acked, released or expired): delayed, not
lost. One client (one connection) publishing and pulling never hits it, thanks to the queues'
`optimizedDispatch` policy.

`deliveries` is the AMQP header's delivery-count + 1. ActiveMQ keeps that count in memory: after a broker
restart a message's count starts again from 0.

Durability: messages are sent durable, and `publish` returns once the broker has accepted every one (ActiveMQ
accepts a persistent message after storing it in KahaDB). `ack` settles deliveries without waiting for the
broker (ActiveMQ settles first): a client that dies right after an ack may see the message redelivered.

Depth: the broker's statistics plugin (`<statisticsBrokerPlugin/>`) answers a message sent to
`ActiveMQ.Statistics.Destination.<queue>` with the queue's counters; depth = size - inflightCount: one round
trip, no browsing. A release returns once the broker confirmed it, so a depth that follows counts it; but the
broker updates its in-flight count in its own time after a dispatch, and settles acks without confirming them,
so a depth right after a pull or an ack may be a moment behind (a message too many).

Threading: proton is callback based and not thread safe. Each client runs one proton `Container` on a thread
of its own; the async methods hand it closures through an `EventInjector` and wait on futures. A thread of our
own rather than `BlockingConnection`, because leases need many sessions, drains and the settlement of any
delivery at any time, which the blocking API does not offer.

Modules: `settings` (the `Amqp__*` settings and the addressing), `messages` (a task as a message), `drain`
(drains and the leases they become), `connection` (the reactor thread and the connection), `sending`
(publications and the statistics queries behind `depth`), `leases` (pulls, acks, renewals, give-backs, expiry)
and `client` (the asyncio `TaskQueue`).
"""

from .client import ActiveMQQueue
from .errors import ActiveMQError, ActiveMQUnavailable
from .settings import ActiveMQSettings

__all__ = ["ActiveMQError", "ActiveMQQueue", "ActiveMQSettings", "ActiveMQUnavailable"]
