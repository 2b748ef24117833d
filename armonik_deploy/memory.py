"""A local deployment's data in memory: the folder on a memory file system (tmpfs) that holds the partitions'
shared cache folders (`cache_config = { memory = true }`) and the filesystem object storage
(`local = { object_storage = { memory = true } }`).

Every task's inputs and outputs are files; on a disk file system each new file costs an inode allocation, which
on a busy machine is a large part of a polling agent's time. Upstream mounts the cache folder as an emptyDir with
medium Memory; Ray keeps its object store in shared memory. Locally the same place is `/dev/shm`.

The folder is `/dev/shm/armonik-<uid>-<digest of the generated folder>`: the same across redeploys of one
deployment (objects outlive a restart of any process), distinct between deployments. Its name can be guessed,
so it is created with mode 0700 before any process starts, and refused when it exists as anything but a folder
of this user that no one else may enter (another user could have made it first, to read or swap the data).
`destroy` removes it. What is in it survives any process's crash, not a reboot: like Ray's object store, or
Redis without persistence.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

#: Where memory folders go: the shared-memory tmpfs every Linux system mounts.
MEMORY_FILE_SYSTEM = Path("/dev/shm")


class MemoryFolderError(RuntimeError):
    """The memory folder cannot be used safely; the message says why and what to do."""


def memory_root(generated: Path, base: Path = MEMORY_FILE_SYSTEM) -> Path:
    """The deployment's memory folder (not created): one per generated folder and user."""
    digest = hashlib.sha256(str(generated.resolve()).encode()).hexdigest()[:16]
    return base / f"armonik-{os.getuid()}-{digest}"


def prepare_memory_root(root: Path) -> None:
    """Create `root` (mode 0700), or check that the existing one is this user's own, private folder."""
    if not root.parent.is_dir():
        raise MemoryFolderError(
            f"{root.parent} is not a folder: this system has no memory file system there; "
            "set cache_config.memory and local.object_storage.memory to false"
        )
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = root.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise MemoryFolderError(
            f"{root} exists but is not a folder of this user closed to others (mode 0700): "
            "remove it, or make it so, before deploying"
        )


def remove_memory_root(root: Path) -> None:
    """Remove the memory folder and everything in it, if it is this user's (never follows a link)."""
    try:
        info = root.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
        shutil.rmtree(root, ignore_errors=True)
