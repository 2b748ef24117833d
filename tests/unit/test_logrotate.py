"""Size-based rotation of the local target's logs: copies shift, the oldest goes, the live file restarts."""

from __future__ import annotations

from pathlib import Path

from armonik_deploy.logrotate import rotate_folder, rotate_if_large


def test_a_large_log_is_copied_and_truncated_and_copies_shift(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    with open(log, "ab") as writer:  # a process's append-mode handle, kept open across rotations
        for round_ in range(5):
            writer.write(f"round {round_}\n".encode() * 20)
            writer.flush()
            assert rotate_if_large(log, 100, kept=3)
            assert log.stat().st_size == 0
        writer.write(b"after\n")
        writer.flush()
    assert log.read_bytes() == b"after\n"  # appended at the start of the truncated file, no hole
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "agent.log",
        "agent.log.1",
        "agent.log.2",
        "agent.log.3",
    ]
    assert (tmp_path / "agent.log.1").read_text().startswith("round 4")
    assert (tmp_path / "agent.log.3").read_text().startswith("round 2")


def test_small_logs_and_a_zero_limit_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("x" * 50)
    (tmp_path / "b.log").write_text("x" * 500)
    (tmp_path / "notes.txt").write_text("x" * 500)
    assert rotate_folder(tmp_path, 100, 2) == ["b.log"]
    assert rotate_folder(tmp_path, 0, 2) == []
    assert not (tmp_path / "notes.txt.1").exists()
    assert not rotate_if_large(tmp_path / "missing.log", 1, 1)
