"""`armonik-graph-console`: the graph console as a process of its own, served by uvicorn.

The cluster is found as the CLI finds it (`--endpoint` / `AK_ENDPOINT`, `--config` / `AKCONFIG`). The console
reads and acts (cancel, pause, ... a session) with its own credentials for whoever reaches its port, so it
listens on 127.0.0.1 unless told otherwise (`GraphConsole__Host`, `GraphConsole__Port` or the options).
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from armonik_graph.connection import ConnectionError_, resolve
from armonik_graph.console.app import create_app
from armonik_graph.source import ApiSource


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="armonik-graph-console", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("GraphConsole__Host", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GraphConsole__Port", "8088")))
    parser.add_argument("--endpoint", "-e", default=None)
    parser.add_argument("--config", "-c", default=None)
    args = parser.parse_args(argv)
    try:
        connection = resolve(args.endpoint, args.config)
    except ConnectionError_ as exc:
        parser.error(str(exc))
    channel = connection.channel()
    try:
        uvicorn.run(create_app(ApiSource(channel)), host=args.host, port=args.port, log_level="warning")
    finally:
        channel.close()


if __name__ == "__main__":
    main()
