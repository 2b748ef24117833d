"""armonik-graph finds its cluster as armonik-cli does: options, then AK_ENDPOINT, then the AKCONFIG file."""

from __future__ import annotations

from pathlib import Path

import pytest

from armonik_graph.connection import ConnectionError_, resolve


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AKCONFIG", "AK_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-default"))


def test_the_configuration_file_then_the_environment_then_the_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "armonik-cli.yaml"
    config.write_text("endpoint: 10.0.0.1:5001\ncertificate_authority: /ca.pem\nclient_certificate: null\n")
    monkeypatch.setenv("AKCONFIG", str(config))
    found = resolve()
    assert (found.endpoint, found.certificate_authority, found.client_certificate) == (
        "10.0.0.1:5001",
        "/ca.pem",
        None,
    )
    monkeypatch.setenv("AK_ENDPOINT", "10.0.0.2:5001")
    assert resolve().endpoint == "10.0.0.2:5001"
    assert resolve(endpoint="10.0.0.3:5001").endpoint == "10.0.0.3:5001"
    assert resolve(endpoint="10.0.0.3:5001").certificate_authority == "/ca.pem"


def test_armonik_cli_default_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    default = tmp_path / "xdg" / "armonik_cli" / "config.yml"
    default.parent.mkdir(parents=True)
    default.write_text("endpoint: http://10.0.0.4:5001\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert resolve().endpoint == "http://10.0.0.4:5001"


def test_no_endpoint_or_a_bad_file_is_said_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConnectionError_, match="no endpoint"):
        resolve()
    with pytest.raises(ConnectionError_, match="cannot read the configuration file"):
        resolve(config=str(tmp_path / "missing.yaml"))
    listed = tmp_path / "list.yaml"
    listed.write_text("- endpoint\n")
    with pytest.raises(ConnectionError_, match="expected a mapping"):
        resolve(config=str(listed))
