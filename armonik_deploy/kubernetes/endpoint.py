"""Step 4 of a Kubernetes deployment (see `apply`): where a client outside the cluster reaches the control
plane, and the client files that say so (`armonik-output.json`, `armonik-cli.yaml`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from armonik_deploy.authentication import user_cert_name
from armonik_deploy.certificates import Certificates
from armonik_deploy.kubernetes.layout import DeployError
from armonik_deploy.outputs import write_outputs
from armonik_deploy.tls import CliCredentials, IngressTls

Dict = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    #: How it was found (printed to the user).
    how: str
    #: A command to run first (ClusterIP: `kubectl port-forward`), or None.
    needs: str | None = None

    def url(self, tls: bool) -> str:
        host = f"[{self.host}]" if _is_ipv6(self.host) else self.host
        return f"{'https' if tls else 'http'}://{host}:{self.port}"


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


_ADDRESS_PREFERENCE = ("ExternalIP", "InternalIP", "Hostname")


def node_address(nodes: Sequence[Dict]) -> tuple[str, str, str] | None:
    """(node, address type, address) of the first Ready node by name, preferring ExternalIP (reachable from
    outside), then InternalIP (same network, e.g. kind, minikube, k3s), then its host name."""

    def ready(node: Dict) -> bool:
        conditions = (node.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    for node in sorted(filter(ready, nodes), key=lambda n: str((n.get("metadata") or {}).get("name"))):
        addresses = (node.get("status") or {}).get("addresses") or []
        by_type = {a.get("type"): a.get("address") for a in reversed(addresses) if a.get("address")}
        for kind in _ADDRESS_PREFERENCE:
            if by_type.get(kind):
                return str((node.get("metadata") or {}).get("name")), kind, str(by_type[kind])
    return None


def control_plane_endpoint(service: Dict, nodes: Sequence[Dict]) -> Endpoint:
    """Where a client outside the cluster reaches the control plane's Service (the client's `to_dict()`):

    - LoadBalancer with an ingress: its IP, else its host name, on the Service port;
    - NodePort, or LoadBalancer still pending (no cloud controller, e.g. kind): the node port on a Ready
      node's address (`node_address`);
    - ClusterIP: not reachable from outside; localhost on the Service port, after
      `kubectl port-forward` (the control plane's certificate names localhost and 127.0.0.1 for this).
    """
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    name, ns = meta.get("name", "control-plane"), meta.get("namespace", "armonik")
    kind = spec.get("type") or "ClusterIP"
    ports = spec.get("ports") or []
    if not ports:
        raise DeployError(f"Service {ns}/{name} has no port")
    port = next((p for p in ports if p.get("name") == "grpc"), ports[0])
    if kind == "LoadBalancer":
        for entry in ((service.get("status") or {}).get("load_balancer") or {}).get("ingress") or []:
            host = entry.get("ip") or entry.get("hostname")
            if host:
                return Endpoint(str(host), int(port["port"]), f"LoadBalancer {ns}/{name} ingress")
    if kind in ("LoadBalancer", "NodePort") and port.get("node_port"):
        found = node_address(nodes)
        if found is None:
            raise DeployError(
                f"Service {ns}/{name} is {kind}: no Ready node with an address for its node port"
            )
        node, address_type, address = found
        pending = " (load balancer pending)" if kind == "LoadBalancer" else ""
        return Endpoint(
            address,
            int(port["node_port"]),
            f"NodePort of {ns}/{name}{pending} on node {node} ({address_type})",
        )
    if kind == "ClusterIP":
        forward = f"kubectl -n {ns} port-forward svc/{name} {port['port']}:{port['port']}"
        return Endpoint("localhost", int(port["port"]), f"ClusterIP {ns}/{name}, forwarded", needs=forward)
    raise DeployError(f"Service {ns}/{name}: type {kind} has no endpoint for clients outside the cluster")


# -- 4'. outputs ---------------------------------------------------------------------------------------------
def write_kubernetes_outputs(
    generated: Path,
    endpoint: Endpoint,
    tls: IngressTls,
    certificates: Certificates,
    urls: Mapping[str, str | None] | None = None,
) -> tuple[Path, Path]:
    """armonik-output.json and armonik-cli.yaml for the endpoint: https with the authority under TLS, and the
    client certificate and key under mTLS (unless `generate_client_cert = false`: the user brings theirs)."""
    named = CliCredentials()
    if tls.tls:
        named["certificate_authority"] = certificates.ca.certificate
    admin = user_cert_name("admin")
    if tls.mtls and admin in certificates.clients:  # authentication on: the admin's certificate
        named["client_certificate"] = certificates.clients[admin].certificate
        named["client_key"] = certificates.clients[admin].key
    elif tls.mtls and tls.generate_client_cert and "client" in certificates.clients:
        named["client_certificate"] = certificates.clients["client"].certificate
        named["client_key"] = certificates.clients["client"].key
    return write_outputs(generated, endpoint.url(tls.tls), **named, **(urls or {}))  # type: ignore[arg-type]


def uncovered_host(endpoint: Endpoint, certificates: Certificates) -> str | None:
    """A warning when TLS clients would reject the endpoint: the control plane's certificate does not name
    it (a load balancer or node address is known only after apply)."""
    if endpoint.host.lower() in _control_plane_names(certificates):
        return None
    return (
        f"the control plane's certificate does not name {endpoint.host}: TLS clients will reject it unless "
        "they override the server name (e.g. control-plane.<namespace>.svc), or use a port-forward to localhost"
    )


def _control_plane_names(certificates: Certificates) -> set[str]:
    from cryptography import x509

    pair = certificates.servers.get("control-plane")
    if pair is None:
        return set()
    cert = x509.load_pem_x509_certificate(pair.certificate.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {n.lower() for n in san.get_values_for_type(x509.DNSName)} | {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }
