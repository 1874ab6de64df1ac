"""Write outputs under a temporary name and rename them into place only when complete.

A stage that fails or is killed half-way then leaves the previous output (or none) behind, never
a half-written one that a later stage would read as if it were whole. The temporary names
(`.NAME.tmp-PID`, `.NAME.old-PID`) are ignored by git and DVC (.gitignore, .dvcignore), so what a
SIGKILL leaves is never committed or cached, and the next write of the same path removes them.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# `.NAME.tmp-PID` (being written) and `.NAME.old-PID` (the output it replaces, being removed)
TEMPORARY_NAME = re.compile(r"\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)")


def _temporary_sibling(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


def _left_by_a_killed_writer(entry: Path) -> str | None:
    """The name of the output a temporary entry was written for, when its writer is gone; else None."""
    match = TEMPORARY_NAME.fullmatch(entry.name)
    return match["name"] if match and not _is_running(int(match["pid"])) else None


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def remove_leftovers(path: str | Path) -> None:
    """Remove the temporary siblings of `path` that a killed writer left."""
    path = Path(path)
    for sibling in path.parent.glob(f".{glob.escape(path.name)}.*-*"):
        if _left_by_a_killed_writer(sibling) == path.name:
            _remove(sibling)


def sweep_leftovers(root: str | Path) -> list[Path]:
    """Remove every temporary entry a killed writer left under `root` (git and DVC folders excepted); returns them."""
    removed = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [name for name in dirs if name not in (".git", ".dvc")]
        for name in [*dirs, *files]:
            entry = Path(folder, name)
            if _left_by_a_killed_writer(entry) is not None:
                _remove(entry)
                removed.append(entry)
        dirs[:] = [name for name in dirs if Path(folder, name).exists()]
    return removed


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces `path` when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    tmp = _temporary_sibling(path, "tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        old = _temporary_sibling(path, "old")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path that replaces `path` when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    tmp = _temporary_sibling(path, "tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_json(path: str | Path, data: Any) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
