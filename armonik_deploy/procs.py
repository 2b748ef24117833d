"""Process helpers: liveness, identity (to survive pid reuse), signalling a process group, file locks."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] == "Z"


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], start time is [19])."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def identity(pid: int) -> str | None:
    """Something that changes when `pid` is reused by another process (its start time), if the OS tells it."""
    stat = _stat(pid)
    return stat[19] if stat is not None and len(stat) > 19 else None


def same_process(pid: int | None, ident: str | None) -> bool:
    """`pid` is alive and still the process that was recorded with `ident` (when identities are available)."""
    if not pid or not alive(pid):
        return False
    current = identity(pid)
    return ident is None or current is None or current == ident


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def signal_group(pid: int, sig: int) -> bool:
    """Signal the process group led by `pid` (each child runs in its own session); False if it is gone."""
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def terminate(pids: list[int], grace: float) -> None:
    """SIGTERM each process group, SIGKILL what is still alive after `grace` seconds (not our children)."""
    for pid in pids:
        signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        if alive(pid):
            signal_group(pid, signal.SIGKILL)


@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[IO[str] | None]:
    """An exclusive flock on `path` for the block; yields None (non-blocking) when another holder has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        yield handle
    finally:
        handle.close()


def locked_by_other(path: Path) -> bool:
    """Another process holds an exclusive flock on `path`."""
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
