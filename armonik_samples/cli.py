"""The command line and the session set-up every sample client shares.

`client_command` turns a sample's `command`, which takes the sample's own options and returns what to run on
the connected client, into the typer command users call: it adds the connection options (`--endpoint`,
`--ca`, `--cert`, `--key`, with upstream's `GrpcClient__*` variables) and runs the body through
`common.run_client`, which connects and turns a failure into an exit status. typer reads a command's options
from its signature, so the command's signature is the sample's own parameters with the shared ones added;
typer has no other way to share a block of options between commands without a group of sub-commands.

`submit_task` and `fork_join` are the two shapes of submission the samples repeat: a client's first task,
fed with a payload and producing named results, and a worker's split into subtasks plus an aggregation task
that produces the task's own results.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import typer
from armonik.common import TaskDefinition

from armonik_samples import common

#: What a client does once connected.
Body = Callable[[common.Client], None]

_CONNECTION = [
    inspect.Parameter(
        "endpoint",
        inspect.Parameter.KEYWORD_ONLY,
        default=common.DEFAULT_ENDPOINT,
        annotation=common.EndpointOption,
    ),
    inspect.Parameter("ca", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=common.CaOption),
    inspect.Parameter("cert", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=common.CertOption),
    inspect.Parameter("key", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=common.KeyOption),
]


def client_command(build: Callable[..., Body]) -> Callable[..., None]:
    """A typer command running `build(**own options)` on a client connected as the shared options say.

    The command's signature is `build`'s (evaluated annotations, as typer reads them) followed by the
    connection options (typer passes every parameter by name)."""
    own = list(inspect.signature(build, eval_str=True).parameters.values())
    names = {parameter.name for parameter in own}
    clash = names & {parameter.name for parameter in _CONNECTION}
    if clash:
        raise TypeError(f"{build.__qualname__}: {sorted(clash)} are options every client has already")

    @functools.wraps(build)
    def command(*, endpoint: str, ca: str | None, cert: str | None, key: str | None, **options: Any) -> None:
        common.run_client(common.Endpoint(endpoint, ca, cert, key), build(**options))

    signature = inspect.Signature([*own, *_CONNECTION], return_annotation=None)
    command.__signature__ = signature  # type: ignore[attr-defined]
    command.__annotations__ = {
        parameter.name: parameter.annotation for parameter in signature.parameters.values()
    }
    del command.__wrapped__  # typer must read the signature above, not `build`'s
    return command


def env_option(prefix: str) -> Callable[..., Any]:
    """The typer options of a sample whose settings are upstream's `{prefix}{Name}` variables:
    `option(name, help, *flags, **typer_arguments)`."""

    def option(name: str, help_text: str | None, *flags: str, **kwargs: Any) -> Any:
        return typer.Option(*flags, envvar=prefix + name, help=help_text, **kwargs)

    return option


def submit_task(client: common.Client, session_id: str, payload: bytes, outputs: list[str]) -> list[str]:
    """Client side: one task fed with `payload`, producing results named `outputs`; their ids, in order."""
    created = client.results.create_results_metadata(outputs, session_id)
    result_ids = [created[name].result_id for name in outputs]
    payload_id = client.results.create_results({"payload": payload}, session_id)["payload"].result_id
    client.tasks.submit_tasks(session_id, [TaskDefinition(payload_id, expected_output_ids=result_ids)])
    return result_ids


def fork_join(handler: common.Handler, parts: Mapping[str, bytes], aggregation: bytes) -> None:
    """Worker side: a subtask per part (result name -> its payload), each producing that result, and an
    aggregation task fed with `aggregation` that depends on them all and produces the task's own results
    (so the task hands its outputs over to it)."""
    names = list(parts)
    results = handler.create_results_metadata(names)
    payloads = handler.create_results(
        {**{f"payload {name}": parts[name] for name in names}, "payload aggregation": aggregation},
        batch_size=100,
    )
    part_ids = [results[name].result_id for name in names]
    handler.submit_tasks(
        [
            *(
                TaskDefinition(payloads[f"payload {name}"].result_id, expected_output_ids=[part_id])
                for name, part_id in zip(names, part_ids, strict=True)
            ),
            TaskDefinition(
                payloads["payload aggregation"].result_id,
                expected_output_ids=list(handler.expected_results),
                data_dependencies=part_ids,
            ),
        ]
    )
