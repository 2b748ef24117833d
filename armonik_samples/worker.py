"""The generic worker that runs every sample: `python -m armonik_samples.worker`.

Built on the official SDK (`armonik.worker.armonik_worker`): it serves the Worker gRPC service on
`ComputePlane__WorkerChannel__Address` and calls the agent on `ComputePlane__AgentChannel__Address`
(Unix sockets unless `ComputePlane__{Worker,Agent}Channel__SocketType` is `Tcp`; names and values are read
case-insensitively, as .NET configuration reads them).

Each task is dispatched on its task option `sample` (`armonik_samples.SAMPLE_OPTION`, which every sample's
client sets in its session's default task options) to that sample's `process` function. A task without the
option, or naming an unknown sample, ends with an error output naming it. An exception raised by a sample
becomes an error output too, except `WorkerCrash` (raised on purpose by the test behaviours), which the SDK
turns into a failed Process call, as a worker crash looks to the agent.

SIGTERM ends the worker at once (`exit_on_sigterm`): as a container's PID 1 a process without a handler of its
own ignores it, and `podman stop` / a pod's termination would wait out their grace period and kill it. A task
the worker was running is given back by its agent, which is stopped with it, and retried elsewhere.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

from armonik.common import Output
from armonik.worker import armonik_worker

from armonik_samples import SAMPLE_OPTION, SAMPLES
from armonik_samples.common import Handler, WorkerCrash, task_options_of

log = logging.getLogger("armonik_samples.worker")

Processor = Callable[[Handler], Any]
_processors: dict[str, Processor] = {}


def processor_of(sample: str) -> Processor | None:
    """The `process` function of a sample (its module is imported on first use)."""
    if sample not in SAMPLES:
        return None
    if sample not in _processors:
        module = importlib.import_module(f"armonik_samples.{sample}")
        _processors[sample] = module.process
    return _processors[sample]


def dispatch(handler: Handler) -> Any:
    """Run the task with the sample its options name."""
    sample = task_options_of(handler).get(SAMPLE_OPTION, "")
    if not sample:
        return Output(
            f"task {handler.task_id} has no {SAMPLE_OPTION!r} task option: "
            f"set it to one of {', '.join(SAMPLES)} to choose what runs it"
        )
    process = processor_of(sample)
    if process is None:
        return Output(
            f"unknown sample {sample!r} (task option {SAMPLE_OPTION!r}); known: {', '.join(SAMPLES)}"
        )
    try:
        return process(handler)
    except WorkerCrash:
        raise
    except Exception as exc:
        log.warning("task %s of sample %s failed: %s", handler.task_id, sample, exc, exc_info=True)
        return Output(f"sample {sample} failed: {type(exc).__name__}: {exc}")


# -- endpoints -----------------------------------------------------------------------------------------------
def _setting(environ: Mapping[str, str], key: str, default: str) -> str:
    wanted = key.lower()
    for name, value in environ.items():
        if name.lower() == wanted:
            return value
    return default


def _strip_scheme(address: str) -> str:
    for scheme in ("unix://", "unix:", "http://", "https://", "dns:///"):
        if address.startswith(scheme):
            return address[len(scheme) :]
    return address


def channel_endpoints(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(address the worker listens on, URI of the agent) from the `ComputePlane__*` settings."""
    env = os.environ if environ is None else environ

    def channel(name: str, default_path: str) -> tuple[bool, str]:
        kind = _setting(env, f"ComputePlane__{name}__SocketType", "UnixDomainSocket").strip().lower()
        if kind not in ("unixdomainsocket", "tcp"):
            raise ValueError(f"ComputePlane__{name}__SocketType={kind!r}: expected UnixDomainSocket or Tcp")
        return kind == "tcp", _strip_scheme(_setting(env, f"ComputePlane__{name}__Address", default_path))

    worker_tcp, worker_address = channel("WorkerChannel", "/cache/armonik_worker.sock")
    agent_tcp, agent_address = channel("AgentChannel", "/cache/armonik_agent.sock")
    if worker_tcp:
        listen = f"0.0.0.0{worker_address}" if worker_address.startswith(":") else worker_address
    else:
        listen = f"unix://{worker_address}" if worker_address.startswith("/") else f"unix:{worker_address}"
    if agent_tcp:
        agent = (
            f"http://localhost{agent_address}" if agent_address.startswith(":") else f"http://{agent_address}"
        )
    else:
        agent = f"unix://{agent_address}" if agent_address.startswith("/") else f"unix:{agent_address}"
    return listen, agent


def exit_on_sigterm() -> None:
    """SIGTERM ends the process at once (`os._exit` once the logs are flushed): a task still running in one of
    the gRPC server's threads (one its agent gave up, or cancelled) would otherwise hold the interpreter's exit
    until it returns, and its agent gives the task back anyway."""

    def stop(signum: int, _frame: object) -> None:
        log.info("samples worker: signal %d, exiting", signum)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m armonik_samples.worker",
        description="ArmoniK worker running every sample of armonik_samples, chosen by the task option "
        f"{SAMPLE_OPTION!r}. Endpoints come from ComputePlane__WorkerChannel__* / ComputePlane__AgentChannel__*.",
    )
    parser.add_argument("--worker-endpoint", help="listen here instead (unix:///path or host:port)")
    parser.add_argument(
        "--agent-endpoint", help="call the agent here instead (unix:///path or http://host:port)"
    )
    args = parser.parse_args(argv)
    listen, agent = channel_endpoints()
    listen = args.worker_endpoint or listen
    agent = args.agent_endpoint or agent
    worker = armonik_worker(worker_endpoint=listen, agent_endpoint=agent)(dispatch)
    exit_on_sigterm()
    worker.logger.info("samples worker: listening on {listen}, agent at {agent}", listen=listen, agent=agent)
    worker.run()


if __name__ == "__main__":
    main()
