"""`armonik-graph`: a session's task graph from the command line (typer + rich).

    armonik-graph [CONNECTION] show SESSION               counts per status and per level
    armonik-graph blocking RESULT            what a result waits for, and what dooms it
    armonik-graph critical-path SESSION      the chain that set the makespan; time in queue vs running
    armonik-graph export SESSION -f FORMAT   json, graphml, dot or svg (of a session or, with --result, of the
                                             subgraph behind one result)
    armonik-graph watch SESSION              a live view of progress per level and the current frontier

The cluster is found as armonik-cli finds it (`--endpoint`, `AK_ENDPOINT`, `--config` / `AKCONFIG`; the
options go before the command). Every
command takes `--json` where it prints a report, for scripts. `blocking` needs only the result id: the session
is looked up with Results.GetResult.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
from armonik.protogen.client.results_service_pb2_grpc import ResultsStub
from armonik.protogen.common.results_common_pb2 import GetResultRequest
from rich.console import Console, Group
from rich.live import Live
from rich.table import Column, Table

from armonik_graph.analysis import BlockingReport, ancestors, blocking, summary
from armonik_graph.connection import ConnectionError_, resolve
from armonik_graph.critical import critical_path
from armonik_graph.export import FORMATS, export
from armonik_graph.model import SessionGraph
from armonik_graph.source import ApiSource, LiveGraph, fill_errors, rebuild
from armonik_graph.views import frontier, level_table, status_table

app = typer.Typer(
    help="The task graph of an ArmoniK session: structure, blockers, critical path.", no_args_is_help=True
)
console = Console()
#: Ids are printed whole (folded over lines in a narrow terminal), since they are what one copies.
ID = Column("task", overflow="fold", min_width=12)
err = Console(stderr=True)

Endpoint = Annotated[
    str | None,
    typer.Option("--endpoint", "-e", help="Cluster endpoint (host:port).", envvar="AK_ENDPOINT"),
]
Config = Annotated[
    str | None, typer.Option("--config", "-c", help="armonik-cli configuration file.", envvar="AKCONFIG")
]
CA = Annotated[str | None, typer.Option("--certificate-authority", help="CA file (TLS).")]
Cert = Annotated[str | None, typer.Option("--client-certificate", help="Client certificate (mTLS).")]
Key = Annotated[str | None, typer.Option("--client-key", help="Client key (mTLS).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]


@app.callback()
def connect(
    ctx: typer.Context,
    endpoint: Endpoint = None,
    config: Config = None,
    certificate_authority: CA = None,
    client_certificate: Cert = None,
    client_key: Key = None,
) -> None:
    """Connection options come before the command: `armonik-graph -e HOST:PORT show SESSION`."""
    ctx.obj = (endpoint, config, certificate_authority, client_certificate, client_key)


@contextmanager
def _source(ctx: typer.Context) -> Iterator[ApiSource]:
    try:
        connection = resolve(*(ctx.obj or ()))
    except ConnectionError_ as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    channel = connection.channel()
    try:
        yield ApiSource(channel)
    except grpc.RpcError as exc:
        err.print(f"[red]{connection.endpoint}: {exc.code().name}: {exc.details()}[/red]")
        raise typer.Exit(1) from exc
    finally:
        channel.close()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _rebuilt(source: ApiSource, session_id: str) -> SessionGraph:
    graph = rebuild(source, session_id)
    if not len(graph):
        err.print(f"[red]session {session_id}: no task and no result (unknown session?)[/red]")
        raise typer.Exit(1)
    return graph


@app.command()
def show(
    ctx: typer.Context,
    session: str,
    as_json: AsJson = False,
) -> None:
    """Counts of a session's tasks and results per status, and per level of the graph."""
    with _source(ctx) as source:
        view = summary(_rebuilt(source, session))
    if as_json:
        _print_json(view.to_dict())
        return
    console.print(status_table(view))
    console.print(level_table(view))


@app.command("blocking")
def blocking_cmd(
    ctx: typer.Context,
    result: str,
    stuck_after: Annotated[
        float, typer.Option(help="Seconds in one status after which a task counts as stuck.")
    ] = 60.0,
    as_json: AsJson = False,
) -> None:
    """Why a result is not ready: the unfinished tasks it needs, the frontier, what is stuck or failed."""
    with _source(ctx) as source:
        try:
            raw = ResultsStub(source.channel).GetResult(GetResultRequest(result_id=result)).result
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                err.print(f"[red]result {result} not found[/red]")
                raise typer.Exit(1) from exc
            raise
        graph = _rebuilt(source, raw.session_id)
        report = blocking(graph, result, stuck_after=stuck_after)
        _fill_doom_errors(graph, source, report)
    if as_json:
        _print_json(report.to_dict())
        return
    _print_blocking(report)


def _fill_doom_errors(graph: SessionGraph, source: ApiSource, report: BlockingReport) -> None:
    """Failed tasks learnt without their error output: ask for it, one task at a time (they are few)."""
    nodes = {t.task_id: graph.index(t.task_id) for t in report.doomed_by if t.error is None}
    fill_errors(graph, source, [n for n in nodes.values() if n is not None])
    for state in report.doomed_by:
        node = nodes.get(state.task_id)
        if node is not None and node in graph.errors:
            state.error = graph.errors[node]


def _print_blocking(report: BlockingReport) -> None:
    if report.ready:
        console.print(f"result {report.result_id} is [green]ready[/green] ({report.status})")
        return
    console.print(
        f"result {report.result_id}: {report.status}, made by {report.producer or 'no task (uploaded by the client)'}"
    )
    table = Table(
        ID, "status", "for (s)", Column("missing inputs / error", overflow="fold"), title="what it waits for"
    )
    for group, style in (
        (report.running, "blue"),
        (report.queued, "yellow"),
        (report.waiting, ""),
        (report.paused, "magenta"),
    ):
        for t in group:
            seconds = f"{t.for_seconds:.1f}" if t.for_seconds is not None else "?"
            table.add_row(
                f"[{style}]{t.task_id}[/{style}]" if style else t.task_id,
                t.status,
                seconds,
                ", ".join(t.missing_inputs),
            )
    for t in report.doomed_by:
        table.add_row(f"[red]{t.task_id}[/red]", t.status, "", t.error or "")
    console.print(table)
    if report.awaiting_upload:
        console.print("awaiting upload by the client: " + ", ".join(report.awaiting_upload))
    if report.stuck:
        console.print(
            "[bold]stuck[/bold]: "
            + ", ".join(f"{t.task_id} ({t.status} for {t.for_seconds:.0f}s)" for t in report.stuck)
        )
    if report.doomed_by:
        console.print(
            "[red]doomed[/red]: it cannot be ready unless the failed tasks above are submitted again"
        )
    est = report.estimate
    if est.get("remaining_task_seconds") is not None:
        console.print(
            f"remaining: {est['unfinished_tasks']} tasks, ~{est['remaining_task_seconds']:.1f} task-seconds "
            f"(mean run {est['mean_run_seconds']:.3f}s), eta ~{est['eta_seconds']:.1f}s at {est['running_now']} running"
        )


@app.command("critical-path")
def critical_path_cmd(
    ctx: typer.Context,
    session: str,
    result: Annotated[
        str | None, typer.Option(help="Path to this result instead of to the last task.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The chain of tasks that set the session's makespan, and the time in queue versus running."""
    with _source(ctx) as source:
        path = critical_path(_rebuilt(source, session), result)
    if as_json:
        _print_json(path.to_dict())
        return
    table = Table(ID, "status", "waiting (s)", "queue (s)", "running (s)", title="critical path")
    for s in path.steps:
        table.add_row(
            s.task_id,
            s.status,
            f"{s.waiting_seconds:.3f}",
            f"{s.queue_seconds:.3f}",
            f"{s.running_seconds:.3f}",
        )
    console.print(table)
    console.print(
        f"span {path.span_seconds:.3f}s: waiting {path.waiting_seconds:.3f}s, queue {path.queue_seconds:.3f}s, "
        f"running {path.running_seconds:.3f}s; all {path.finished_tasks} finished tasks: queue "
        f"{path.total_queue_seconds:.3f}s, running {path.total_running_seconds:.3f}s"
    )


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    session: str,
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of {', '.join(FORMATS)}.")] = "json",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    result: Annotated[str | None, typer.Option(help="Only the subgraph behind this result.")] = None,
) -> None:
    """Write the session's graph (or the subgraph behind --result) as JSON, GraphML, DOT or SVG."""
    if fmt not in FORMATS:
        err.print(f"[red]unknown format {fmt!r}: choose one of {', '.join(FORMATS)}[/red]")
        raise typer.Exit(2)
    with _source(ctx) as source:
        graph = _rebuilt(source, session)
    try:
        nodes = ancestors(graph, result) if result else None
    except KeyError as exc:
        err.print(f"[red]{exc.args[0]}[/red]")
        raise typer.Exit(1) from exc
    if output is None:
        export(graph, fmt, sys.stdout, nodes)
        return
    with output.open("w") as out:
        export(graph, fmt, out, nodes)
    err.print(f"wrote {output}")


@app.command()
def watch(
    ctx: typer.Context,
    session: str,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
    until_done: Annotated[bool, typer.Option(help="Exit once no task is left to run.")] = False,
    timeout: Annotated[float | None, typer.Option(help="Exit after this many seconds.")] = None,
) -> None:
    """A live view of a session: progress per level and the tasks runnable now, following its events."""
    with _source(ctx) as source:
        live = LiveGraph(source, session).start()
        try:
            live.wait_ready(60)
            deadline = time.monotonic() + timeout if timeout else None
            with Live(console=console, refresh_per_second=4, transient=False) as screen:
                while True:
                    with live.lock:
                        view = summary(live.graph)
                        runnable = frontier(live.graph)
                    screen.update(Group(level_table(view), runnable.table()))
                    if until_done and view.tasks and runnable.done:
                        break
                    if deadline is not None and time.monotonic() > deadline:
                        break
                    with live.changed:
                        live.changed.wait(interval)
        except KeyboardInterrupt:
            pass
        finally:
            live.stop()
        if live.error is not None:
            raise live.error


def main() -> None:
    app()


__all__ = ["app", "main"]
