"""Imports flow one way: settings below the adapters that read them, shared service code below the control
plane and the compute gateway.

Read from the source (every `import`, at module level or inside a function), so that a lazy import that
would close a circle at run time is caught as well as a top-level one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "armonik_core"

#: Modules that read settings: they may import the settings layer and the domain, nothing that runs.
SETTINGS_MODULES = (
    "armonik_core.config",
    "armonik_core.tls",
    "armonik_core.settings",
    "armonik_core.polling_agent.settings",
    "armonik_core.metrics.settings",
    "armonik_core.gateway.settings",
)
SETTINGS_MAY_IMPORT = (
    "armonik_core.gateway.settings",
    "armonik_core.settings",
    "armonik_core.config",
    "armonik_core.tls",
    "armonik_core.domain",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[str]:
    """The absolute names of the modules `path` imports, relative imports resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # `from armonik_core import adapters` imports the package named after `import`.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _modules() -> dict[str, set[str]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found[_module_name(path)] = {name for name in _imports(path) if name.startswith("armonik_core")}
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _offences(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {imported}"
        for module, imports in _modules().items()
        if _within(module, importers)
        for imported in imports
        if _within(imported, forbidden)
    )


def test_the_reader_sees_every_import() -> None:
    """The reader itself: it finds the imports the tests below rely on (a reader finding nothing would pass)."""
    modules = _modules()
    assert "armonik_core.settings.environment" in modules["armonik_core.config"]
    assert "armonik_core.services.backends" in modules["armonik_core.gateway.server"]
    # a function-level import, in the factory
    assert "armonik_core.adapters.queue.rabbitmq" in modules["armonik_core.adapters.factory"]


def test_settings_import_only_settings_and_the_domain() -> None:
    offences = [
        line
        for line in _offences(SETTINGS_MODULES, ("armonik_core",))
        if not _within(line.split(" imports ")[1], SETTINGS_MAY_IMPORT)
    ]
    assert offences == []


@pytest.mark.parametrize(
    ("importers", "forbidden"),
    [
        (("armonik_core.gateway",), ("armonik_core.control_plane",)),
        (("armonik_core.services",), ("armonik_core.control_plane", "armonik_core.gateway")),
        (
            ("armonik_core.adapters", "armonik_core.domain", "armonik_core.settings"),
            ("armonik_core.control_plane", "armonik_core.gateway", "armonik_core.services"),
        ),
        # the ingress reaches the control plane over the API only: none of what serves it
        (
            ("armonik_core.ingress",),
            (
                "armonik_core.adapters",
                "armonik_core.gateway",
                "armonik_core.polling_agent",
                "armonik_core.services.backends",
                "armonik_core.control_plane.server",
                "armonik_core.control_plane.auth.authenticator",
            ),
        ),
    ],
    ids=[
        "gateway-not-control-plane",
        "services-below-both",
        "adapters-below-services",
        "ingress-over-the-api",
    ],
)
def test_lower_layers_do_not_import_higher_ones(
    importers: tuple[str, ...], forbidden: tuple[str, ...]
) -> None:
    assert _offences(importers, forbidden) == []


def test_reading_the_settings_loads_no_adapter() -> None:
    """At run time too: a process that reads its settings (the control plane's, an agent's, TLS) has not
    loaded any backend, nor the services."""
    code = (
        "import sys\n"
        "import armonik_core.config, armonik_core.tls, armonik_core.polling_agent.settings\n"
        "from armonik_core.config import ControlPlaneSettings\n"
        "ControlPlaneSettings.from_env({'Components__QueueStorage': 'rabbitmq'})\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('armonik_core.adapters', 'armonik_core.control_plane',"
        " 'armonik_core.gateway', 'armonik_core.services')))\n"
        "print(','.join(m for m in loaded if m not in ('armonik_core.gateway', 'armonik_core.gateway.settings')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
