"""Where the compute gateway listens and the secret its tokens derive from, from `ComputeGateway__*` variables.

The gateway is for polling agents only, so it has a listener of its own, never the clients' port:

- `ComputeGateway__Socket`: a unix socket path (mode 0600: only the deployment's user reaches it); the
  default, `<Embedded__DataDirectory>/compute-gateway.sock`, when no port is given;
- `ComputeGateway__Port` (and `ComputeGateway__Host`, default 127.0.0.1): a TCP port instead, for agents in
  other pods (Kubernetes), served with TLS when the control plane's port is (`ControlPlane__Tls__*`).

The deployment secret (see `armonik_core.gateway.auth`): `ComputeGateway__Secret` (its text) or
`ComputeGateway__SecretFile` (a file holding it). With neither, the control plane keeps one in
`<Embedded__DataDirectory>/compute-gateway.secret` (created once, mode 0600), so that a control plane run on
its own still has a stable secret across restarts; a deployment gives it explicitly instead, with each
partition's agent credential to the agents.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from armonik_core.settings.environment import ConfigurationError, Environment

SOCKET = "ComputeGateway__Socket"
HOST = "ComputeGateway__Host"
PORT = "ComputeGateway__Port"
SECRET = "ComputeGateway__Secret"
SECRET_FILE = "ComputeGateway__SecretFile"
DEFAULT_SOCKET_NAME = "compute-gateway.sock"
DEFAULT_SECRET_NAME = "compute-gateway.secret"
#: A unix socket path longer than this does not fit in `sockaddr_un` (108 bytes with the terminating NUL).
MAX_SOCKET_PATH = 107


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """The gateway's listener (a unix socket, or a TCP host and port) and where its secret comes from."""

    socket: Path | None
    host: str = "127.0.0.1"
    port: int | None = None
    secret: bytes | None = field(default=None, repr=False)  # never in a log line
    secret_file: Path | None = None

    @property
    def address(self) -> str:
        """The listener in gRPC's naming syntax."""
        return f"unix:{self.socket}" if self.socket is not None else f"{self.host}:{self.port}"

    @staticmethod
    def from_env(env: Environment, data_directory: Path) -> GatewaySettings:
        raw_socket = env.get(SOCKET, "").strip()
        raw_port = env.get(PORT, "").strip()
        if raw_socket and raw_port:
            raise ConfigurationError(f"{SOCKET} and {PORT} are both set: the gateway listens on one of them")
        port = None
        if raw_port:
            port = env.get_int(PORT, 0)
            if not 0 <= port <= 65535:
                raise ConfigurationError(f"{PORT}={raw_port!r}: expected a port number")
        socket = None
        if port is None:
            socket = (
                Path(raw_socket).absolute() if raw_socket else data_directory.absolute() / DEFAULT_SOCKET_NAME
            )
            if len(str(socket)) > MAX_SOCKET_PATH:
                raise ConfigurationError(
                    f"{SOCKET}={str(socket)!r}: a unix socket path has at most {MAX_SOCKET_PATH} characters"
                )
        text = env.get(SECRET, "").strip()
        raw_file = env.get(SECRET_FILE, "").strip()
        if text and raw_file:
            raise ConfigurationError(f"{SECRET} and {SECRET_FILE} are both set: give the secret once")
        secret_file = Path(raw_file) if raw_file else None
        secret = text.encode() if text else None
        if secret_file is not None:
            secret = _read_secret(secret_file)
        elif secret is None:
            secret_file = data_directory / DEFAULT_SECRET_NAME
        return GatewaySettings(socket, env.get(HOST, "127.0.0.1").strip(), port, secret, secret_file)

    def load_secret(self) -> bytes:
        """The secret; the default file is created (0600) the first time."""
        if self.secret is not None:
            return self.secret
        assert self.secret_file is not None
        path = self.secret_file
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return _read_secret(path)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    try:
        secret = path.read_text().strip().encode()
    except OSError as exc:
        raise ConfigurationError(
            f"{SECRET_FILE}={str(path)!r}: cannot read the file ({exc.strerror or exc})"
        ) from None
    if not secret:
        raise ConfigurationError(f"{SECRET_FILE}={str(path)!r}: the file is empty")
    return secret
