"""Files kept from task to task for the next inputs (`SpareFiles`): what is kept, what is refused, and that
a staged input lands on a kept file (the same inode) instead of a new one."""

from __future__ import annotations

import os
from pathlib import Path

from armonik_core.polling_agent.spare_files import SpareFiles


def write(path: Path, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)


def test_a_kept_file_is_emptied_and_becomes_the_next_input(tmp_path: Path) -> None:
    folder, spares = tmp_path / "task", SpareFiles(tmp_path / "spare", keep=4)
    folder.mkdir()
    write(folder / "payload-1", b"first payload")
    inode = os.stat(folder / "payload-1").st_ino

    assert spares.keep(str(folder / "payload-1"))
    assert not (folder / "payload-1").exists() and len(spares) == 1

    spares.place(str(folder / "payload-2"))
    assert len(spares) == 0
    assert os.stat(folder / "payload-2").st_ino == inode, "the kept inode, not a new one"
    assert (folder / "payload-2").read_bytes() == b"", "nothing of the previous task is left in it"
    write(folder / "payload-2", b"second")
    assert (folder / "payload-2").read_bytes() == b"second"


def test_no_more_than_keep_files_are_kept(tmp_path: Path) -> None:
    spares = SpareFiles(tmp_path / "spare", keep=2)
    files = [tmp_path / f"f{i}" for i in range(3)]
    for file in files:
        write(file, b"x")
    assert [spares.keep(str(file)) for file in files] == [True, True, False]
    assert files[2].exists(), "a file that is not kept is left to the caller"
    assert len(spares) == 2


def test_placing_without_a_spare_leaves_the_target_alone(tmp_path: Path) -> None:
    spares = SpareFiles(tmp_path / "spare", keep=2)
    spares.place(str(tmp_path / "input"))
    assert not (tmp_path / "input").exists()


def test_a_file_that_cannot_be_written_is_not_kept(tmp_path: Path) -> None:
    spares = SpareFiles(tmp_path / "spare", keep=2)
    (tmp_path / "a-folder").mkdir()
    assert not spares.keep(str(tmp_path / "a-folder"))
    assert not spares.keep(str(tmp_path / "missing"))
    link = tmp_path / "link"
    write(tmp_path / "target", b"kept elsewhere")
    link.symlink_to(tmp_path / "target")
    assert not spares.keep(str(link)), "a symbolic link is not followed"
    assert (tmp_path / "target").read_bytes() == b"kept elsewhere"
    assert len(spares) == 0


def test_a_spare_removed_meanwhile_is_skipped(tmp_path: Path) -> None:
    spares = SpareFiles(tmp_path / "spare", keep=2)
    write(tmp_path / "f", b"x")
    assert spares.keep(str(tmp_path / "f"))
    for entry in (tmp_path / "spare").iterdir():
        entry.unlink()
    spares.place(str(tmp_path / "input"))
    assert not (tmp_path / "input").exists() and len(spares) == 0
