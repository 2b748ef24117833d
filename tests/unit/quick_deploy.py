"""The quick-deploy parameters, as the render and podman-translation tests vary them."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICK_DEPLOY = ROOT / "infrastructure" / "quick-deploy" / "localhost"
VERSIONS_FILE = QUICK_DEPLOY / "versions.tfvars.json"
PYMONIK_PROCESSOR = "armonik_samples.pymonik_processor:processor"


def in_process_parameters(folder: Path) -> Path:
    """A parameters file in `folder`: the quick-deploy one with the `pymonik` partition in process
    (`module` given with the worker's image)."""
    file = folder / "parameters.tfvars"
    file.write_text(
        (QUICK_DEPLOY / "parameters.tfvars")
        .read_text()
        .replace(
            'worker = [\n      {\n        image   = "armonik-pymonik-worker"',
            f'worker = [\n      {{\n        module = "{PYMONIK_PROCESSOR}"\n        image   = "armonik-pymonik-worker"',
        )
    )
    return file
