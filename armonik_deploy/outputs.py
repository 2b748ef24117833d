"""The files a deployment leaves for its users: `armonik-output.json` and the CLI's AKCONFIG file."""

from __future__ import annotations

import json
from pathlib import Path

OUTPUT_FILE = "armonik-output.json"
CLI_CONFIG_FILE = "armonik-cli.yaml"


def write_outputs(
    generated: Path,
    control_plane_url: str,
    *,
    admin_app_url: str | None = None,
    grafana_url: str | None = None,
    seq_web_url: str | None = None,
    chaos_mesh_url: str | None = None,
    certificate_authority: Path | None = None,
    client_certificate: Path | None = None,
    client_key: Path | None = None,
) -> tuple[Path, Path]:
    """Upstream's `armonik-output.json` (null where a component is absent) and an `armonik-cli` AKCONFIG;
    an https:// endpoint needs `certificate_authority` (the CLI uses TLS only with one), mTLS the client's
    certificate and key too."""
    generated.mkdir(parents=True, exist_ok=True)
    output = generated / OUTPUT_FILE
    armonik = {
        "control_plane_url": control_plane_url,
        "admin_app_url": admin_app_url,
        "grafana_url": grafana_url,
        "seq_web_url": seq_web_url,
        "chaos_mesh_url": chaos_mesh_url,
    }
    output.write_text(json.dumps({"armonik": armonik}, indent=2) + "\n")
    cli = generated / CLI_CONFIG_FILE
    endpoint = control_plane_url.removeprefix("http://").rstrip("/")
    certificates = {
        "certificate_authority": certificate_authority,
        "client_certificate": client_certificate,
        "client_key": client_key,
    }
    # JSON strings are YAML double-quoted scalars: any path is written safely.
    lines = [f"{key}: {json.dumps(str(path.resolve()))}\n" for key, path in certificates.items() if path]
    cli.write_text(f"# ArmoniK Connection Configuration\n---\nendpoint: {endpoint}\n" + "".join(lines))
    return output.resolve(), cli.resolve()
