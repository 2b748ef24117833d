"""The files a deployment leaves for its users: `armonik-output.json` and the CLI's AKCONFIG file."""

from __future__ import annotations

import json
from pathlib import Path


def write_outputs(generated: Path, control_plane_url: str) -> tuple[Path, Path]:
    """Write the upstream-shaped output file and an `armonik-cli` configuration pointing at the endpoint."""
    generated.mkdir(parents=True, exist_ok=True)
    output = generated / "armonik-output.json"
    output.write_text(
        json.dumps(
            {
                "armonik": {
                    "control_plane_url": control_plane_url,
                    "admin_app_url": None,
                    "grafana_url": None,
                    "seq_web_url": None,
                    "chaos_mesh_url": None,
                }
            },
            indent=2,
        )
        + "\n"
    )
    cli = generated / "armonik-cli.yaml"
    endpoint = control_plane_url.removeprefix("http://")
    cli.write_text(f"endpoint: {endpoint}\n")
    return output, cli
