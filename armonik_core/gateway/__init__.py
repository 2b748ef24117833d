"""The compute gateway: how polling agents reach the state store and queues through the control plane.

On the local target the control plane is the single writer of the embedded SQLite store: agents send it
their acquisitions and outcomes over this private gRPC service instead of opening the database themselves,
so every write is group-committed in one process and every change reaches the Events service at once.
It is not part of the ArmoniK API (no client ever calls it) and carries MessagePack (see `codec`), so no proto
is forked.
"""
