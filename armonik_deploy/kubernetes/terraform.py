"""Steps 1 and 2 of a Kubernetes deployment (see `apply`): the certificates the cluster's services present, and
Terraform, given the parameters, the versions and those certificates, run in the quick-deploy folder.

The state (`-state`) and Terraform's data folder (`TF_DATA_DIR`: modules, providers) live in the generated
folder's `kubernetes/`, so the source tree stays clean and each generated folder is its own deployment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from armonik_core.gateway.auth import agent_credential
from armonik_deploy.certificates import (
    CertificateError,
    Certificates,
    KeyPair,
    ServerIdentity,
    ensure_certificates,
)
from armonik_deploy.gateway_secret import ensure_secret
from armonik_deploy.kubernetes.auth import generated_user_certificates
from armonik_deploy.kubernetes.layout import DeployError, KubernetesLayout, environment, last_lines
from armonik_deploy.kubernetes.settings import control_plane_identity, mongodb_identity
from armonik_deploy.parameters import Parameters
from armonik_deploy.tls import IngressTls

QUICK_DEPLOY = Path(__file__).resolve().parents[2] / "infrastructure" / "quick-deploy" / "localhost"
#: How many lines of terraform's stderr an error quotes.
STDERR_TAIL_LINES = 15
#: What terraform init says when it cannot reach the registry or fetch a provider.
_PROVIDER_FAILURES = (
    "Failed to query available provider packages",
    "Failed to install provider",
    "could not connect to registry",
    "Failed to download",
)


# -- 1. certificates ----------------------------------------------------------------------------------------
def service_hosts(service: str, namespace: str) -> list[str]:
    """The names a pod uses to reach a Service: fully qualified, short, and bare in the same namespace."""
    return [f"{service}.{namespace}.svc.cluster.local", f"{service}.{namespace}.svc", service]


def service_identities(params: Parameters) -> list[ServerIdentity]:
    """A server identity per in-cluster service the parameters enable (file name -> the Service it names);
    the control plane's and MongoDB's are the renderer's (`settings.control_plane_identity`,
    `settings.mongodb_identity`: the replica set and each of its members), so that both certify the same."""
    ns = params.namespace
    out = [control_plane_identity(params.control_plane.name, ns)]
    if params.mongodb is not None:
        out.append(mongodb_identity(ns))
    for name in ("rabbitmq", "activemq", "redis", "minio"):
        if getattr(params, name) is not None:
            out.append(ServerIdentity(name, service_hosts(name, ns)))
    return out


def make_certificates(
    params: Parameters, tls: IngressTls, folder: Path, file: Path | None = None
) -> Certificates:
    users = generated_user_certificates(params, file, folder, tls) if file is not None and tls.mtls else []
    try:
        return ensure_certificates(
            folder,
            service_identities(params),
            ["client", *users] if tls.mtls else [],
            validity_days=tls.certificate_validity_days,
            key_size=tls.certificate_key_size,
        )
    except CertificateError as exc:
        raise DeployError(f"certificates: {exc}") from None


# -- 2. terraform -------------------------------------------------------------------------------------------
def terraform_variables(
    parameters: Mapping[str, Any], versions: Mapping[str, Any], certificates: Certificates
) -> dict[str, Any]:
    """The parameters and versions as written (Terraform's variables have their names), and `certificates`:
    the absolute paths of the authority, of each service's and each client's certificate and key."""

    def pair(kp: KeyPair) -> dict[str, str]:
        return {"certificate": str(kp.certificate.resolve()), "key": str(kp.key.resolve())}

    return {
        **parameters,
        **versions,
        "certificates": {
            "folder": str(certificates.folder.resolve()),
            "ca": pair(certificates.ca),
            "servers": {name: pair(kp) for name, kp in certificates.servers.items()},
            "clients": {name: pair(kp) for name, kp in certificates.clients.items()},
        },
    }


def gateway_variables(generated: Path, partitions: list[str]) -> dict[str, Any]:
    """`compute_gateway`: the deployment secret (made once, kept under `generated/gateway/`) and each
    partition's agent credential, derived here since Terraform has no HMAC."""
    secret = ensure_secret(generated)
    return {
        "secret": secret.decode(),
        "credentials": {name: agent_credential(secret, name) for name in partitions},
    }


def write_tfvars(path: Path, variables: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(variables, indent=2, sort_keys=True) + "\n")
    return path


def stderr_tail(stderr: str, lines: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(last_lines(stderr, lines))


def terraform_error(step: str, working_dir: Path, code: int, stderr: str) -> DeployError:
    """The error of a failed terraform step; `init` failing to fetch providers says so (offline, proxy...)."""
    flat = " ".join(stderr.split())
    head = f"terraform {step} failed (exit {code}, in {working_dir})"
    if step == "init" and any(marker in flat for marker in _PROVIDER_FAILURES):
        providers = sorted(set(re.findall(r"provider (\S+/[^\s:]+):", flat)))
        which = f" ({', '.join(providers)})" if providers else ""
        head += (
            f": the providers could not be installed{which}; terraform needs registry.terraform.io "
            "(or a mirror: provider_installation in ~/.terraformrc) to download them"
        )
    return DeployError(f"{head}\n{stderr_tail(stderr)}")


@dataclass(slots=True)
class TerraformRunner:
    """`terraform init/apply/destroy` in `working_dir`, the state and data folder in the layout."""

    layout: KubernetesLayout
    working_dir: Path = QUICK_DEPLOY

    def _run(self, step: str, call: Callable[[Any], tuple[int, str, str]]) -> str:
        from python_terraform import Terraform

        tf = Terraform(working_dir=str(self.working_dir))
        self.layout.folder.mkdir(parents=True, exist_ok=True)
        env = {"TF_DATA_DIR": str(self.layout.data_dir), "TF_IN_AUTOMATION": "1"}
        try:
            with environment(env):
                code, out, err = call(tf)
        except FileNotFoundError:
            raise DeployError(
                f"terraform {step}: terraform is not on PATH (install Terraform >= 1.5)"
            ) from None
        if code != 0:
            raise terraform_error(step, self.working_dir, code, err or out or "")
        return out

    def init(self) -> str:
        return self._run("init", lambda tf: tf.init(capture_output=True))

    def apply(self, var_file: Path, targets: Sequence[str] = ()) -> str:
        """`terraform apply`; with `targets`, of those resources only (`-target`)."""
        # skip_plan=True is python-terraform's -auto-approve; a list option is repeated (-target=a -target=b)
        return self._run(
            "apply",
            lambda tf: tf.apply(
                skip_plan=True,
                var_file=str(var_file),
                state=str(self.layout.state),
                target=list(targets) or None,
                capture_output=True,
            ),
        )

    def destroy(self, var_file: Path, targets: Sequence[str] = ()) -> str:
        """`terraform destroy`; with `targets`, of those resources (and what depends on them) only."""
        # python-terraform adds -force by default, which Terraform >= 0.15 rejects: -auto-approve instead
        from python_terraform import IsFlagged, IsNotFlagged

        return self._run(
            "destroy",
            lambda tf: tf.destroy(
                force=IsNotFlagged,
                auto_approve=IsFlagged,
                var_file=str(var_file),
                state=str(self.layout.state),
                target=list(targets) or None,
                capture_output=True,
            ),
        )
