"""The container images of the Kubernetes target (`infrastructure/images/*/Dockerfile`), read statically.

No Docker engine is available here, so each Dockerfile is parsed (FROM, USER, EXPOSE, ENTRYPOINT, COPY, RUN)
and checked for what the rendered manifests rely on: the non-root user 5000 that pods run as, the entrypoint
being a console script the project declares (or a Python module that exists), the ports the Services target,
and versions.tfvars.json listing every image with the project's version.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "infrastructure" / "images"
VERSIONS = ROOT / "infrastructure" / "quick-deploy" / "localhost" / "versions.tfvars.json"

#: Image folder -> (image name, ports the manifests' containerPort use).
EXPECTED = {
    "control-plane": ("armonik-control-plane", {1080}),
    "polling-agent": ("armonik-polling-agent", set()),
    "metrics-exporter": ("armonik-metrics-exporter", {1080}),
    "samples-worker": ("armonik-samples-worker", set()),
    "pymonik-worker": ("armonik-pymonik-worker", set()),
}


@dataclass
class Dockerfile:
    base: list[str] = field(default_factory=list)
    user: str | None = None
    expose: set[int] = field(default_factory=set)
    entrypoint: list[str] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)


def logical_lines(text: str) -> list[str]:
    """Instructions with their `\\` continuations joined, comments and blank lines dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        lines.append(current + line)
        current = ""
    assert not current, "a continuation line ends the file"
    return lines


def parse(path: Path) -> Dockerfile:
    parsed = Dockerfile()
    for line in logical_lines(path.read_text()):
        instruction, _, rest = line.partition(" ")
        rest = rest.strip()
        match instruction.upper():
            case "FROM":
                parsed.base.append(rest.split()[0])
            case "USER":
                parsed.user = rest
            case "EXPOSE":
                parsed.expose |= {int(port.split("/")[0]) for port in rest.split()}
            case "ENTRYPOINT":
                assert rest.startswith("["), f"{path}: ENTRYPOINT must use the exec (JSON) form"
                parsed.entrypoint = json.loads(rest)
            case "COPY":
                parsed.copies.append(rest)
            case "RUN":
                parsed.runs.append(rest)
    return parsed


def project_scripts() -> dict[str, str]:
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


def test_every_image_folder_is_expected() -> None:
    assert {p.parent.name for p in IMAGES.glob("*/Dockerfile")} == set(EXPECTED)


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_image_runs_as_user_5000_from_slim_python(folder: str) -> None:
    image = parse(IMAGES / folder / "Dockerfile")
    assert image.base == ["python:3.11-slim"]
    assert image.user == "5000"
    setup = " ".join(image.runs)
    assert "--uid 5000" in setup and "chown -R 5000:5000 /cache" in setup


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_image_installs_the_project_from_the_repository_root(folder: str) -> None:
    image = parse(IMAGES / folder / "Dockerfile")
    copied = " ".join(image.copies)
    for needed in ("pyproject.toml", "README.md", "armonik_core", "armonik_deploy", "armonik_samples"):
        assert needed in copied, f"{folder}: {needed} not copied"
    assert any(run.startswith("pip install /tmp/src") for run in image.runs)
    for source in ("pyproject.toml", "README.md", "armonik_core", "armonik_deploy", "armonik_samples"):
        assert (ROOT / source).exists()


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_image_entrypoint_is_a_declared_script_or_an_existing_module(folder: str) -> None:
    image = parse(IMAGES / folder / "Dockerfile")
    entry = image.entrypoint
    assert entry, f"{folder}: no ENTRYPOINT"
    scripts = project_scripts()
    if entry[0] == "python":
        # python -c "from pymonik import run_pymonik_worker; ..." or python -m module
        assert entry[1] in ("-c", "-m")
        module = entry[2] if entry[1] == "-m" else shlex.split(entry[2])[1]
        assert importlib.util.find_spec(module) is not None, f"{folder}: no module {module}"
        assert any(module in run for run in image.runs) or module.startswith("armonik_")
    else:
        assert entry[0] in scripts, f"{folder}: {entry[0]} is not in [project.scripts]"
        module, _, function = scripts[entry[0]].partition(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None
        assert f"def {function}(" in Path(spec.origin).read_text()


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_image_exposes_the_ports_the_manifests_target(folder: str) -> None:
    assert parse(IMAGES / folder / "Dockerfile").expose == EXPECTED[folder][1]


def test_control_plane_image_can_run_the_init_job() -> None:
    image = parse(IMAGES / "control-plane" / "Dockerfile")
    assert any("armonik_deploy" in copy for copy in image.copies)
    assert importlib.util.find_spec("armonik_deploy.init_job") is not None


def test_versions_list_every_image_with_the_project_version() -> None:
    versions = json.loads(VERSIONS.read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert versions["armonik_versions"]["armonik_py"] == project
    assert sorted(versions["armonik_images"]["armonik_py"]) == sorted(name for name, _ in EXPECTED.values())


def test_dockerignore_keeps_the_context_to_the_project() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines
    assert {
        "!pyproject.toml",
        "!README.md",
        "!armonik_core/",
        "!armonik_deploy/",
        "!armonik_samples/",
    } <= set(lines)


def test_parser_joins_continuations_and_reads_exec_form(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        '# c\nFROM a:1 AS b\nRUN x \\\n    && y\nEXPOSE 80/tcp 81\nUSER 7\nENTRYPOINT ["p", "q"]\n'
    )
    parsed = parse(path)
    assert parsed.base == ["a:1"] and parsed.runs == ["x && y"]
    assert parsed.expose == {80, 81} and parsed.user == "7" and parsed.entrypoint == ["p", "q"]
