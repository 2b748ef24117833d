"""A session's task and result graph, rebuilt from the official ArmoniK API and kept live from its events.

`SessionGraph` (model) holds the graph; `ApiSource`, `rebuild` and `LiveGraph` (source) fill it from a cluster;
`summary`, `blocking` (analysis) and `critical_path` (critical) read it; `export` writes it out.
"""

from armonik_graph.analysis import (
    BlockingReport,
    Summary,
    ancestors,
    blocking,
    levels_of,
    summary,
    task_levels,
)
from armonik_graph.critical import CriticalPath, Throughput, critical_path, throughput
from armonik_graph.export import FORMATS, export
from armonik_graph.model import Edge, Kind, SessionGraph
from armonik_graph.source import ApiSource, LiveGraph, fill_errors, rebuild

__all__ = [
    "ApiSource",
    "BlockingReport",
    "CriticalPath",
    "Edge",
    "FORMATS",
    "Kind",
    "LiveGraph",
    "SessionGraph",
    "Summary",
    "ancestors",
    "blocking",
    "critical_path",
    "export",
    "fill_errors",
    "levels_of",
    "rebuild",
    "summary",
    "task_levels",
    "throughput",
    "Throughput",
]
