"""`armonik-deploy`: deploy, inspect and destroy an ArmoniK deployment."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from armonik_deploy.local import LocalLayout, deploy_control_plane, destroy, running
from armonik_deploy.outputs import write_outputs

app = typer.Typer(help="Deploy ArmoniK on this machine.", no_args_is_help=True)
console = Console()

GENERATED = typer.Option(Path("generated"), "--generated", help="Folder for state, logs and outputs.")


@app.command()
def deploy(
    generated: Path = GENERATED,
    host: str = typer.Option("127.0.0.1", help="Address the control plane listens on."),
    port: int = typer.Option(5001, help="Port of the control plane."),
) -> None:
    """Start the local deployment (control plane on embedded storage) and write its outputs."""
    layout = LocalLayout(generated.resolve())
    with console.status("Starting the control plane..."):
        endpoint = deploy_control_plane(layout, host, port)
    output, cli = write_outputs(layout.generated, f"http://{endpoint}")
    console.print(f"[green]ArmoniK is up[/green]: control plane at [bold]{endpoint}[/bold]")
    console.print(f"Outputs: {output}")
    console.print(f"export AKCONFIG={cli}")


@app.command("destroy")
def destroy_command(generated: Path = GENERATED) -> None:
    """Stop every process of the local deployment (data is kept under the generated folder)."""
    stopped = destroy(LocalLayout(generated.resolve()))
    console.print(f"Stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command()
def status(generated: Path = GENERATED) -> None:
    """Show the processes of the local deployment."""
    table = Table("process", "pid")
    for name, pid in running(LocalLayout(generated.resolve())).items():
        table.add_row(name, str(pid))
    console.print(table)
