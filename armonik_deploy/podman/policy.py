"""Which container ports the rendered NetworkPolicies open to the host.

podman has no NetworkPolicy: a Service's port is published on the deployment network's gateway (where the
other pods reach it) and, for clients on the host, on the host address. A port that the NetworkPolicies
selecting its pod open only to other pods (`from: podSelector`), as the agents' compute gateway is, is not
one a client on the host may call: it is published on the deployment network only. This keeps what only
agents may call off the host, and keeps a fixed port of it (the gateway's 1081) from colliding between two
deployments on one machine. An `ipBlock` peer, or a rule without `from`, counts as open to the host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Manifest = Mapping[str, Any]


def _selects(policy: Manifest, labels: Mapping[str, str]) -> bool:
    spec = policy.get("spec") or {}
    if "Ingress" not in (spec.get("policyTypes") or ["Ingress"]):
        return False
    wanted = (spec.get("podSelector") or {}).get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def _rule_opens(rule: Manifest, port: int, name: str | None) -> bool:
    peers = rule.get("from")
    if peers and not any("ipBlock" in peer for peer in peers):
        return False
    ports = rule.get("ports")
    return not ports or any(p.get("port") in (port, name) for p in ports)


def open_to_host(
    policies: Sequence[Manifest], labels: Mapping[str, str], port: int, name: str | None
) -> bool:
    """Whether container port `port` (named `name`) of a pod labelled `labels` may be reached from the host:
    yes when no NetworkPolicy selects the pod, else when one of their ingress rules opens it to any peer."""
    selecting = [p for p in policies if _selects(p, labels)]
    if not selecting:
        return True
    return any(_rule_opens(rule, port, name) for p in selecting for rule in p["spec"].get("ingress") or [])
