"""A task queue on RabbitMQ (AMQP 0-9-1, through pika), for deployments with a message broker.

Layout. Each partition has one durable classic queue, `armonik.<prefix>.<partition>` (`armonik.<partition>`
when `Amqp__Prefix` is empty, so that tests or tenants sharing a broker keep apart), declared with
`x-max-priority = Amqp__MaxPriority`. A message is persistent (delivery mode 2), its body the JSON object
`{"task_id", "session_id", "priority"}`; the broker priority is the task's priority clamped into
[0, MaxPriority], while the body keeps the priority as given so that a lease returns the message unchanged.

Publishing. The publishing channel is in publisher-confirm mode and `publish` returns once the broker has
confirmed every message, i.e. written it to disk for a durable queue. pika's BlockingChannel waits for the
confirm of each message before sending the next, so the batch is sent on the channel underneath it and the
confirms are counted as they arrive (`multiple` acks included): one wait per call. Measured here, 10,000
messages in calls of 500: ~4,000 messages/s against ~600 one confirm at a time, on a machine loaded by other
work (the design notes give ~19,800 against ~980 on a quiet one). Messages are `mandatory`, so one the broker cannot route (its queue was
deleted behind our back) is reported instead of silently dropped.

Leases. A taken message is an unacknowledged delivery; the broker keeps it from other consumers for as long
as the delivery is open. The lease deadline is kept by this client: a delivery whose deadline passed is
nacked with requeue (by the next operation, or by the idle tick between operations) and goes back to its
place in the queue. When the client dies, its TCP connection closes and the broker requeues its deliveries at
once; the same happens on `close()`. So, unlike the embedded queue, a lease never outlives the client that
holds it: the broker gives the message back sooner, never later. Delivery tags belong to a channel, so a
handle names the client, the connection (a generation counter) and the tag; a handle that is not among the
deliveries this connection still holds (expired, released, acked, or from a connection since lost) is stale,
and ack, renew and release ignore it.

RabbitMQ's own acknowledgement timeout (`consumer_timeout`, 30 minutes by default) closes a channel holding a
delivery longer than that, whatever the renewals: raise it on the broker for tasks that may run longer.

Delivery counts. Classic queues only flag a delivery as `redelivered`; they keep no count. A first delivery
counts 1. A redelivered one counts one more than this client last saw of it (it remembers the count of every
message it gave back or lost with a connection, for the latest 100,000 of them), or 2 when it never saw it:
exact while one client sees all deliveries of a message, a lower bound otherwise.

Taking. `basic.get` takes one message per round trip (~1 ms on a loaded machine: ~1,500 messages/s with an
ack each). A take of up to `_GET_LIMIT` messages (or from a queue holding no more) uses it; a larger one
opens a consumer whose prefetch is the number of messages wanted (min of `max_messages` and the ready
count), gathers the deliveries and cancels it: ~5 round trips whatever the batch, 3,000 to 8,500 messages/s
in takes of 500 with their acks, depending on the load. The prefetch bounds what the broker sends, so the consumer never
takes more than asked; if a concurrent consumer empties the queue meanwhile, the take stops after
`_SETTLE_SECONDS` without a delivery and returns what it got.

Counting. `depth` is the ready count of a passive declare (0 for a queue never declared, without creating
it); held deliveries are not counted. RabbitMQ answers a count ahead of the requeues still waiting in the
queue's mailbox, so a give-back (release, expiry) ends with a round trip on its channel (`link.Link.barrier`)
that lets the queue catch up before this client counts again; the count is exact in practice for the
client's own give-backs, and a moment behind for other clients' (and for the deliveries of a connection
that just closed).

Threads. pika's BlockingConnection is not thread-safe: one thread per client owns the connection and runs
every broker operation in call order; the async methods hand work to it. Between operations, the thread
ticks every `idle_seconds`: it lets pika answer heartbeats, notices a lost connection, and expires leases.

Reconnection. The next operation after a lost connection (broker restart, network) reconnects, with
`Amqp__MaxRetries` attempts and a growing delay, and raises `RabbitMQUnavailableError` naming the broker
when they all fail. An operation whose connection breaks half-way is run once more on a new connection:
a publish may then enqueue a message twice and a take see a message again, which at-least-once delivery
allows (consumers acquire tasks with a conditional update). Ack, renew and release never reconnect: the
deliveries of a lost connection are back in the queue already, so their handles are stale.

Modules: `settings` (the `Amqp__*` settings and the layout), `thread` (the thread that owns the connection),
`link` (one connection, its channels and what it holds), `connection` (connecting, reconnecting, the idle
tick), `publishing` (confirmed publications), `leases` (taking, counting, settling and expiring deliveries)
and `client` (the asyncio `TaskQueue`).
"""

from .client import RabbitMQQueue
from .errors import RabbitMQError, RabbitMQRefusedError, RabbitMQUnavailableError
from .settings import RabbitMQSettings

__all__ = [
    "RabbitMQError",
    "RabbitMQQueue",
    "RabbitMQRefusedError",
    "RabbitMQSettings",
    "RabbitMQUnavailableError",
]
