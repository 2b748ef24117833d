"""Size-based rotation of the local target's log files (`<generated>/logs/<name>.log`).

Each process writes its own log file directly (the supervisor opens it in append mode and hands it over as
stdout/stderr), so that logging costs the task path no pipe and no extra process. A file a process holds
open cannot be renamed away from it: once it passes `log_max_bytes`, the supervisor copies it to
`<name>.log.1` (older copies shift to `.2`, ...; `log_files_kept` are kept) and truncates it in place, and the
process's next appended line starts the file again (what logrotate calls copytruncate). Lines written between
the copy and the truncation (a few microseconds) are lost; a log that grows without bound is worse.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_FILES_KEPT = 3


def rotate_if_large(path: Path, max_bytes: int, kept: int) -> bool:
    """Rotate `path` if it holds more than `max_bytes`; True when it was rotated. `max_bytes` 0: never."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if max_bytes <= 0 or size <= max_bytes:
        return False
    if kept <= 0:
        os.truncate(path, 0)
        return True
    oldest = path.with_name(f"{path.name}.{kept}")
    oldest.unlink(missing_ok=True)
    for index in range(kept - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            older.rename(path.with_name(f"{path.name}.{index + 1}"))
    shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    os.truncate(path, 0)
    return True


def rotate_folder(folder: Path, max_bytes: int, kept: int) -> list[str]:
    """Rotate every `*.log` of the folder that is too large; the names of those rotated."""
    rotated = []
    for path in sorted(folder.glob("*.log")):
        if rotate_if_large(path, max_bytes, kept):
            rotated.append(path.name)
    return rotated
