"""Users, roles and permissions of a deployment, set with upstream's `authentication` block:

    authentication = {
      require_authentication  = false  # every client call needs a registered certificate (needs mTLS)
      require_authorization   = false  # and the permission of the method (needs require_authentication)
      authentication_datafile = ""     # upstream's JSON: certificates_list, users_list, roles_list
      trusted_common_names    = []     # CNs of proxies whose X-Certificate-Client-* headers are believed
                                       # (the deployment's ingress, CN armonik-ingress, always is)
      generate_client_cert_for = []    # local: users of the datafile to generate a client certificate for
    }

Identity is the client certificate (CN + SHA-1 fingerprint), so authentication needs `ingress.mtls = true`; the
error says so. As upstream with `ingress.generate_client_cert`, `deploy` generates a client certificate (signed by
the deployment's client authority, under `<generated>/certificates/`) for built-in users, and registers them:
`admin` (role `Admin`: every permission, ours), `submitter` (`Submitter`) and `monitoring` (`Monitoring`)
(upstream's built-in users), unless the datafile registers a certificate for that user. `armonik-cli.yaml` then
names the admin's certificate. The deployment's own client certificate (the agents', and `deploy`'s health check)
is registered as the user `deployment`, whose role grants `HealthChecks:CheckHealth` only.

The users, roles and certificates (built-in ones, generated ones, then the datafile's, which win) are written to
`<generated>/certificates/authentication_conf.json` (mode 0600, as upstream's `authentication_conf.json`),
which the init job loads into the state database (`InitServices__Authentication__DataFile`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from armonik_deploy.parameters import Parameters, ParametersError
from armonik_deploy.schema import SchemaError, build, key_path

#: Keys of upstream's block for its Kubernetes job (accepted, unused here).
_OTHER_KEYS = {"name", "image", "tag", "image_pull_policy", "image_pull_secrets", "node_selector"}
#: Generated users -> their role; the certificate file (and CN) of each is `user-<name>`.
BUILTIN_USERS = {"admin": "Admin", "submitter": "Submitter", "monitoring": "Monitoring"}
DEPLOYMENT_USER = "deployment"
DEPLOYMENT_ROLE = {"RoleName": "Deployment", "Permissions": ["HealthChecks:CheckHealth"]}
CONF_FILE = "authentication_conf.json"
#: The ingress's own client certificate's CN: it passes on the browsers' certificates in X-Certificate-Client-*,
#: so the control plane trusts it as a proxy whenever authentication is on.
INGRESS_PROXY = "armonik-ingress"


@dataclass(slots=True)
class Authentication:
    require_authentication: bool = False
    require_authorization: bool = False
    authentication_datafile: str | None = None
    trusted_common_names: list[str] = field(default_factory=list)
    generate_client_cert_for: list[str] = field(default_factory=list)

    def validate(self, path: str) -> None:
        if self.require_authorization and not self.require_authentication:
            raise SchemaError(
                key_path(path, "require_authorization"),
                "Authorization requires authentication to be activated: set require_authentication = true",
            )


def read_authentication(params: Parameters, file: Path) -> Authentication:
    block: dict[str, Any] = params.authentication or {}
    names = [f.name for f in dataclasses.fields(Authentication)]
    for key in block:
        if key not in names and key not in _OTHER_KEYS:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(names)})"
            raise ParametersError(file, key_path("authentication", key), f"unknown key{hint}")
    try:
        return build(Authentication, {k: v for k, v in block.items() if k in names}, "authentication")
    except SchemaError as exc:
        raise ParametersError(file, exc.path, exc.message) from None


def user_cert_name(user: str) -> str:
    return f"user-{user}"


@dataclass(slots=True)
class AuthPlan:
    """What `deploy` does for authentication (stored in the plan with the TLS plan)."""

    require_authorization: bool
    trusted_common_names: list[str]
    #: The user's datafile (absolute), "" for none.
    datafile: str
    #: Users to generate a certificate for -> the role to give them ("" for a user of the datafile).
    generated_users: dict[str, str]
    #: The file the init job loads.
    conf_file: str

    def control_plane_env(self) -> dict[str, str]:
        env = {
            "Authenticator__RequireAuthentication": "true",
            "Authenticator__RequireAuthorization": str(self.require_authorization).lower(),
        }
        if self.trusted_common_names:
            env["Authenticator__TrustedCommonNames"] = ",".join(self.trusted_common_names)
        return env

    def init_env(self) -> dict[str, str]:
        return {"InitServices__Authentication__DataFile": self.conf_file}

    @property
    def cli_user(self) -> str | None:
        """The user whose certificate armonik-cli.yaml names: the admin when generated."""
        return "admin" if "admin" in self.generated_users else None


def auth_plan(
    params: Parameters, file: Path, certificates: str | None, mtls: bool, generate: bool
) -> AuthPlan | None:
    """None when authentication is off; a ParametersError when it cannot work (no mTLS, unreadable datafile)."""
    settings = read_authentication(params, file)
    if not settings.require_authentication:
        return None
    if not mtls or certificates is None:
        raise ParametersError(
            file,
            "authentication.require_authentication",
            "authentication is by client certificate (mTLS): set ingress = { tls = true, mtls = true }",
        )
    datafile = ""
    provided: dict[str, Any] = {}
    if settings.authentication_datafile:
        path = (file.resolve().parent / settings.authentication_datafile).resolve()
        provided = _read_datafile(path, file)
        datafile = str(path)
    with_certs = {c.get("Username") for c in provided.get("certificates_list", [])}
    users = {u.get("Username") for u in provided.get("users_list", [])}
    generated = {u: r for u, r in BUILTIN_USERS.items() if generate and u not in with_certs}
    for i, user in enumerate(settings.generate_client_cert_for):
        if user not in users and user not in BUILTIN_USERS:
            raise ParametersError(
                file,
                f"authentication.generate_client_cert_for[{i}]",
                f"{user!r} is not a user of the datafile",
            )
        generated.setdefault(user, "")
    return AuthPlan(
        settings.require_authorization,
        list(dict.fromkeys([*settings.trusted_common_names, INGRESS_PROXY])),
        datafile,
        generated,
        str(Path(certificates) / CONF_FILE),
    )


def _read_datafile(path: Path, file: Path) -> dict[str, Any]:
    where = "authentication.authentication_datafile"
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ParametersError(file, where, f"cannot read {path} ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise ParametersError(file, where, f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ParametersError(
            file, where, f"{path}: expected an object with certificates_list, users_list, roles_list"
        )
    return data


def _fingerprint(path: Path) -> str:
    return x509.load_pem_x509_certificate(path.read_bytes()).fingerprint(hashes.SHA1()).hex()  # noqa: S303


def conf_data(plan: AuthPlan, certificates: Path, deployment_cert: Path) -> dict[str, list[Any]]:
    """The users, roles and certificates the init job loads (see the module's docstring)."""
    generated_users = [{"Username": u, "Roles": [r]} for u, r in plan.generated_users.items() if r]
    certs = [
        {
            "Username": u,
            "Cn": user_cert_name(u),
            "Fingerprint": _fingerprint(certificates / f"{user_cert_name(u)}.crt"),
        }
        for u in plan.generated_users
    ]
    data: dict[str, list[Any]] = {
        "roles_list": [DEPLOYMENT_ROLE],
        "users_list": [{"Username": DEPLOYMENT_USER, "Roles": ["Deployment"]}, *generated_users],
        "certificates_list": [
            {"Username": DEPLOYMENT_USER, "Cn": "client", "Fingerprint": _fingerprint(deployment_cert)},
            *certs,
        ],
    }
    if plan.datafile:
        provided = json.loads(Path(plan.datafile).read_text())
        for key in data:
            data[key] += provided.get(key) or []
    return data


def write_conf(plan: AuthPlan, certificates: Path, deployment_cert: Path) -> None:
    data = conf_data(plan, certificates, deployment_cert)
    conf = Path(plan.conf_file)
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.chmod(conf, 0o600)
