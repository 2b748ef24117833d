"""Who may call the compute gateway, and what a lease handle proves.

Everything here derives from one per-deployment secret (`ComputeGateway__Secret`, see
`armonik_core.gateway.settings`), with HMAC-SHA256 (the standard library's `hmac`: a keyed hash is all these
tokens need, and it is the well-kept primitive for it):

- **agent credential** = HMAC(secret, "agent-credential" | partition). An agent sends its partition and its
  credential as call metadata on every call; the gateway recomputes the credential and compares in constant
  time. A credential proves "an agent of partition P": an agent of partition A holds nothing that takes,
  starts or finishes partition B's tasks. The deployment hands each partition's agents their own credential,
  never the secret.
- **lease handle**: what the gateway gives an agent for each task it acquires, and what the agent sends back
  to start, renew and finish that task. It is `<nonce>.<mac>.<lease>`: the queue lease (task id, session,
  partition, queue delivery) in clear, a fresh random nonce for this acquisition, and
  HMAC(lease key, agent id | nonce | lease), the lease key itself derived from the secret. Nobody without the
  secret can make one, and one handle names exactly one run of one task by one agent; the gateway needs no
  table to check it, so handles issued before a restart of the control plane stay good after it. While the
  gateway holds a run in memory it keeps the handle it issued for it, and a handle that is exactly that one
  (same text, compared in constant time, from the same agent) is the run's without its MAC recomputed nor its
  lease decoded again (`Issued`): the MAC is computed once per run, and it is the same proof, since only the
  handle issued carries that nonce with a good MAC.
- **object prefix**: the nonce. The agent stores the run's outputs under keys that begin with it, and an
  outcome naming an object outside that prefix is refused (`armonik_core.gateway.outcomes`): a run can only
  complete results with data it stored itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from armonik_core.adapters.queue.base import Lease
from armonik_core.gateway import codec

#: Call metadata an agent sends with every call (lower case: gRPC metadata keys are).
PARTITION_HEADER = "x-armonik-partition"
CREDENTIAL_HEADER = "x-armonik-agent-credential"

_AGENT_CREDENTIAL = b"armonik compute gateway: agent credential\0"
_LEASE_KEY = b"armonik compute gateway: lease handles\0"
#: Bytes of randomness in a nonce (hex in the handle and in the object keys): 2^-64 to guess one.
_NONCE_BYTES = 8


class Unauthenticated(Exception):
    """No credential, or one the gateway did not issue (gRPC UNAUTHENTICATED)."""


class PermissionDenied(Exception):
    """An authenticated agent asked for what it does not hold (gRPC PERMISSION_DENIED)."""


def _mac(key: bytes, *parts: str) -> str:
    message = "\0".join(parts).encode("utf-8", "surrogatepass")
    return hmac.digest(key, message, "sha256").hex()  # the one-shot form: twice per task, on the task path


def agent_credential(secret: bytes, partition: str) -> str:
    """The credential of the agents of `partition` (what the deployment gives them)."""
    return _mac(hashlib.sha256(_AGENT_CREDENTIAL + secret).digest(), partition)


@dataclass(frozen=True, slots=True)
class Handle:
    """A checked lease handle: the run it names."""

    lease: Lease
    agent_id: str
    #: Fresh per acquisition: the run's identity, and the prefix of every object key the run stores.
    nonce: str

    @property
    def task_id(self) -> str:
        return self.lease.message.task_id

    @property
    def session_id(self) -> str:
        return self.lease.message.session_id

    @property
    def partition_id(self) -> str:
        return self.lease.message.partition_id


@dataclass(frozen=True, slots=True)
class Issued:
    """A handle the gateway issued, as it issued it: its text and the run it names."""

    text: str
    handle: Handle


class GatewayKeys:
    """The keys derived from the deployment secret, with the checks that use them."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the compute gateway's secret must not be empty")
        self._credential_key = hashlib.sha256(_AGENT_CREDENTIAL + secret).digest()
        self._lease_key = hashlib.sha256(_LEASE_KEY + secret).digest()
        #: Partition -> its agents' credential, computed once.
        self._credentials: dict[str, str] = {}

    # -- callers ------------------------------------------------------------------------------------------
    def authenticate(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> str:
        """The partition of the agent whose call carries `metadata`; Unauthenticated otherwise."""
        partition = credential = None
        for key, value in metadata or ():
            if key == PARTITION_HEADER and isinstance(value, str):
                partition = value
            elif key == CREDENTIAL_HEADER and isinstance(value, str):
                credential = value
        if not partition or not credential:
            raise Unauthenticated(
                f"The compute gateway serves polling agents only: send {PARTITION_HEADER} and "
                f"{CREDENTIAL_HEADER} (the agent credential the deployment issued for the partition)"
            )
        expected = self._credentials.get(partition)
        if expected is None:
            expected = _mac(self._credential_key, partition)
            if len(self._credentials) < 10_000:  # partitions are few; a flood of names is not kept
                self._credentials[partition] = expected
        if not hmac.compare_digest(expected, credential):
            raise Unauthenticated(f"Wrong agent credential for partition {partition!r}")
        return partition

    # -- lease handles -----------------------------------------------------------------------------------
    def issue(self, lease: Lease, agent_id: str) -> tuple[str, str]:
        """A new handle for `lease` taken by `agent_id`, and its object prefix."""
        nonce = os.urandom(_NONCE_BYTES).hex()
        text = codec.lease_to_json(lease)
        return f"{nonce}.{_mac(self._lease_key, agent_id, nonce, text)}.{text}", nonce

    def check(
        self, handle: object, agent_id: object, partition: str, issued: Mapping[str, Issued] | None = None
    ) -> Handle:
        """The run `handle` names, when the gateway issued it to `agent_id` for a task of `partition`;
        PermissionDenied otherwise. `issued`: the handles of the runs held in memory, by nonce; one of them
        sent back as it was issued is checked by comparison (see the module's docstring)."""
        if not isinstance(handle, str) or not isinstance(agent_id, str):
            raise PermissionDenied("A lease handle and an agent id are required")
        nonce, _, rest = handle.partition(".")
        known = issued.get(nonce) if issued else None
        if (
            known is not None
            and known.handle.agent_id == agent_id
            and hmac.compare_digest(known.text, handle)
        ):
            return _in_partition(known.handle, partition)
        mac, _, text = rest.partition(".")
        if not text or not hmac.compare_digest(_mac(self._lease_key, agent_id, nonce, text), mac):
            raise PermissionDenied(f"Lease handle not issued to agent {agent_id[:80]!r}")
        return _in_partition(Handle(codec.lease_from_json(text), agent_id, nonce), partition)


def _in_partition(handle: Handle, partition: str) -> Handle:
    """The handle, when its task is one of the caller's partition; PermissionDenied otherwise."""
    if handle.partition_id != partition:
        raise PermissionDenied(
            f"Task {handle.task_id} belongs to partition {handle.partition_id!r}, "
            f"not to the caller's partition {partition!r}"
        )
    return handle
