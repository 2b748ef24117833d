"""The `authentication` block on Kubernetes: the control plane's `Authenticator__*` settings, and the users,
roles and certificates for the init job (in its ConfigMap, `InitServices__Authentication__Data`: CNs and
fingerprints, no secret). The built-in users' certificates are generated beside the deployment's others (see
armonik_deploy.authentication), to be handed to their users as the local target does."""

from __future__ import annotations

import json
from pathlib import Path

from armonik_deploy.authentication import auth_plan, conf_data, user_cert_name
from armonik_deploy.certificates import ensure_certificates
from armonik_deploy.kubernetes.context import Context, RenderError
from armonik_deploy.parameters import Parameters, ParametersError
from armonik_deploy.tls import IngressTls, read_ingress_tls


def generated_user_certificates(params: Parameters, file: Path, folder: Path, tls: IngressTls) -> list[str]:
    """The certificate names of the users `deploy` generates certificates for (none without authentication)."""
    plan = auth_plan(params, file, str(folder), tls.mtls, tls.generate_client_cert)
    return [user_cert_name(u) for u in plan.generated_users] if plan else []


def authentication_env(ctx: Context, mtls: bool) -> tuple[dict[str, str], dict[str, str]]:
    """(control plane settings, init job settings); empty when authentication is off."""
    try:
        tls = read_ingress_tls(ctx.params, ctx.file)
        plan = auth_plan(
            ctx.params, ctx.file, str(ctx.certificates) if mtls else None, mtls, tls.generate_client_cert
        )
    except ParametersError as exc:
        raise RenderError(str(exc)) from None
    if plan is None:
        return {}, {}
    certs = ensure_certificates(
        ctx.certificates,
        [],
        ["client", *(user_cert_name(u) for u in plan.generated_users)],
        validity_days=tls.certificate_validity_days,
        key_size=tls.certificate_key_size,
    )
    data = conf_data(plan, ctx.certificates, certs.clients["client"].certificate)
    return plan.control_plane_env(), {"InitServices__Authentication__Data": json.dumps(data)}
