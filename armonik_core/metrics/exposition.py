"""Reading the Prometheus text format back: what a scraper (a test, a local autoscaler) needs of it.

Only the subset the exporter writes is accepted, strictly: `# HELP` and `# TYPE` lines naming the metric
that follows, and one unlabelled sample per metric. Anything else raises ValueError, so a test reading the
exporter's output also checks its format.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_text(text: str) -> dict[str, float]:
    """Metric name -> value."""
    values: dict[str, float] = {}
    described: dict[str, set[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not _NAME.match(name):
                    raise ValueError(f"line {number}: bad metric name {name!r}")
                if name in values:
                    raise ValueError(f"line {number}: {parts[1]} of {name} after its sample")
                if parts[1] in described.setdefault(name, set()):
                    raise ValueError(f"line {number}: second {parts[1]} for {name}")
                if parts[1] == "TYPE" and (len(parts) != 4 or parts[3] not in _TYPES):
                    raise ValueError(f"line {number}: bad TYPE line {line!r}")
                described[name].add(parts[1])
            continue
        name, sep, raw = line.partition(" ")
        if not sep or not _NAME.match(name):
            raise ValueError(f"line {number}: bad sample line {line!r}")
        if name in values:
            raise ValueError(f"line {number}: duplicate sample of {name}")
        try:
            values[name] = float(raw.split(" ")[0])
        except ValueError:
            raise ValueError(f"line {number}: bad value in {line!r}") from None
    return values
