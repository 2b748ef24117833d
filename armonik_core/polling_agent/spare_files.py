"""Empty files an agent keeps from one task to the next, to become the next tasks' input files.

Staging a task's inputs creates a file per input in its data folder, and emptying the folder afterwards
unlinks them: a file created and a file freed per input, hundreds of times a second. Creating a file
allocates an inode; on ext4 without a journal (common on virtual machines) the allocator skips every inode
freed in the last few minutes, reading each one's entry on the way, so that under this churn each creation
cost 0.2 ms of CPU here, and the worker's own output files paid as much. A kept file is emptied and renamed
out of the way instead of unlinked, then renamed into place for the next input: two renames and an open,
about ten microseconds, on any file system, and no inode is freed, so every other creation stays cheap too.

A task's data folder (`<SharedCacheFolder>/<communication token>`) is kept the same way: emptied, renamed out of
the way, and renamed to the next task's token; a directory's inode costs as much as a file's.

What a worker wants to keep of its inputs past its Process call it copies: a hard link to an input file, which
would survive upstream's deletion of the data folder, is emptied here. The files of a call that was abandoned
(cancelled, timed out) are never kept, since the worker may still be using them.
"""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path


class SpareFiles:
    """At most `keep` empty files in `folder` (on the same file system as the data folders, for renames)."""

    def __init__(self, folder: Path, keep: int = 64) -> None:
        self._folder = folder
        self._keep = keep
        self._spares: list[str] = []
        self._folders: list[str] = []
        self._names = itertools.count()
        self._made = False

    def __len__(self) -> int:
        return len(self._spares)

    @property
    def folder(self) -> Path:
        return self._folder

    def place(self, target: str) -> None:
        """Move a kept file to `target` (empty): the caller then writes it in place. Nothing when none is
        kept, or when the one taken was removed meanwhile: the caller creates `target` as usual."""
        while self._spares:
            try:
                os.replace(self._spares.pop(), target)
                return
            except FileNotFoundError:
                continue

    def keep(self, path: str) -> bool:
        """Empty the regular file at `path` and keep it; False (the file left as it is, for the caller to
        unlink) when enough are kept or it is not a regular file this agent can write."""
        if len(self._spares) >= self._keep:
            return False
        try:
            # Opened for writing without following a link: this both empties it and proves it is writable.
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return False
        finally:
            os.close(fd)
        spare = f"{self._folder}/{next(self._names)}"
        if not self._move_in(path, spare):
            return False
        self._spares.append(spare)
        return True

    def place_folder(self, target: str) -> bool:
        """Move a kept, empty folder to `target`; False when none is kept (the caller creates `target`)."""
        while self._folders:
            try:
                os.replace(self._folders.pop(), target)
                return True
            except FileNotFoundError:
                continue
        return False

    def keep_folder(self, path: str) -> bool:
        """Keep the empty folder at `path` for a later task; False (left as it is) when enough are kept."""
        if len(self._folders) >= 4:
            return False
        spare = f"{self._folder}/d{next(self._names)}"
        if not self._move_in(path, spare):
            return False
        self._folders.append(spare)
        return True

    def _move_in(self, path: str, spare: str) -> bool:
        """Rename `path` to `spare` in the spares' folder, made on first use; False when it cannot be."""
        try:
            if not self._made:
                os.makedirs(self._folder, exist_ok=True)
                self._made = True
            os.replace(path, spare)
        except OSError:
            return False
        return True
