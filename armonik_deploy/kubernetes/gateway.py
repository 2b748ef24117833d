"""The agents' compute gateway on Kubernetes: its own port, Service, secret, credentials and NetworkPolicy.

The control plane serves the gateway on a container port of its own (`gateway`, 1081), never on the
clients' port, behind a ClusterIP Service `compute-gateway` that only the polling agents are given. A
NetworkPolicy on the control plane's pods lets anyone reach the clients' port and only the compute-plane
pods reach the gateway's (where the cluster's network enforces NetworkPolicies; the agent credential is
checked either way). With `ingress.tls`, the gateway serves TLS with the control plane's certificate, which
also names this Service.

The deployment secret is generated once and kept with the render's other generated credentials
(`credentials.json`), so that a new render keeps the tokens of running agents valid. It is in a Secret the
control plane alone reads (`ComputeGateway__Secret`, by `secretKeyRef`); each partition's agents read only
their own credential, derived from it, from a Secret of their partition (`ComputeGateway__Credential`).
"""

from __future__ import annotations

from typing import Any

from armonik_core.gateway.auth import agent_credential
from armonik_deploy.kubernetes import objects
from armonik_deploy.kubernetes.context import Context

#: The gateway's container port on the control plane, and its Service's.
GATEWAY_PORT = 1081
SERVICE = "compute-gateway"
SECRET = "compute-gateway-secret"
#: The generated credential's name in `Credentials` (kept between renders).
CREDENTIAL_NAME = "compute-gateway"


def agent_secret(partition: str) -> str:
    return f"compute-gateway-agent-{partition}"


def _secret(ctx: Context) -> bytes:
    return ctx.credentials.get(CREDENTIAL_NAME).encode()


def control_plane_settings() -> dict[str, str]:
    """The control plane's listener for the gateway (its ConfigMap)."""
    return {"ComputeGateway__Host": "0.0.0.0", "ComputeGateway__Port": str(GATEWAY_PORT)}


def agent_settings(ctx: Context, https: bool) -> dict[str, str]:
    """Where the agents reach the gateway (the polling ConfigMap)."""
    return {
        "ComputeGateway__Endpoint": f"{'https' if https else 'http'}://{ctx.host(SERVICE)}:{GATEWAY_PORT}"
    }


def _from_secret(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def control_plane_env() -> list[dict[str, Any]]:
    return [_from_secret("ComputeGateway__Secret", SECRET, "secret")]


def agent_env(partition: str) -> list[dict[str, Any]]:
    return [_from_secret("ComputeGateway__Credential", agent_secret(partition), "credential")]


def manifests(ctx: Context) -> list[objects.Manifest]:
    """The Secrets, the Service and the NetworkPolicy."""
    ns, secret = ctx.ns, _secret(ctx)
    control_plane = objects.labels("control-plane")
    out = [objects.secret(SECRET, ns, "control-plane", {"secret": secret.decode()})]
    out += [
        objects.secret(
            agent_secret(name), ns, "compute-plane", {"credential": agent_credential(secret, name)}
        )
        for name in ctx.params.compute_plane
    ]
    out.append(objects.service(SERVICE, ns, control_plane, [("gateway", GATEWAY_PORT, "gateway")]))
    out.append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": objects.metadata("control-plane", ns, "control-plane"),
            "spec": {
                "podSelector": {"matchLabels": control_plane},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {"ports": [{"port": "grpc", "protocol": "TCP"}]},  # the clients' port: anyone
                    {
                        "from": [{"podSelector": {"matchLabels": objects.labels("compute-plane")}}],
                        "ports": [{"port": "gateway", "protocol": "TCP"}],
                    },
                ],
            },
        }
    )
    return out
