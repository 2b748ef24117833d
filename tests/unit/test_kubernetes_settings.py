"""The settings the rendered processes would read, accepted by each process's own settings parser, and MongoDB's
TLS: the server serves TLS only with the deployment's certificate and every core process trusts its authority."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from armonik_core.adapters.state.mongodb import MongoSettings
from armonik_core.config import ControlPlaneSettings, Environment
from armonik_core.gateway.auth import agent_credential
from armonik_core.metrics.settings import MetricsExporterSettings
from armonik_core.polling_agent.settings import AgentSettings
from armonik_deploy.kubernetes import Rendered
from armonik_deploy.kubernetes.settings import MONGODB_CA_SECRET, MONGODB_TLS_SECRET
from tests.unit.kubernetes_render_support import (
    container_env,
    containers,
    mounted_env,
    names,
    object_data,
    secret_files,
    tls_handshake,
    workloads,
)


# -- the settings the processes would read ---------------------------------------------------------------
def test_default_settings_parse_with_the_embedded_backends(default: Rendered) -> None:
    cp_env = container_env(default, containers(default.get("Deployment", "control-plane"))[0])
    settings = ControlPlaneSettings.from_env(cp_env)
    assert (settings.host, settings.port) == ("0.0.0.0", 1080)
    assert (settings.table_storage, settings.queue_storage, settings.object_storage) == (
        "sqlite",
        "memory",
        "filesystem",
    )
    assert str(settings.data_directory) == "/armonik/data"
    assert [p.partition_id for p in settings.partitions] == ["default", "pymonik"]
    assert settings.tls is None
    mounts = containers(default.get("Deployment", "control-plane"))[0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/armonik/data"} in mounts
    agent = containers(default.get("Deployment", "compute-plane-default"))[0]
    agent_settings = AgentSettings.from_env(container_env(default, agent))
    # the agents reach the compute gateway's own Service, with their partition's credential
    assert agent_settings.control_plane_endpoint == "http://compute-gateway.armonik.svc:1081"
    assert settings.gateway is not None and settings.gateway.port == 1081 and settings.gateway.socket is None
    assert settings.gateway.secret is not None
    assert agent_settings.gateway_credential == agent_credential(settings.gateway.secret, "default")
    assert agent_settings.partition_id == "default"
    exporter = MetricsExporterSettings.from_env(
        container_env(default, containers(default.get("Deployment", "metrics-exporter"))[0])
    )
    assert (exporter.host, exporter.port) == ("0.0.0.0", 1080)


def test_variant_settings_reach_the_cluster_services(variant: Rendered, tmp_path: Path) -> None:
    deployment = variant.get("Deployment", "control-plane")
    cp_env = mounted_env(variant, deployment, containers(deployment)[0], tmp_path)
    settings = ControlPlaneSettings.from_env(cp_env)
    assert (settings.table_storage, settings.queue_storage, settings.object_storage) == (
        "mongodb",
        "rabbitmq",
        "redis",
    )
    assert cp_env["MongoDB__Host"] == "mongodb-db-ps-rs0.armonik-test.svc"
    assert cp_env["MongoDB__ReplicaSet"] == "rs0" and cp_env["MongoDB__DatabaseName"] == "armonik"
    assert cp_env["Amqp__Host"] == "rabbitmq.armonik-test.svc" and cp_env["Amqp__MaxPriority"] == "10"
    assert cp_env["Redis__EndpointUrl"] == "redis.armonik-test.svc:6379"
    assert cp_env["Serilog__MinimumLevel"] == "Debug"
    assert "Embedded__DataDirectory" not in cp_env
    assert "PersistentVolumeClaim" not in {m["kind"] for m in variant.manifests}
    assert settings.tls is not None
    # the services' own pods read the very passwords the core processes use
    rabbit = containers(variant.get("StatefulSet", "rabbitmq"))[0]
    ref = next(e for e in rabbit["env"] if e["name"] == "RABBITMQ_PASSWORD")["valueFrom"]["secretKeyRef"]
    assert object_data(variant, "Secret", ref["name"])[ref["key"]] == cp_env["Amqp__Password"]
    app_user = object_data(variant, "Secret", "application-user-password")["password"]
    assert app_user == cp_env["MongoDB__Password"]
    percona = variant.get("PerconaServerMongoDB", "mongodb-db-ps")["spec"]
    assert percona["users"][0]["name"] == cp_env["MongoDB__User"]
    assert percona["users"][0]["db"] == cp_env["MongoDB__AuthSource"] == "armonik"
    assert (
        percona["replsets"][0]["volumeSpec"]["persistentVolumeClaim"]["resources"]["requests"]["storage"]
        == "8Gi"
    )
    assert percona["image"] == "percona/percona-server-mongodb:8.0.19-7"


def test_variant_tls_files_are_in_the_mounted_secrets(variant: Rendered, tmp_path: Path) -> None:
    for deployment, secret_name, keys in (
        (
            "control-plane",
            "control-plane-tls",
            (
                "ControlPlane__Tls__CertificateFile",
                "ControlPlane__Tls__KeyFile",
                "ControlPlane__Tls__ClientCaFile",
            ),
        ),
        (
            "compute-plane-default",
            "polling-agent-tls",
            (
                "ControlPlane__Tls__CaFile",
                "ControlPlane__Tls__ClientCertificateFile",
                "ControlPlane__Tls__ClientKeyFile",
            ),
        ),
    ):
        container = containers(variant.get("Deployment", deployment))[0]
        env = container_env(variant, container)
        mount = next(m for m in container["volumeMounts"] if m["name"] == "certificates")
        files = object_data(variant, "Secret", secret_name)
        for key in keys:
            folder, _, name = env[key].rpartition("/")
            assert folder == mount["mountPath"] and name in files, key
    compute = variant.get("Deployment", "compute-plane-default")
    agent = AgentSettings.from_env(mounted_env(variant, compute, containers(compute)[0], tmp_path / "agent"))
    control = variant.get("Deployment", "control-plane")
    server = ControlPlaneSettings.from_env(
        mounted_env(variant, control, containers(control)[0], tmp_path / "cp")
    )
    assert server.tls is not None and agent.control_plane_tls is not None
    assert agent.control_plane_endpoint == "https://compute-gateway.armonik-test.svc:1081"  # TLS there too
    assert agent.control_plane_tls is not None


def core_containers(rendered: Rendered) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) of every process that reads core-configmap."""
    return [
        (workload, container)
        for workload in workloads(rendered)
        for container in containers(workload)
        if {"configMapRef": {"name": "core-configmap"}} in container.get("envFrom", [])
    ]


def test_mongodb_serves_tls_only_with_the_deployment_s_certificate(variant: Rendered) -> None:
    spec = variant.get("PerconaServerMongoDB", "mongodb-db-ps")["spec"]
    assert spec["tls"] == {"mode": "requireTLS", "allowInvalidCertificates": True}
    assert "tls" not in spec["unsafeFlags"]
    assert spec["secrets"]["ssl"] == spec["secrets"]["sslInternal"] == MONGODB_TLS_SECRET
    server = variant.get("Secret", MONGODB_TLS_SECRET)
    assert server["type"] == "kubernetes.io/tls" and set(server["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    authority = variant.get("Secret", MONGODB_CA_SECRET)
    assert authority["data"] == {"ca.crt": server["data"]["ca.crt"]}  # the authority, without any key
    names = [m["kind"] + "/" + m["metadata"]["name"] for m in variant.manifests]
    assert names.index(f"Secret/{MONGODB_TLS_SECRET}") < names.index("PerconaServerMongoDB/mongodb-db-ps")


def test_every_core_process_connects_to_mongodb_with_tls_trusting_its_authority(
    variant: Rendered, tmp_path: Path
) -> None:
    """The control plane, each polling agent, the init job and the metrics exporter read MongoDB__Tls and a
    MongoDB__CAFile in their mount of the authority's Secret; with it, a client accepts the replica set's
    certificate for the host the settings name and for each member's name (where the driver goes once it
    reads the replica set's configuration). Workers neither read the settings nor mount the authority."""
    core = core_containers(variant)
    assert {c["name"] for _, c in core} == {"control-plane", "polling-agent", "init", "metrics-exporter"}
    assert len(core) == 5  # two partitions
    server = secret_files(variant, MONGODB_TLS_SECRET, tmp_path / "server")
    for index, (workload, container) in enumerate(core):
        env = mounted_env(variant, workload, container, tmp_path / str(index))
        settings = MongoSettings.from_env(Environment(env))
        assert settings.tls and settings.client_options()["tlsCAFile"] == settings.ca_file
        assert Path(settings.ca_file).read_bytes() == server["ca.crt"].read_bytes()
        settings.connect().close()  # pymongo loads the authority (it connects lazily)
    host = MongoSettings.from_env(Environment(container_env(variant, core[0][1]))).host
    member = "mongodb-db-ps-rs0-0.mongodb-db-ps-rs0.armonik-test.svc.cluster.local"
    for name in (host, member, f"{host}.cluster.local"):
        tls_handshake(server, server["ca.crt"], name)
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_handshake(server, server["ca.crt"], "mongodb-db-ps-rs0.other-namespace.svc")
    workers = [
        container
        for workload in variant.of_kind("Deployment")
        if workload["metadata"]["name"].startswith("compute-plane-")
        for container in containers(workload)[1:]
    ]
    assert len(workers) == 3
    for worker in workers:
        assert MONGODB_CA_SECRET not in {m["name"] for m in worker["volumeMounts"]}
        assert "MongoDB__Tls" not in container_env(variant, worker)


def test_replica_set_members_authenticate_each_other_with_the_certificate(
    variant: Rendered, tmp_path: Path
) -> None:
    """sslInternal: a member connects to another presenting the same certificate, which the other
    requires and checks (x509 membership): the certificate serves and authenticates as a client."""
    files = secret_files(variant, MONGODB_TLS_SECRET, tmp_path)
    member = "mongodb-db-ps-rs0-1.mongodb-db-ps-rs0.armonik-test.svc.cluster.local"
    tls_handshake(files, files["ca.crt"], member, client=files)


def test_without_mongodb_nothing_mounts_its_authority(default: Rendered) -> None:
    assert MONGODB_CA_SECRET not in names(default, "Secret")
    for _, container in core_containers(default):
        assert "MongoDB__Tls" not in container_env(default, container)
        assert MONGODB_CA_SECRET not in {m["name"] for m in container.get("volumeMounts", [])}


def test_variant_warns_about_nothing_it_renders(variant: Rendered, default: Rendered) -> None:
    assert variant.warnings == [] and default.warnings == []
