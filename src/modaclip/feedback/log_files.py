"""Where search logs are: the default file `modaclip serve` writes, globs of several, and a consistent copy of them.

A log being written by a server is copied with SQLite's online backup API, which reads a
consistent snapshot (every committed transaction up to a moment, none half-written) while the
server goes on writing; copying the file's bytes could catch a page mid-write and miss the
`-wal` file's committed transactions.
"""

from __future__ import annotations

import glob
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from modaclip.core.atomic import atomic_directory
from modaclip.core.errors import ModaclipError


def expand_logs(patterns: Sequence[str]) -> list[Path]:
    """Each pattern's files (a path, or a glob matched in sorted order); one that matches nothing is an error."""
    paths: list[Path] = []
    for pattern in patterns:
        matched = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        found = [Path(path) for path in matched if Path(path).is_file()]
        if not found:
            raise ModaclipError(f"{pattern}: no search log there (is `modaclip serve` logging to it?)")
        paths.extend(path for path in found if path not in paths)
    return paths


def snapshot_logs(pattern: str, out: str | Path) -> list[Path]:
    """Consistent copies of the logs `pattern` names, as `out`/log-NNN.sqlite (replacing `out` whole)."""
    sources = expand_logs([pattern])
    with atomic_directory(out) as tmp:
        for number, source in enumerate(sources):
            try:
                with (
                    closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as reader,
                    closing(sqlite3.connect(tmp / f"log-{number:03d}.sqlite")) as copy,
                ):
                    reader.backup(copy)
                    seal(copy)
            except sqlite3.DatabaseError as err:
                raise ModaclipError(f"{source}: cannot copy the search log ({err})") from err
    return [Path(out) / f"log-{number:03d}.sqlite" for number in range(len(sources))]


def seal(conn: sqlite3.Connection) -> None:
    """Leave a finished copy as one self-contained file (rollback journal, not WAL), so reading it later makes
    no `-wal`/`-shm` files beside it in a DVC output."""
    conn.execute("PRAGMA journal_mode = DELETE")
