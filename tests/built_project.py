"""A pipeline project built once per test session and copied for each test module that starts from it.

Under pytest-xdist every worker is its own process: the first one to need the project builds it under a
file lock in a folder all workers share; the others wait for it and copy it. Each module gets a copy of
everything the project holds (git repository, DVC cache, workspace outputs, dvc.lock), so the modules
can change their copy freely.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

OUTPUT = "build-output.txt"  # written last: a folder without it is a failed or killed build


@dataclass(frozen=True)
class BuiltProject:
    root: Path
    output: str  # what the build printed (e.g. `dvc repro`'s stage lines)

    def copy_to(self, dest: Path) -> Path:
        """A copy of the project at `dest` (created, or an empty folder).

        DVC's .dvc/tmp (locks, and the updater's and index's caches) is left behind: DVC remakes it, and the
        copy then shares no state with the original (DVC keys its hash cache by the repository's path).
        """
        shutil.copytree(
            self.root, dest, symlinks=True, dirs_exist_ok=True, ignore=lambda folder, _: skip_dvc_tmp(folder)
        )
        return dest


def skip_dvc_tmp(folder: str) -> list[str]:
    return ["tmp"] if Path(folder).name == ".dvc" else []


def shared_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This session's temporary folder that all xdist workers share (each worker's own base is below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], str]) -> BuiltProject:
    """`build(folder)` (returning what it printed) run by the first worker that asks for `name`; the rest reuse it."""
    shared = shared_tmp(tmp_path_factory)
    root, output = shared / name / "project", shared / name / OUTPUT
    with FileLock(shared / f"{name}.lock"):
        if not output.is_file():
            shutil.rmtree(root.parent, ignore_errors=True)  # what a failed build left
            root.mkdir(parents=True)
            printed = build(root)
            partial = output.with_suffix(".partial")
            partial.write_text(printed)
            partial.rename(output)
    return BuiltProject(root, output.read_text())
