"""A real S3 server for the tests: moto's S3 implementation, run as a separate process.

Why a separate process: the adapter under test must talk HTTP to something it does not share memory, threads
or an event loop with, and a fault test must be able to kill the server as a crash would. moto is an S3 server
written in Python (installed with the test dependencies), so no binary or container is needed.

Run as a program (`python -m tests.s3_server`), this module is that process: it serves on 127.0.0.1 on a port
the kernel picks, prints the port on its first line of output, and exits when its standard input reaches its
end. The parent holds the other end of that pipe, so the server also goes away when the test run is killed
(SIGKILL gives no chance to run clean-up code, but it does close the pipe).

`shared_s3_server()` gives every test of a session the same server, started on first use and stopped when
the interpreter exits: starting moto costs about a second, which would otherwise be paid by every test.
"""

from __future__ import annotations

import atexit
import functools
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
#: Credentials moto accepts until authentication is switched on (see `enable_authentication`).
ACCESS_KEY = "armonik-test"
SECRET_KEY = "armonik-test-secret"


@dataclass
class S3Server:
    """One moto S3 server process; `start()` blocks until it answers HTTP."""

    env: dict[str, str] = field(default_factory=dict)
    #: Serve HTTPS with this certificate and key (PEM files), which `ca_file` must have issued.
    tls: tuple[Path, Path] | None = None
    ca_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://{HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> S3Server:
        tls = [str(path) for path in self.tls] if self.tls else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.s3_server", *tls],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **self.env},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the port, once the server listens
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"moto S3 server did not start (said {line!r})")
        self.port = int(line)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        context = ssl.create_default_context(cafile=self.ca_file) if self.tls else None
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2, context=context):
                    return
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(
                        f"moto S3 server on port {self.port} not ready after {timeout}s"
                    ) from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-request, as in a crash (its state, in memory, is lost)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def enable_authentication(self) -> None:
        """From now on the server checks signatures and IAM policies (moto's switch, off by default): keys
        must be ones created through its IAM API, and a user may only do what its policies allow."""
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},  # not a form, whose body the server would parse away
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


@functools.cache
def shared_s3_server() -> S3Server:
    """The session's server: started on the first call, stopped when the test process exits."""
    server = S3Server().start()
    atexit.register(server.stop)
    return server


def _serve(tls: list[str]) -> None:
    """The server process (see the module docstring); `tls` is [certificate, key] for HTTPS, or empty."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    context = None
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls[0], tls[1])
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(HOST, 0, app, threaded=True, request_handler=MotoRequestHandler, ssl_context=context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sys.stdin.buffer.read()  # returns when the parent closes the pipe or dies
    os._exit(0)


if __name__ == "__main__":
    _serve(sys.argv[1:])
