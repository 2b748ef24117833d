"""`armonik-deploy`: plan, deploy, inspect and destroy a local ArmoniK deployment.

    armonik-deploy deploy  [--parameters FILE] [--versions FILE] [--generated DIR] [--target local|kubernetes|podman]
                           [--charts terraform|helm]   # who installs KEDA and the Percona operator (kubernetes)
    armonik-deploy plan    [--parameters FILE] [--generated DIR] [--json] [--target local|kubernetes]
    armonik-deploy render  DIR [--parameters FILE] [--versions FILE]   # Kubernetes manifests, one per file
    armonik-deploy status  [--generated DIR] [--target local|podman]
    armonik-deploy destroy [--generated DIR] [--target local|kubernetes]
    armonik-deploy images build [--base IMAGE] [--push REGISTRY]   # the six container images
    armonik-deploy images base                                      # a Python base without any registry

`deploy` again after editing the parameters applies the change (new partitions, other replica counts) without
restarting what did not change: the control plane keeps running, and so do its clients' sessions.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Column, Table

from armonik_deploy import local
from armonik_deploy.admin_gui import prepare_admin_gui
from armonik_deploy.images.cli import app as images_app
from armonik_deploy.outputs import write_outputs
from armonik_deploy.parameters import Parameters, ParametersError, load_parameters, load_versions
from armonik_deploy.plan import Plan, PlanError, build_plan
from armonik_deploy.podman import cli as podman_cli
from armonik_deploy.procs import file_lock
from armonik_deploy.supervisor import Layout
from armonik_deploy.tls import CliCredentials

app = typer.Typer(help="Deploy ArmoniK on this machine.", no_args_is_help=True, add_completion=False)
app.add_typer(images_app, name="images")
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

QUICK_DEPLOY = Path(__file__).resolve().parent.parent / "infrastructure" / "quick-deploy" / "localhost"

GENERATED = typer.Option(Path("generated"), "--generated", help="Folder for state, data, logs and outputs.")
PARAMETERS = typer.Option(
    None,
    "--parameters",
    "-p",
    help="parameters.tfvars (HCL) or parameters.tfvars.json; default: the quick-deploy localhost one.",
)
VERSIONS = typer.Option(
    None, "--versions", help="versions.tfvars.json to validate; default: the quick-deploy localhost one."
)
TARGET = typer.Option(
    "local", "--target", help="local: processes on this machine; kubernetes: Terraform on the cluster."
)
CHARTS = typer.Option(
    "terraform",
    "--charts",
    help="--target kubernetes: who installs the KEDA and Percona operator Helm charts: terraform (its "
    "helm_release) or helm (the helm executable, before terraform applies the rest).",
)


def fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", soft_wrap=True, markup=True)
    return typer.Exit(1)


def _escape(text: str) -> str:
    return text.replace("[", "\\[")


def _parameters_file(parameters: Path | None) -> Path:
    if parameters is not None:
        return parameters
    default = QUICK_DEPLOY / "parameters.tfvars"
    if not default.exists():
        raise fail("no --parameters given and no default parameters file at " + str(default))
    return default


def _load(parameters: Path | None, versions: Path | None, generated: Path) -> tuple[Parameters, Plan]:
    file = _parameters_file(parameters)
    try:
        params = load_parameters(file)
        versions_file = versions or (QUICK_DEPLOY / "versions.tfvars.json")
        the_versions = (
            load_versions(versions_file) if versions is not None or versions_file.exists() else None
        )
        plan = build_plan(params, file, generated, versions=the_versions)
    except (ParametersError, PlanError) as exc:
        raise fail(_escape(str(exc))) from None
    for warning in plan.warnings:
        errors.print(f"[yellow]warning:[/yellow] {_escape(warning)}", soft_wrap=True)
    return params, plan


@app.command()
def deploy(
    parameters: Path | None = PARAMETERS,
    versions: Path | None = VERSIONS,
    generated: Path = GENERATED,
    timeout: float | None = typer.Option(None, help="Seconds to wait for the control plane to be healthy."),
    target: str = TARGET,
    charts: str = CHARTS,
) -> None:
    """Start the local deployment, or apply edited parameters to the running one, and write its outputs."""
    if _target(target) == "kubernetes":
        _deploy_kubernetes(parameters, versions, generated, timeout, charts)
        return
    if target == "podman":
        podman_cli.deploy(
            _parameters_file(parameters),
            versions or QUICK_DEPLOY / "versions.tfvars.json",
            generated,
            timeout,
        )
        return
    if charts != "terraform":
        raise fail(f"--charts {charts}: only with --target kubernetes")
    layout = Layout(generated.resolve())
    params, plan = _load(parameters, versions, layout.generated)
    with file_lock(layout.cli_lock):
        with console.status("Taking the Admin GUI's build from its image..."):
            gui_warning = prepare_admin_gui(plan)
        if gui_warning:
            errors.print(f"[yellow]warning:[/yellow] {_escape(gui_warning)}", soft_wrap=True)
        try:
            with console.status("Applying the plan..."):
                pid, started = local.apply_plan(layout, plan, (params.local.host, params.control_plane.port))
            with console.status(f"Waiting for the control plane at {plan.endpoint}..."):
                local.wait_healthy(
                    plan.endpoint,
                    timeout if timeout is not None else plan.health_timeout,
                    layout.log_of("control-plane"),
                    tls=plan.tls,
                )
        except (local.DeployError, TimeoutError) as exc:
            raise fail(_escape(str(exc))) from None
    credentials = plan.tls.cli_credentials() if plan.tls else CliCredentials()
    output, cli = write_outputs(
        layout.generated,
        plan.control_plane_url,
        **credentials,
        **plan.ingress_urls,  # type: ignore[arg-type]
    )
    pairs = ", ".join(f"{name} x{count}" for name, count in plan.pairs().items())
    verb = "started" if started else "updated"
    console.print(
        f"[green]ArmoniK is up[/green] ({verb}, supervisor pid {pid}): "
        f"control plane at [bold]{plan.endpoint}[/bold]",
        soft_wrap=True,
    )
    console.print(f"Partitions (polling agent + worker pairs): {pairs}", soft_wrap=True)
    if plan.ingress_urls.get("admin_app_url"):
        console.print(f"Admin GUI: {plan.ingress_urls['admin_app_url']}", soft_wrap=True)
    console.print(f"Logs: {layout.logs}    Outputs: {output}", soft_wrap=True)
    print(f"export AKCONFIG={cli}")


def _target(target: str) -> str:
    if target not in ("local", "kubernetes", "podman"):
        raise fail(f"--target {target}: expected local, kubernetes or podman")
    return target


def _deploy_kubernetes(
    parameters: Path | None, versions: Path | None, generated: Path, timeout: float | None, charts: str
) -> None:
    from armonik_deploy.kubernetes import apply

    steps = "terraform init and apply"
    if charts == "helm":
        steps = "terraform init, helm install of the charts, terraform apply"
    try:
        with console.status(f"Certificates, {steps}, then waiting for the Deployments..."):
            result = apply.deploy(
                _parameters_file(parameters),
                versions or QUICK_DEPLOY / "versions.tfvars.json",
                generated,
                timeout,
                charts=charts,
            )
    except (ParametersError, apply.DeployError) as exc:
        raise fail(_escape(str(exc))) from None
    for release in result.releases:
        console.print(f"Helm release {_escape(release)}", soft_wrap=True)
    for warning in result.warnings:
        errors.print(f"[yellow]warning:[/yellow] {_escape(warning)}", soft_wrap=True)
    console.print(
        f"[green]ArmoniK is up[/green] on Kubernetes: control plane at [bold]{result.url}[/bold] "
        f"({_escape(result.endpoint.how)})",
        soft_wrap=True,
    )
    if result.endpoint.needs:
        console.print(f"First run: {_escape(result.endpoint.needs)}", soft_wrap=True)
    console.print(f"Outputs: {result.output}", soft_wrap=True)
    print(f"export AKCONFIG={result.cli}")


def _destroy_kubernetes(parameters: Path | None, versions: Path | None, generated: Path) -> None:
    from armonik_deploy.kubernetes import apply

    try:
        with console.status("terraform destroy (and helm uninstall of the charts helm installed)..."):
            uninstalled = apply.destroy(
                _parameters_file(parameters), versions or QUICK_DEPLOY / "versions.tfvars.json", generated
            )
    except (ParametersError, apply.DeployError) as exc:
        raise fail(_escape(str(exc))) from None
    for release in uninstalled:
        console.print(f"Helm release {_escape(release)}", soft_wrap=True)
    console.print("Destroyed the Kubernetes deployment (certificates are kept).", soft_wrap=True)


@app.command("destroy")
def destroy_command(
    generated: Path = GENERATED,
    target: str = TARGET,
    parameters: Path | None = PARAMETERS,
    versions: Path | None = VERSIONS,
    purge: bool = typer.Option(False, "--purge", help="--target podman: remove the data volumes too."),
) -> None:
    """Stop every process of the local deployment (data is kept under the generated folder); with
    `--target kubernetes`, `terraform destroy` of the Kubernetes deployment."""
    if _target(target) == "kubernetes":
        _destroy_kubernetes(parameters, versions, generated)
        return
    if target == "podman":
        podman_cli.destroy(_parameters_file(parameters), generated, purge)
        return
    layout = Layout(generated.resolve())
    with file_lock(layout.cli_lock):
        stopped = local.destroy(layout)
    console.print(f"Stopped: {', '.join(stopped) if stopped else 'nothing was running'}", soft_wrap=True)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (
        f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    )


@app.command()
def status(
    generated: Path = GENERATED,
    target: str = TARGET,
    parameters: Path | None = PARAMETERS,
) -> None:
    """Show the processes of the local deployment (`--target podman`: its containers)."""
    if _target(target) == "podman":
        podman_cli.status(_parameters_file(parameters), generated)
        return
    layout = Layout(generated.resolve())
    pid, rows = local.status(layout)
    if pid is None and not rows:
        console.print("Nothing is running (no supervisor for " + str(layout.generated) + ").")
        raise typer.Exit(0)
    table = Table("process", "pid", "status", "restarts", "uptime", "last exit", title=None)
    for row in rows:
        style = "green" if row.status == "running" else "yellow"
        table.add_row(
            row.name,
            str(row.pid or "-"),
            f"[{style}]{row.status}[/{style}]",
            str(row.restarts),
            _duration(row.uptime),
            "-" if row.last_exit is None else str(row.last_exit),
        )
    console.print(f"Supervisor: {'pid ' + str(pid) if pid else '[red]not running[/red]'}")
    console.print(table)


@app.command()
def plan(
    parameters: Path | None = PARAMETERS,
    versions: Path | None = VERSIONS,
    generated: Path = GENERATED,
    as_json: bool = typer.Option(
        False, "--json", help="Print the whole plan (commands and environments) as JSON."
    ),
    target: str = typer.Option(
        "local",
        "--target",
        help="local: the processes; kubernetes: the objects `render` would write and the Helm charts.",
    ),
) -> None:
    """Show what `deploy` would run for these parameters, without starting anything."""
    if target == "kubernetes":
        _plan_kubernetes(parameters, versions)
        return
    if target != "local":
        raise fail(f"--target {target}: expected local or kubernetes")
    _, the_plan = _load(parameters, versions, generated.resolve())
    if as_json:
        print(json.dumps(json.loads(the_plan.to_json()), indent=2))
        return
    generated_dir = Path(the_plan.generated)
    python = next((s.args[0] for s in the_plan.processes if s.role == "control-plane"), "")
    table = Table("partition", "command", "sockets / port")
    table.columns.insert(0, Column("process", no_wrap=True))
    for spec in the_plan.processes:
        where = ""
        if spec.role in ("polling-agent", "worker"):
            folder = Path(spec.env["ComputePlane__AgentChannel__Address"]).parent
            where = (
                str(folder.relative_to(generated_dir))
                if folder.is_relative_to(generated_dir)
                else str(folder)
            )
        elif spec.role == "control-plane":
            where = f"{spec.env['ControlPlane__Host']}:{spec.env['ControlPlane__Port']}"
        elif spec.role == "metrics-exporter":
            where = f"port {spec.env['MetricsExporter__Port']}"
        elif spec.role == "ingress":
            where = f"{spec.env['Ingress__Host']}:{spec.env['Ingress__Port']}"
        command = " ".join("{python}" if arg == python else arg for arg in spec.args)
        table.add_row(spec.name, spec.partition or "-", _escape(command), where)
    console.print(table)
    partitions = Table("partition", "pairs", "PodReserved", "PodMax", "Priority", "Preemption %", "parents")
    for p in the_plan.partitions:
        partitions.add_row(
            p["PartitionId"],
            str(the_plan.pairs()[p["PartitionId"]]),
            str(p["PodReserved"]),
            str(p["PodMax"]),
            str(p["Priority"]),
            str(p["PreemptionPercentage"]),
            ", ".join(p["ParentPartitionIds"]) or "-",
        )
    console.print(partitions)
    console.print(f"{{python}}: {python}", soft_wrap=True)
    console.print(f"Generated: {the_plan.generated}    Data: {the_plan.data_directory}", soft_wrap=True)
    console.print(
        f"Endpoint: {the_plan.endpoint}    Logs: {generated_dir / 'logs'}/<process>.log", soft_wrap=True
    )


def _plan_kubernetes(parameters: Path | None, versions: Path | None) -> None:
    from armonik_deploy.kubernetes.commands import RenderError, plan_table

    try:
        planned = plan_table(_parameters_file(parameters), versions or QUICK_DEPLOY / "versions.tfvars.json")
    except (ParametersError, RenderError) as exc:
        raise fail(_escape(str(exc))) from None
    for warning in planned.warnings:
        errors.print(f"[yellow]warning:[/yellow] {_escape(warning)}", soft_wrap=True)
    console.print(planned.objects_table)
    console.print(planned.charts_table)


@app.command("render")
def render_command(
    folder: Path = typer.Argument(..., help="Folder for the manifests (one YAML file per object)."),
    parameters: Path | None = PARAMETERS,
    versions: Path | None = VERSIONS,
) -> None:
    """Write the Kubernetes manifests of the deployment into FOLDER (`kubectl apply -f FOLDER` applies them)."""
    from armonik_deploy.kubernetes.commands import RenderError, load_and_render_folder

    try:
        rendered, paths = load_and_render_folder(
            _parameters_file(parameters), versions or QUICK_DEPLOY / "versions.tfvars.json", folder
        )
    except (ParametersError, RenderError) as exc:
        raise fail(_escape(str(exc))) from None
    for warning in rendered.warnings:
        errors.print(f"[yellow]warning:[/yellow] {_escape(warning)}", soft_wrap=True)
    console.print(f"{len(paths)} manifests written to {folder}", soft_wrap=True)
