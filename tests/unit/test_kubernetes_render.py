"""The Kubernetes target, rendered and checked without a cluster.

Two deployments are rendered: the shipped quick-deploy parameters (embedded backends) and a variant with
RabbitMQ, Redis, MongoDB, TLS + mTLS and a TCP-socket partition. Every manifest of a built-in kind is validated
against Kubernetes 1.32's OpenAPI schemas (kubernetes-validate, strict: unknown fields fail); the KEDA
ScaledObject and the PerconaServerMongoDB resource against the JSON schemas kept in infrastructure/schemas/.
Then what a schema cannot see: every ConfigMap, Secret, claim and Service target a pod refers to exists, every
image has a tag and every object is in the namespace; and the named errors, the `render` command and
re-rendering. ArmoniK's workloads are checked in `test_kubernetes_workloads`, the settings the processes would
read and MongoDB's TLS in `test_kubernetes_settings`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from armonik_core.config import ControlPlaneSettings
from armonik_deploy.cli import app
from armonik_deploy.kubernetes import Credentials, Rendered, RenderError, render, render_folder, to_yaml
from armonik_deploy.kubernetes.render import images
from armonik_deploy.kubernetes.settings import MONGODB_CA_SECRET, MONGODB_TLS_SECRET
from armonik_deploy.parameters import load_parameters
from tests.support import render_file
from tests.unit.kubernetes_render_support import (
    CLUSTER_KINDS,
    CUSTOM_SCHEMAS,
    VARIANT,
    container_env,
    containers,
    mounted_env,
    names,
    object_data,
    pod_spec,
    workloads,
)
from tests.unit.quick_deploy import PYMONIK_PROCESSOR, QUICK_DEPLOY, ROOT, in_process_parameters


# -- schemas ---------------------------------------------------------------------------------------------
def test_every_builtin_manifest_is_valid_for_kubernetes_1_32(rendered: Rendered) -> None:
    checked = 0
    for manifest in rendered.manifests:
        if manifest["kind"] in CUSTOM_SCHEMAS:
            continue
        kubernetes_validate.validate(manifest, "1.32", strict=True)
        checked += 1
    assert checked >= 15


def test_custom_resources_match_their_crd_schemas(variant: Rendered, default: Rendered) -> None:
    checked = set()
    for rendered in (default, variant):
        for manifest in rendered.manifests:
            if manifest["kind"] in CUSTOM_SCHEMAS:
                schema = json.loads(CUSTOM_SCHEMAS[manifest["kind"]].read_text())
                jsonschema.Draft202012Validator(schema).validate(manifest)
                checked.add(manifest["kind"])
    assert checked == set(CUSTOM_SCHEMAS)


def test_crd_schemas_reject_a_misspelt_field(default: Rendered) -> None:
    scaled = json.loads(json.dumps(default.of_kind("ScaledObject")[0]))
    scaled["spec"]["maxReplicas"] = 3
    schema = json.loads(CUSTOM_SCHEMAS["ScaledObject"].read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, schema)


def test_the_validator_rejects_a_misspelt_field(default: Rendered) -> None:
    broken = json.loads(json.dumps(default.get("Deployment", "control-plane")))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.32", strict=True)


def test_yaml_round_trips(rendered: Rendered) -> None:
    for manifest in rendered.manifests:
        text = to_yaml(manifest)
        assert "&id" not in text and "*id" not in text
        assert yaml.safe_load(text) == manifest


# -- references ------------------------------------------------------------------------------------------
def test_every_referenced_configmap_secret_and_claim_exists(rendered: Rendered) -> None:
    config_maps, secrets = names(rendered, "ConfigMap"), names(rendered, "Secret")
    claims = names(rendered, "PersistentVolumeClaim")
    seen = 0
    for workload in workloads(rendered):
        pod = pod_spec(workload)
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps
                else:
                    assert source["secretRef"]["name"] in secrets
                seen += 1
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in object_data(rendered, "Secret", ref["name"])
                    seen += 1
            volumes = {v["name"] for v in pod.get("volumes", [])}
            claimed = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes | claimed
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
    assert seen > 10


def test_every_service_selects_pods_and_targets_a_named_port(rendered: Rendered) -> None:
    for svc in rendered.of_kind("Service"):
        selector = svc["spec"]["selector"]
        targets = [
            w
            for w in workloads(rendered)
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert targets, f"Service {svc['metadata']['name']} selects no pod"
        ports = {p["name"] for w in targets for c in containers(w) for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports


def test_every_image_has_a_tag(rendered: Rendered) -> None:
    found = [image for manifest in rendered.manifests for image in images(manifest)]
    assert found
    for image in found:
        name, _, tag = image.rpartition(":")
        assert name and tag and "/" not in tag, image


def test_every_object_is_in_the_namespace(rendered: Rendered) -> None:
    namespace = rendered.of_kind("Namespace")[0]["metadata"]["name"]
    for manifest in rendered.manifests[1:]:
        if manifest["kind"] not in CLUSTER_KINDS:
            assert manifest["metadata"]["namespace"] == namespace


def test_credentials_are_in_secrets_never_in_configmaps(variant: Rendered) -> None:
    for config_map in variant.of_kind("ConfigMap"):
        for key in config_map["data"]:
            assert not key.endswith(("__Password", "__User", "__Login", "__ConnectionString")), key
    assert "Amqp__Password" in object_data(variant, "Secret", "rabbitmq-credentials")
    assert "Redis__Password" in object_data(variant, "Secret", "redis-credentials")
    assert "MongoDB__Password" in object_data(variant, "Secret", "mongodb-credentials")


# -- errors, the command and re-rendering ----------------------------------------------------------------
def test_a_worker_without_image_is_a_named_error(versions: Any, tmp_path: Path) -> None:
    file = tmp_path / "p.tfvars"
    file.write_text(
        'compute_plane = { a = { worker = [{ command = ["x"] }] } }\ncontrol_plane = { default_partition = "a" }\n'
    )
    with pytest.raises(RenderError, match=r"compute_plane\.a\.worker\[0\]\.image: required"):
        render(load_parameters(file), versions, file, certificates=tmp_path)


def test_an_image_without_a_known_tag_is_a_named_error(versions: Any, tmp_path: Path) -> None:
    file = tmp_path / "p.tfvars"
    file.write_text('compute_plane = { a = { worker = [{ image = "mine", command = ["x"] }] } }\n')
    with pytest.raises(RenderError, match=r"compute_plane\.a\.worker\[0\]\.tag: no tag for image mine"):
        render(load_parameters(file), versions, file, certificates=tmp_path)


def test_render_folder_keeps_passwords_and_drops_stale_files(versions: Any, tmp_path: Path) -> None:
    file = tmp_path / "parameters.tfvars"
    file.write_text(VARIANT)
    out = tmp_path / "out"
    first, paths = render_folder(load_parameters(file), versions, file, out)
    assert len(paths) == len(first.manifests)
    assert (out / "credentials.json").stat().st_mode & 0o777 == 0o600
    stale = out / "099-deployment-gone.yaml"
    stale.write_text("{}")
    second, _ = render_folder(load_parameters(file), versions, file, out)
    assert not stale.exists()
    assert to_yaml(first.get("Secret", "rabbitmq-credentials")) == to_yaml(
        second.get("Secret", "rabbitmq-credentials")
    )
    for kept in ("control-plane-tls", MONGODB_TLS_SECRET, MONGODB_CA_SECRET):  # the certificates are kept
        assert to_yaml(first.get("Secret", kept)) == to_yaml(second.get("Secret", kept))
    loaded = [yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml"))]
    assert loaded == second.manifests
    assert loaded[0]["kind"] == "Namespace"


def test_credentials_given_in_parameters_win() -> None:
    credentials = Credentials()
    assert credentials.get("redis", "given") == "given"
    generated = credentials.get("redis")
    assert len(generated) >= 20 and credentials.get("redis") == generated


def test_cli_render_and_kubernetes_plan(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["render", str(tmp_path / "k8s")])
    assert result.exit_code == 0, result.output
    assert "manifests written" in result.output
    files = sorted(p.name for p in (tmp_path / "k8s").glob("*.yaml"))
    assert files[0] == "000-namespace-armonik.yaml"
    assert any(name.endswith("-scaledobject-default-compute-plane.yaml") for name in files)
    plan = runner.invoke(app, ["plan", "--target", "kubernetes"])
    assert plan.exit_code == 0, plan.output
    assert "ScaledObject" in plan.output and "default-compute-plane" in plan.output
    assert "Deployment" in plan.output and "compute-plane-pymonik" in plan.output
    bad = runner.invoke(
        app, ["render", str(tmp_path / "x"), "--parameters", str(tmp_path / "missing.tfvars")]
    )
    assert bad.exit_code == 1 and "cannot read the file" in bad.output


def test_cli_render_without_helm_writes_ours_and_names_each_chart_left_out(tmp_path: Path) -> None:
    """This machine has no helm: the charts (KEDA for the ScaledObjects, the Percona operator for MongoDB) are
    each named in a warning, and every manifest of the deployment is still written (the charts' objects, with
    helm, are checked in test_kubernetes_helm)."""
    file = tmp_path / "parameters.tfvars"
    file.write_text(VARIANT)
    env = {"PATH": str(tmp_path / "no-helm-here"), "COLUMNS": "400"}
    result = CliRunner().invoke(app, ["render", str(tmp_path / "k8s"), "--parameters", str(file)], env=env)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    pinned = json.loads((QUICK_DEPLOY / "versions.tfvars.json").read_text())["helm_charts"]
    assert [w.split(" from ")[0] for w in warnings] == [
        f"warning: Helm chart keda {pinned['keda']['version']}",
        f"warning: Helm chart psmdb-operator {pinned['mongodb']['version']}",
    ]
    assert all("helm is not on PATH" in w and "https://helm.sh/docs/intro/install/" in w for w in warnings)
    expected = render_file(file, tmp_path / "c")
    assert len(list((tmp_path / "k8s").glob("*.yaml"))) == len(expected.manifests)


def test_variant_authentication_reaches_the_control_plane_and_the_init_job(
    variant: Rendered, tmp_path: Path
) -> None:
    from armonik_core.control_plane.auth.init import DATA, tables_of
    from armonik_core.control_plane.auth.setup import auth_settings

    deployment = variant.get("Deployment", "control-plane")
    cp_env = mounted_env(variant, deployment, containers(deployment)[0], tmp_path)
    auth = auth_settings(ControlPlaneSettings.from_env(cp_env))
    assert auth.require_authentication and auth.authorization
    # the parameters' proxy, and the deployment's ingress, which passes on the browsers' certificates
    assert auth.trusted_common_names == {"ingress", "armonik-ingress"}
    init = container_env(variant, containers(variant.get("Job", "init"))[0])
    tables = tables_of(init[DATA], DATA)
    assert tables.users["admin"] == ["Admin"] and tables.users["deployment"] == ["Deployment"]
    assert {c.cn for c in tables.certificates} == {
        "client",
        "user-admin",
        "user-submitter",
        "user-monitoring",
    }


def test_an_in_process_partition_has_no_worker_container(versions: Any, tmp_path: Path) -> None:
    file = in_process_parameters(tmp_path)
    rendered = render(load_parameters(file), versions, file, certificates=tmp_path / "certs")
    [agent] = containers(rendered.get("Deployment", "compute-plane-pymonik"))
    env = container_env(rendered, agent)
    assert env["Worker__Module"] == PYMONIK_PROCESSOR
    assert env["Pollster__SharedCacheFolder"] == "/cache/shared"
    assert agent["image"].split(":")[0].endswith("armonik-pymonik-worker")
    # The worker's image starts the worker: the agent container names the agent image's entrypoint instead.
    assert agent["command"] == image_entrypoint("polling-agent")
    assert agent["command"] != image_entrypoint("pymonik-worker")
    assert "livenessProbe" not in agent
    # The separate-worker partition is unchanged: its agent runs its own image's entrypoint.
    default = containers(rendered.get("Deployment", "compute-plane-default"))
    assert len(default) == 2 and "command" not in default[0]


def image_entrypoint(stage: str) -> list[str]:
    """The ENTRYPOINT of a stage of the project's images Dockerfile."""
    lines = (ROOT / "infrastructure" / "images" / "Dockerfile").read_text().splitlines()
    start = lines.index(f"FROM runtime AS {stage}")
    entry = next(line for line in lines[start:] if line.startswith("ENTRYPOINT "))
    return list(json.loads(entry.removeprefix("ENTRYPOINT ")))
