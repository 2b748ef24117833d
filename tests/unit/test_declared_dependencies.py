"""Every third-party module the shipped packages import is installed by `pip install armonik-py`: its
distribution is a declared dependency or one of theirs. The images install the declared dependencies only (the
test tools are an extra), so a module that only the test extra brings would make a process fail at start in
its container while every test on this machine passes."""

from __future__ import annotations

import ast
import sys
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PACKAGES = ("armonik_core", "armonik_deploy", "armonik_graph", "armonik_samples")
#: Installed apart: PymoniK by its worker's image (its pins are checked there against the project's), for the
#: in-process PymoniK processor of armonik_samples.
APART = {"pymonik"}


def installed_by(requirements: list[str]) -> set[str]:
    """The distributions a set of requirements installs here (their closure, markers of this platform)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = requirement.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        todo += [Requirement(r) for r in metadata.requires(requirement.name) or []]
    return seen


def imported_modules() -> dict[str, str]:
    """Top-level module -> a file importing it, over the shipped packages (their own modules aside)."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_imported_module_is_installed_by_the_declared_dependencies() -> None:
    declared = installed_by(PROJECT["dependencies"])
    providers = metadata.packages_distributions()
    missing = {}
    for module, where in imported_modules().items():
        if module in sys.stdlib_module_names or module in PACKAGES or module in APART | {"__future__"}:
            continue
        distributions = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if distributions and not distributions & declared:
            missing[module] = (where, sorted(distributions))
    assert not missing, f"imported, not installed by the project's dependencies: {missing}"


def test_the_closure_follows_requirements() -> None:
    assert {"armonik", "grpcio", "protobuf"} <= installed_by(["armonik"])
