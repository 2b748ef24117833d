"""TLS settings of the control plane and of the polling agent: what is read, and the errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from armonik_core.config import ConfigurationError, ControlPlaneSettings, Environment
from armonik_core.polling_agent.settings import AgentSettings
from armonik_core.tls import ClientTlsSettings, ServerTlsSettings, channel_target, is_https
from armonik_deploy.certificates import Certificates, ServerIdentity, ensure_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return ensure_certificates(
        tmp_path_factory.mktemp("tls-settings"),
        [ServerIdentity("control-plane", ["localhost", "127.0.0.1"])],
        ["client"],
        key_size=2048,
    )


def server_env(certs: Certificates, **extra: str) -> dict[str, str]:
    pair = certs.servers["control-plane"]
    return {
        "ControlPlane__Tls__CertificateFile": str(pair.certificate),
        "ControlPlane__Tls__KeyFile": str(pair.key),
        **extra,
    }


# -- control plane -----------------------------------------------------------------------------------------------
def test_without_tls_settings_the_port_stays_plain() -> None:
    assert ControlPlaneSettings.from_env({}).tls is None
    empty = {"ControlPlane__Tls__CertificateFile": "", "ControlPlane__Tls__KeyFile": " "}
    assert ControlPlaneSettings.from_env(empty).tls is None
    assert ServerTlsSettings.from_env(Environment(empty)) is None


def test_certificate_and_key_make_tls(certs: Certificates) -> None:
    tls = ControlPlaneSettings.from_env(server_env(certs)).tls
    assert tls is not None and not tls.mtls
    assert tls.certificate_chain == certs.servers["control-plane"].certificate.read_bytes()
    assert tls.private_key == certs.servers["control-plane"].key.read_bytes()


def test_a_client_ca_makes_mtls(certs: Certificates) -> None:
    env = server_env(certs, controlplane__tls__clientcafile=str(certs.ca.certificate))  # case-insensitive
    tls = ControlPlaneSettings.from_env(env).tls
    assert tls is not None and tls.mtls and tls.client_ca == certs.ca.certificate.read_bytes()


@pytest.mark.parametrize(
    ("missing", "given"),
    [
        ("ControlPlane__Tls__KeyFile", "ControlPlane__Tls__CertificateFile"),
        ("ControlPlane__Tls__CertificateFile", "ControlPlane__Tls__KeyFile"),
    ],
)
def test_one_file_without_the_other_names_the_missing_key(
    certs: Certificates, missing: str, given: str
) -> None:
    env = server_env(certs)
    del env[missing]
    with pytest.raises(ConfigurationError, match=f"{given} is set but {missing} is not"):
        ControlPlaneSettings.from_env(env)


def test_a_client_ca_without_a_certificate_is_refused(certs: Certificates) -> None:
    with pytest.raises(ConfigurationError, match="ControlPlane__Tls__ClientCaFile is set but"):
        ControlPlaneSettings.from_env({"ControlPlane__Tls__ClientCaFile": str(certs.ca.certificate)})


def test_unreadable_or_wrong_files_name_the_key_and_the_path(certs: Certificates, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.crt"
    with pytest.raises(
        ConfigurationError, match=r"ControlPlane__Tls__CertificateFile='.*nowhere.crt': cannot"
    ):
        ControlPlaneSettings.from_env(server_env(certs, ControlPlane__Tls__CertificateFile=str(missing)))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    with pytest.raises(
        ConfigurationError, match="ControlPlane__Tls__CertificateFile=.*not a PEM certificate"
    ):
        ControlPlaneSettings.from_env(server_env(certs, ControlPlane__Tls__CertificateFile=str(garbage)))
    with pytest.raises(
        ConfigurationError, match="ControlPlane__Tls__KeyFile=.*not an unencrypted PEM private key"
    ):
        ControlPlaneSettings.from_env(server_env(certs, ControlPlane__Tls__KeyFile=str(garbage)))
    with pytest.raises(ConfigurationError, match="ControlPlane__Tls__ClientCaFile=.*not a PEM certificate"):
        ControlPlaneSettings.from_env(server_env(certs, ControlPlane__Tls__ClientCaFile=str(garbage)))


def test_a_key_of_another_certificate_is_refused(certs: Certificates) -> None:
    env = server_env(certs, ControlPlane__Tls__KeyFile=str(certs.clients["client"].key))
    with pytest.raises(
        ConfigurationError, match="ControlPlane__Tls__KeyFile=.*not the key of the certificate"
    ):
        ControlPlaneSettings.from_env(env)


# -- polling agent -------------------------------------------------------------------------------------------------
def test_a_plain_endpoint_makes_a_plain_channel() -> None:
    assert AgentSettings.from_env({"ControlPlane__Endpoint": "127.0.0.1:5001"}).control_plane_tls is None


def test_an_https_endpoint_makes_a_tls_channel_with_the_ca(certs: Certificates) -> None:
    settings = AgentSettings.from_env(
        {
            "ControlPlane__Endpoint": "https://127.0.0.1:5001",
            "ControlPlane__Tls__CaFile": str(certs.ca.certificate),
        }
    )
    assert settings.control_plane_tls == ClientTlsSettings(certs.ca.certificate.read_bytes(), None, None)
    bare = AgentSettings.from_env({"ControlPlane__Endpoint": "HTTPS://cp.example:443/"})
    assert bare.control_plane_tls == ClientTlsSettings()  # gRPC's bundled public roots


def test_a_client_certificate_is_presented_for_mtls(certs: Certificates) -> None:
    client = certs.clients["client"]
    settings = AgentSettings.from_env(
        {
            "ControlPlane__Endpoint": "https://127.0.0.1:5001",
            "ControlPlane__Tls__CaFile": str(certs.ca.certificate),
            "ControlPlane__Tls__ClientCertificateFile": str(client.certificate),
            "ControlPlane__Tls__ClientKeyFile": str(client.key),
        }
    )
    tls = settings.control_plane_tls
    assert tls is not None
    assert (
        tls.certificate_chain == client.certificate.read_bytes()
        and tls.private_key == client.key.read_bytes()
    )


def test_agent_tls_errors_name_the_key(certs: Certificates) -> None:
    https = {"ControlPlane__Endpoint": "https://127.0.0.1:5001"}
    with pytest.raises(
        ConfigurationError, match="ClientCertificateFile is set but ControlPlane__Tls__ClientKeyFile"
    ):
        AgentSettings.from_env(
            {**https, "ControlPlane__Tls__ClientCertificateFile": str(certs.ca.certificate)}
        )
    with pytest.raises(ConfigurationError, match="ControlPlane__Tls__CaFile='/no/such.crt': cannot read"):
        AgentSettings.from_env({**https, "ControlPlane__Tls__CaFile": "/no/such.crt"})
    with pytest.raises(
        ConfigurationError, match=r"ControlPlane__Tls__CaFile is set but .* not an https:// URL"
    ):
        AgentSettings.from_env(
            {
                "ControlPlane__Endpoint": "127.0.0.1:5001",
                "ControlPlane__Tls__CaFile": str(certs.ca.certificate),
            }
        )


def test_endpoints_as_urls_or_host_and_port() -> None:
    assert channel_target("https://127.0.0.1:5001/") == "127.0.0.1:5001"
    assert channel_target("http://localhost:5001") == "localhost:5001"
    assert channel_target(" 10.0.0.1:5001 ") == "10.0.0.1:5001"
    assert is_https("HTTPS://x:1") and not is_https("http://x:1") and not is_https("x:1")
