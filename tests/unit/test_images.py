"""The container images of the Kubernetes target (`infrastructure/images/Dockerfile`), read statically.

One multi-stage Dockerfile: a `wheels` stage with the compiler builds every wheel, a shared `runtime` stage
installs them, and each image is a named target of it (`podman build --target <name>`). The images are built
and run for real by tests/podman; here the Dockerfile is parsed (FROM ... AS,
USER, EXPOSE, ENV, ENTRYPOINT, COPY, RUN), each target's instructions are followed up through the stages it
builds on, and checked for what the rendered manifests rely on: the non-root user 5000 that pods run as, the
entrypoint being a console script the project declares (or a Python module that exists), the ports the
Services target, and versions.tfvars.json listing every image with the project's version.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomllib

from armonik_deploy.kubernetes.ingress import NGINX_PORT

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infrastructure" / "images" / "Dockerfile"
VERSIONS = ROOT / "infrastructure" / "quick-deploy" / "localhost" / "versions.tfvars.json"
#: The project's packages (pyproject's `packages.find` patterns): every image installs them all, since a process
#: of one imports the others' (the ingress serves `armonik_graph`'s console).
PACKAGES = tuple(
    pattern.rstrip("*")
    for pattern in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"][
        "find"
    ]["include"]
)

#: Build target -> (image name, ports the manifests' containerPort use).
EXPECTED = {
    "control-plane": ("armonik-control-plane", {1080}),
    "polling-agent": ("armonik-polling-agent", set()),
    "metrics-exporter": ("armonik-metrics-exporter", {1080}),
    "samples-worker": ("armonik-samples-worker", set()),
    "pymonik-worker": ("armonik-pymonik-worker", set()),
}
#: The ingress pod's nginx (no Python of ours): target -> (image name, port), built on the base image itself.
NGINX_TARGET, NGINX_IMAGE = "ingress-nginx", "armonik-ingress-nginx"
NGINX_FILES = ROOT / "infrastructure" / "images" / "nginx"
#: The stage every target builds on (the Python ones through `runtime`), and the one that compiles the wheels.
SHARED_STAGE = "armonik-base"
BASE_STAGE = "runtime"
WHEEL_STAGE = "wheels"


@dataclass
class Stage:
    """One `FROM` of the Dockerfile: what it starts from and the instructions it adds."""

    parent: str
    name: str | None = None
    user: str | None = None
    expose: set[int] = field(default_factory=set)
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)


@dataclass
class Image:
    """A build target with what it inherits from its stages, as `docker build --target` produces it."""

    base: str
    user: str | None
    expose: set[int]
    env: dict[str, str]
    entrypoint: list[str]
    copies: list[str]
    runs: list[str]


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


def parse_env(rest: str) -> dict[str, str]:
    """`ENV a=1 b=2` (the key=value form; the legacy `ENV a 1` is not used here)."""
    pairs = shlex.split(rest)
    assert all("=" in pair for pair in pairs), f"ENV must use key=value: {rest}"
    return dict(pair.split("=", 1) for pair in pairs)


def parse_stages(text: str, where: str = "Dockerfile") -> list[Stage]:
    stages: list[Stage] = []
    for line in logical_lines(text):
        instruction, _, rest = line.partition(" ")
        rest = rest.strip()
        keyword = instruction.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(parent=words[0], name=name))
            continue
        if keyword == "ARG" and not stages:  # a build argument of the FROM lines
            continue
        assert stages, f"{where}: {keyword} before any FROM"
        stage = stages[-1]
        match keyword:
            case "USER":
                stage.user = rest
            case "EXPOSE":
                stage.expose |= {int(port.split("/")[0]) for port in rest.split()}
            case "ENV":
                stage.env |= parse_env(rest)
            case "ENTRYPOINT":
                assert rest.startswith("["), f"{where}: ENTRYPOINT must use the exec (JSON) form"
                stage.entrypoint = json.loads(rest)
            case "COPY":
                stage.copies.append(rest)
            case "RUN":
                stage.runs.append(rest)
    return stages


def resolve(stages: list[Stage], target: str) -> Image:
    """The target's image: its stages from the first one up, later instructions winning."""
    by_name = {s.name: s for s in stages if s.name}
    chain: list[Stage] = []
    stage: Stage | None = by_name[target]
    while stage is not None:
        assert stage not in chain, f"stage {target} builds on itself"
        chain.insert(0, stage)
        stage = by_name.get(stage.parent)
    image = Image(chain[0].parent, None, set(), {}, [], [], [])
    for step in chain:
        image.user = step.user or image.user
        image.expose |= step.expose
        image.env |= step.env
        image.entrypoint = step.entrypoint or image.entrypoint
        image.copies += step.copies
        image.runs += step.runs
    return image


def image(target: str) -> Image:
    return resolve(parse_stages(DOCKERFILE.read_text(), str(DOCKERFILE)), target)


def project_scripts() -> dict[str, str]:
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


def test_the_targets_are_the_expected_images_on_one_base() -> None:
    stages = parse_stages(DOCKERFILE.read_text())
    names = [s.name for s in stages]
    assert len(names) == len(set(names)), f"stage names repeat: {names}"
    assert set(names) == set(EXPECTED) | {SHARED_STAGE, BASE_STAGE, WHEEL_STAGE, NGINX_TARGET}
    targets = [s for s in stages if s.name in EXPECTED]
    assert {s.parent for s in targets} == {BASE_STAGE}, "every image builds on the shared stage"
    assert not any(s.copies for s in targets if s.name != "pymonik-worker"), "only the wheel stage copies"
    by_name = {s.name: s for s in stages}
    assert by_name[WHEEL_STAGE].parent == by_name[SHARED_STAGE].parent == "${BASE_IMAGE}"
    assert by_name[BASE_STAGE].parent == by_name[NGINX_TARGET].parent == SHARED_STAGE
    compiler = " ".join(by_name[WHEEL_STAGE].runs)
    assert "gcc" in compiler
    assert not any("gcc" in run for s in stages if s.name != WHEEL_STAGE for run in s.runs)


def test_base_image_is_an_argument_defaulting_to_the_official_slim_python() -> None:
    args = [line for line in logical_lines(DOCKERFILE.read_text()) if line.startswith("ARG BASE_IMAGE=")]
    assert args == ["ARG BASE_IMAGE=docker.io/library/python:3.11-slim"]


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_image_runs_as_user_5000_on_the_chosen_base(target: str) -> None:
    built = image(target)
    assert built.base == "${BASE_IMAGE}"
    assert built.user == "5000"
    setup = " ".join(built.runs)
    assert "--uid 5000" in setup and "chown -R 5000:5000 /cache" in setup


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_image_installs_the_project_from_the_repository_root(target: str) -> None:
    wheels = resolve(parse_stages(DOCKERFILE.read_text()), WHEEL_STAGE)
    copied = " ".join(wheels.copies)
    for needed in ("pyproject.toml", "README.md", *PACKAGES):
        assert needed in copied, f"{target}: {needed} not copied"
    assert any("--no-index --find-links /wheels armonik-py" in run for run in image(target).runs)
    for source in ("pyproject.toml", "README.md", *PACKAGES):
        assert (ROOT / source).exists()


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_image_entrypoint_is_a_declared_script_or_an_existing_module(target: str) -> None:
    built = image(target)
    entry = built.entrypoint
    assert entry, f"{target}: no ENTRYPOINT"
    if entry[0] == "/usr/local/bin/tini":  # an init that forwards SIGTERM to a worker without a handler
        assert entry[1] == "--" and any("tini-static" in copy for copy in built.copies)
        entry = entry[2:]
    scripts = project_scripts()
    if entry[0] == "python":
        # python -c "from pymonik import run_pymonik_worker; ..." or python -m module
        assert entry[1] in ("-c", "-m")
        module = entry[2] if entry[1] == "-m" else shlex.split(entry[2])[1]
        assert importlib.util.find_spec(module) is not None, f"{target}: no module {module}"
        assert any(module in run for run in built.runs) or module.startswith("armonik_")
    else:
        assert entry[0] in scripts, f"{target}: {entry[0]} is not in [project.scripts]"
        module, _, function = scripts[entry[0]].partition(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None
        assert f"def {function}(" in Path(spec.origin).read_text()


@pytest.mark.parametrize("target", sorted(EXPECTED))
def test_image_exposes_the_ports_the_manifests_target(target: str) -> None:
    assert image(target).expose == EXPECTED[target][1]


@pytest.mark.parametrize(
    ("target", "section"), [("control-plane", "ControlPlane"), ("metrics-exporter", "MetricsExporter")]
)
def test_servers_listen_on_every_interface_on_their_exposed_port(target: str, section: str) -> None:
    built = image(target)
    assert built.env[f"{section}__Host"] == "0.0.0.0"
    assert {int(built.env[f"{section}__Port"])} == built.expose


def test_control_plane_image_can_run_the_init_job() -> None:
    wheels = resolve(parse_stages(DOCKERFILE.read_text()), WHEEL_STAGE)
    assert any("armonik_deploy" in copy for copy in wheels.copies)
    assert importlib.util.find_spec("armonik_deploy.init_job") is not None


def test_versions_list_every_image_with_the_project_version() -> None:
    versions = json.loads(VERSIONS.read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert versions["armonik_versions"]["armonik_py"] == project
    listed = sorted(versions["armonik_images"]["armonik_py"])
    assert listed == sorted([NGINX_IMAGE, *(name for name, _ in EXPECTED.values())])


def test_dockerignore_keeps_the_context_to_the_project() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines
    assert {"!pyproject.toml", "!README.md", *(f"!{package}/" for package in PACKAGES)} <= set(lines)
    assert f"!{NGINX_FILES.relative_to(ROOT)}/" in lines


def test_the_ingress_nginx_image_keeps_the_contract_of_upstreams_unprivileged_nginx() -> None:
    """What the rendered ingress Deployment expects of its nginx image (upstream's nginx-unprivileged): the
    Service's port, a non-root user, the server blocks read from the ConfigMap mounted on /etc/nginx/conf.d, and
    every file nginx writes (pid, temporary files) where that user may write; nginx in the foreground as PID 1."""
    built = image(NGINX_TARGET)
    assert built.base == "${BASE_IMAGE}" and built.user == "5000" and built.expose == {NGINX_PORT}
    assert built.entrypoint == ["nginx", "-e", "stderr", "-g", "daemon off;"]
    assert any("nginx-light" in run and "gcc" not in run for run in built.runs)
    assert any("/etc/nginx/sites-enabled" in run for run in built.runs), "Debian's site listens on port 80"
    copied = {copy.split()[-1]: copy.split()[0] for copy in built.copies}
    assert copied == {
        "/etc/nginx/nginx.conf": "infrastructure/images/nginx/nginx.conf",
        "/etc/nginx/conf.d/default.conf": "infrastructure/images/nginx/default.conf",
    }
    main = (NGINX_FILES / "nginx.conf").read_text()
    assert "include /etc/nginx/conf.d/*.conf;" in main and "pid /tmp/nginx.pid;" in main
    written = [line.split()[1].rstrip(";") for line in main.splitlines() if "_temp_path" in line]
    assert written and all(path.startswith("/tmp/") for path in written)
    assert f"listen {NGINX_PORT};" in (NGINX_FILES / "default.conf").read_text()


def test_parser_joins_continuations_and_follows_stages() -> None:
    text = (
        "# c\nFROM a:1 AS b\nRUN x \\\n    && y\nEXPOSE 80/tcp 81\nUSER 7\nENV K=v \\\n    L=w\n"
        'FROM b AS c\nENTRYPOINT ["p", "q"]\nUSER 8\nRUN z\n'
    )
    stages = parse_stages(text)
    assert [(s.parent, s.name) for s in stages] == [("a:1", "b"), ("b", "c")]
    built = resolve(stages, "c")
    assert built.base == "a:1" and built.runs == ["x && y", "z"]
    assert built.expose == {80, 81} and built.user == "8" and built.entrypoint == ["p", "q"]
    assert built.env == {"K": "v", "L": "w"}
    assert resolve(stages, "b").user == "7" and resolve(stages, "b").entrypoint == []
