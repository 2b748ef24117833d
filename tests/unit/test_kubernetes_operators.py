"""The operators' stack on Kubernetes: what the schemas cannot check (routes, provisioning, settings)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from armonik_deploy.kubernetes import Rendered, render
from armonik_deploy.kubernetes.context import Context, Credentials, RenderError
from armonik_deploy.kubernetes.operators import operator_urls
from armonik_deploy.parameters import load_versions, parameters_from_dict
from tests.unit.kubernetes_render_support import containers, object_data, pod_spec
from tests.unit.quick_deploy import QUICK_DEPLOY

BASE = {"compute_plane": {"default": {"worker": [{"image": "armonik-samples-worker"}]}}}


def rendered_with(tmp_path: Path, **blocks: object) -> Rendered:
    params = parameters_from_dict({**BASE, **blocks}, str(tmp_path / "p.tfvars"))
    return render(
        params,
        load_versions(QUICK_DEPLOY / "versions.tfvars.json"),
        tmp_path / "p.tfvars",
        certificates=tmp_path,
    )


def test_nothing_without_the_blocks(tmp_path: Path) -> None:
    kinds = {(m["kind"], m["metadata"]["name"]) for m in rendered_with(tmp_path).manifests}
    for name in ("ingress", "admin-gui", "grafana", "seq", "fluent-bit"):
        assert ("Deployment", name) not in kinds and ("DaemonSet", name) not in kinds


def test_the_whole_stack(tmp_path: Path) -> None:
    rendered = rendered_with(
        tmp_path,
        ingress={"http_port": 5000, "tls": True, "mtls": True, "certificate_key_size": 2048},
        admin_gui={},
        grafana={},
        seq={},
        fluent_bit={},
        environment_description={"name": "prod", "version": "2", "description": "d", "color": "red"},
    )
    conf = object_data(rendered, "ConfigMap", "ingress-nginx")["default.conf"]
    for route in (
        "location /static/",
        "location /admin/",
        "location /grafana/",
        "location /seq/",
        "location / ",
    ):
        assert route in conf
    # nginx serves HTTPS with the armonik-ingress certificate, checks browsers' certificates against the
    # client authorities, refuses requests without one, and passes the verified CN and fingerprint on
    for directive in (
        "listen 8080 ssl;",
        "ssl_certificate /etc/nginx/certificates/tls.crt;",
        "ssl_client_certificate /etc/nginx/certificates/ca.crt;",
        "ssl_verify_client optional;",
        "proxy_set_header X-Certificate-Client-CN $armonik_client_cn;",
        "proxy_set_header X-Certificate-Client-Fingerprint $ssl_client_fingerprint;",
    ):
        assert directive in conf
    assert conf.count("if ($ssl_client_verify != SUCCESS)") == 5  # every location but /healthz
    server = rendered.get("Secret", "armonik-ingress")
    assert server["type"] == "kubernetes.io/tls" and set(server["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    names = x509.load_pem_x509_certificate(base64.b64decode(server["data"]["tls.crt"])).extensions
    dns = names.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert {"ingress", "ingress.armonik.svc.cluster.local", "localhost"} <= set(dns)
    own = rendered.get("Secret", "armonik-ingress-client")["data"]
    own_cert = x509.load_pem_x509_certificate(base64.b64decode(own["tls.crt"]))
    assert own_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "armonik-ingress"
    static = object_data(rendered, "ConfigMap", "ingress-static")
    assert json.loads(static["environment.json"]) == {
        "name": "prod",
        "version": "2",
        "description": "d",
        "color": "red",
    }
    assert json.loads(static["gui_configuration"]) == {}

    pod = containers(rendered.get("Deployment", "ingress"))
    grpc_web = next(c for c in pod if c["name"] == "grpc-web")
    assert grpc_web["command"] == ["python", "-m", "armonik_core.ingress"]
    env = {e["name"]: e["value"] for e in grpc_web["env"]}
    assert env["ControlPlane__Endpoint"].startswith("https://control-plane.")
    assert env["ControlPlane__Tls__ClientCertificateFile"].endswith("tls.crt")
    assert env["Ingress__TrustProxyIdentityHeaders"] == "true" and env["Ingress__Host"] == "127.0.0.1"
    volumes = {v["name"]: v for v in pod_spec(rendered.get("Deployment", "ingress"))["volumes"]}
    assert volumes["certificates"]["secret"]["secretName"] == "armonik-ingress-client"  # not the agents'
    nginx = next(c for c in pod if c["name"] == "nginx")
    assert nginx["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert rendered.get("Service", "ingress")["spec"]["ports"][0]["port"] == 5000

    assert containers(rendered.get("Deployment", "admin-gui"))[0]["image"].startswith(
        "dockerhubaneo/armonik_admin_app:"
    )
    dashboard = json.loads(object_data(rendered, "ConfigMap", "grafana-dashboards")["armonik.json"])
    exprs = {t["expr"] for p in dashboard["panels"] for t in p["targets"]}
    assert {"armonik_tasks_completed", "armonik_default_tasks_queued", "armonik_queue_depth"} <= exprs
    assert any(e.startswith("deriv(armonik_tasks_completed") for e in exprs)
    datasource = object_data(rendered, "ConfigMap", "grafana-datasources")["prometheus.yaml"]
    assert "type: prometheus" in datasource and "prometheus." in datasource
    fluent = object_data(rendered, "ConfigMap", "fluent-bit-config")["fluent-bit.conf"]
    assert "URI /api/events/raw?clef" in fluent and "Host seq." in fluent

    ctx = Context(
        parameters_from_dict({**BASE, "admin_gui": {}, "seq": {}}),
        load_versions(QUICK_DEPLOY / "versions.tfvars.json"),
        tmp_path / "p",
        Credentials(),
        tmp_path,
    )
    assert operator_urls(ctx, "http://10.0.0.1:5000") == {
        "admin_app_url": "http://10.0.0.1:5000/admin/",
        "grafana_url": None,
        "seq_web_url": "http://10.0.0.1:5000/seq/",
    }
    # without a GUI, /admin/ reaches the gRPC-Web container, which sends it to the console
    without_gui = Context(parameters_from_dict(BASE), ctx.versions, tmp_path / "p", Credentials(), tmp_path)
    urls = operator_urls(without_gui, "http://10.0.0.1:5000")
    assert urls["admin_app_url"] == "http://10.0.0.1:5000/admin/"


def test_without_tls_nginx_clears_the_identity_headers(tmp_path: Path) -> None:
    rendered = rendered_with(tmp_path, ingress={"http_port": 5000})
    conf = object_data(rendered, "ConfigMap", "ingress-nginx")["default.conf"]
    assert "listen 8080;" in conf and "ssl" not in conf
    assert 'X-Certificate-Client-CN ""' in conf  # a browser cannot pass itself off as a trusted proxy
    assert not [m for m in rendered.manifests if m["kind"] == "Secret" and "ingress" in m["metadata"]["name"]]
    grpc_web = next(c for c in containers(rendered.get("Deployment", "ingress")) if c["name"] == "grpc-web")
    assert "Ingress__TrustProxyIdentityHeaders" not in {e["name"] for e in grpc_web["env"]}


def test_fluent_bit_needs_seq(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="fluent_bit: ships the logs to Seq"):
        rendered_with(tmp_path, fluent_bit={})


def test_terraform_applies_the_rendered_stack(tmp_path: Path) -> None:
    import yaml

    from armonik_deploy.kubernetes.apply import OPERATORS_VARIABLE
    from armonik_deploy.kubernetes.render import operators_manifests

    rendered = rendered_with(tmp_path, ingress={}, admin_gui={}, seq={})
    files = operators_manifests(rendered)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in map(yaml.safe_load, files.values())}
    assert {
        ("Deployment", "ingress"),
        ("Service", "ingress"),
        ("Deployment", "admin-gui"),
        ("Deployment", "seq"),
    } <= kinds
    assert not any(
        name == "control-plane" for _, name in kinds
    )  # only the stack: the rest is Terraform's own
    terraform = QUICK_DEPLOY / "variables.tf"
    assert f'variable "{OPERATORS_VARIABLE}"' in terraform.read_text()
    assert "var.operators_manifests" in (QUICK_DEPLOY / "main.tf").read_text()
