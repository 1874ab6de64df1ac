"""What a writer killed mid-write leaves (core/atomic.py's temporary names) is removed at the next write,
and git and DVC ignore it meanwhile, so it never reaches a commit or the DVC cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from modaclip.core.atomic import atomic_directory, sweep_leftovers, write_json
from modaclip.registry.retrain import remove_leftovers_of_killed_runs

REPO = Path(__file__).resolve().parents[1]


def dead_pid() -> int:
    """The pid of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_next_write_removes_what_a_killed_writer_left_and_keeps_a_running_ones(tmp_path: Path) -> None:
    killed, running = dead_pid(), os.getppid()
    (tmp_path / f".train.json.tmp-{killed}").write_text('{"half": ')
    (tmp_path / f".train.json.tmp-{running}").write_text("being written")
    (tmp_path / f".other.json.tmp-{killed}").write_text("another output's")
    write_json(tmp_path / "train.json", {"whole": True})
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        f".other.json.tmp-{killed}",
        f".train.json.tmp-{running}",
        "train.json",
    ]

    for kind in ("tmp", "old"):
        (tmp_path / f".raw.{kind}-{killed}").mkdir()
        (tmp_path / f".raw.{kind}-{killed}" / "part-00000.parquet").write_bytes(b"partial")
    with atomic_directory(tmp_path / "raw") as tmp:
        (tmp / "part-00000.parquet").write_bytes(b"whole")
    assert not list(tmp_path.glob(".raw.*"))


def test_a_sweep_removes_leftovers_at_any_depth(tmp_path: Path) -> None:
    killed = dead_pid()
    nested = tmp_path / "models" / "checkpoints"
    nested.mkdir(parents=True)
    (nested / f".last.pt.tmp-{killed}").write_bytes(b"half a checkpoint")
    (tmp_path / f".embeddings.old-{killed}").mkdir()
    (nested / "last.pt").write_bytes(b"whole")
    removed = sweep_leftovers(tmp_path)
    assert sorted(path.name for path in removed) == [f".embeddings.old-{killed}", f".last.pt.tmp-{killed}"]
    assert [path.name for path in nested.iterdir()] == ["last.pt"]


def test_git_and_dvc_ignore_temporary_names() -> None:
    names = ["metrics/.train.json.tmp-4242", "models/checkpoints/.last.pt.tmp-4242", "data/.raw.old-4242/part.parquet"]
    for command in (["git", "check-ignore", "-q"], ["dvc", "check-ignore", "-q"]):
        for name in names:
            assert subprocess.run([*command, name], cwd=REPO).returncode == 0, f"{command[0]} does not ignore {name}"
    assert subprocess.run(["git", "check-ignore", "-q", "metrics/train.json"], cwd=REPO).returncode == 1


def test_retrain_removes_a_killed_runs_leftovers_from_the_pipeline_folders(tmp_path: Path) -> None:
    killed = dead_pid()
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / f".train.json.tmp-{killed}").write_text("{")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / f".notes.tmp-{killed}").write_text("not a pipeline folder: left alone")
    remove_leftovers_of_killed_runs(tmp_path)
    assert not list((tmp_path / "metrics").iterdir())
    assert (tmp_path / "src" / f".notes.tmp-{killed}").exists()
