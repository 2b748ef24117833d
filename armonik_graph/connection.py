"""The cluster to talk to, found as `armonik-cli` finds it: options, then `AK_ENDPOINT`, then the YAML file
named by `--config` / `AKCONFIG` (keys `endpoint`, `certificate_authority`, `client_certificate`, `client_key`),
then armonik-cli's own default configuration file. The same file serves both tools (`armonik-deploy` writes one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from armonik.common.channel import create_channel


class ConnectionError_(ValueError):
    """No endpoint configured, or a configuration file that cannot be read."""


@dataclass
class Connection:
    endpoint: str
    certificate_authority: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None

    def channel(self) -> grpc.Channel:
        endpoint = self.endpoint.removeprefix("http://").rstrip("/")
        if self.certificate_authority or self.endpoint.startswith("https://"):
            return create_channel(
                self.endpoint if self.endpoint.startswith("https://") else f"https://{endpoint}",
                certificate_authority=self.certificate_authority,
                client_certificate=self.client_certificate,
                client_key=self.client_key,
            )
        return grpc.insecure_channel(endpoint)


def _default_config() -> Path:
    """armonik-cli's default file (click's application directory for `armonik_cli`)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "armonik_cli" / "config.yml"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConnectionError_(f"cannot read the configuration file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConnectionError_(
            f"{path}: expected a mapping of settings (endpoint: ...), got {type(data).__name__}"
        )
    return data


def resolve(
    endpoint: str | None = None,
    config: str | None = None,
    certificate_authority: str | None = None,
    client_certificate: str | None = None,
    client_key: str | None = None,
) -> Connection:
    """The connection from options, environment and configuration files, in armonik-cli's order."""
    settings: dict[str, Any] = {}
    default = _default_config()
    if default.is_file():
        settings.update(_read(default))
    config = config or os.environ.get("AKCONFIG")
    if config:
        settings.update({k: v for k, v in _read(Path(config)).items() if v is not None})
    if os.environ.get("AK_ENDPOINT"):
        settings["endpoint"] = os.environ["AK_ENDPOINT"]
    given = {
        "endpoint": endpoint,
        "certificate_authority": certificate_authority,
        "client_certificate": client_certificate,
        "client_key": client_key,
    }
    settings.update({k: v for k, v in given.items() if v})
    if not settings.get("endpoint"):
        raise ConnectionError_(
            "no endpoint: pass --endpoint, set AK_ENDPOINT, or point AKCONFIG (or --config) at an armonik-cli "
            "configuration file"
        )
    return Connection(
        endpoint=str(settings["endpoint"]),
        certificate_authority=_path(settings.get("certificate_authority")),
        client_certificate=_path(settings.get("client_certificate")),
        client_key=_path(settings.get("client_key")),
    )


def _path(value: Any) -> str | None:
    return str(value) if value else None
