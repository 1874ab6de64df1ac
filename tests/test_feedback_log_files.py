"""Finding search logs and copying them consistently while a server writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from modaclip.core.errors import ModaclipError
from modaclip.feedback import log_schema
from modaclip.feedback.log_files import expand_logs, snapshot_logs
from modaclip.feedback.log_schema import EventRecord, SearchRecord, read_log


def a_search(n: int) -> SearchRecord:
    return SearchRecord(
        search_id=f"{n:032x}",
        at=100.0 + n,
        kind="text",
        query="tee",
        filters={},
        session=None,
        model="v1",
        mode="vector",
        offset=0,
        shown=["1", "2"],
    )


def test_globs_expand_sorted_and_a_missing_log_is_named(tmp_path: Path) -> None:
    for name in ("b.sqlite", "a.sqlite"):
        log_schema.connect(tmp_path / name).close()
    assert expand_logs([str(tmp_path / "*.sqlite")]) == [tmp_path / "a.sqlite", tmp_path / "b.sqlite"]
    with pytest.raises(ModaclipError, match=r"nowhere\.sqlite: no search log there"):
        expand_logs([str(tmp_path / "nowhere.sqlite")])
    with pytest.raises(ModaclipError, match=r"logs/\*\.sqlite: no search log there"):
        expand_logs([str(tmp_path / "logs/*.sqlite")])


def test_a_log_being_written_is_copied_whole_into_one_file(tmp_path: Path) -> None:
    live = log_schema.connect(tmp_path / "live.sqlite")  # a running server's connection: its writes sit in the WAL
    try:
        log_schema.write(live, [a_search(n) for n in range(5)], [EventRecord(f"{1:032x}", "2", "add", 200.0)])
        assert (tmp_path / "live.sqlite-wal").stat().st_size > 0
        copied = snapshot_logs(str(tmp_path / "live.sqlite"), tmp_path / "out")
        log_schema.write(live, [a_search(9)], [])  # written after the copy: not in it
    finally:
        live.close()
    assert copied == [tmp_path / "out" / "log-000.sqlite"]
    log = read_log(copied)
    assert len(log.searches) == 5 and len(log.events) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["log-000.sqlite"]
