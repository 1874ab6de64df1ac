"""The search log's writer: records reach the file off the caller's thread; a locked, full or deleted store,
or a full queue, is counted and never raised; retention; two processes writing one file lose nothing."""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from modaclip.core.errors import ModaclipError
from modaclip.feedback import log_schema
from modaclip.feedback.log_schema import EventRecord, SearchRecord, read_log
from modaclip.feedback.search_log import DAY_S, LogConfig, LogStats, SearchLog

SHOWN = [str(product) for product in range(1000, 1024)]  # a page of 24 results


def search(log: SearchLog, query: str = "red dress", session: str | None = "s1") -> str:
    return log.record_search(
        "text",
        query,
        filters={"gender": ["Women"]},
        session=session,
        model="model folder m",
        mode="vector",
        offset=24,
        shown=SHOWN,
    )


def wait_for(log: SearchLog, done: Callable[[LogStats], bool], timeout_s: float = 20) -> LogStats:
    deadline = time.monotonic() + timeout_s
    while not done(stats := log.stats()):
        assert time.monotonic() < deadline, f"the writer never got there: {stats}"
        time.sleep(0.02)
    return stats


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "search-log.sqlite"


@pytest.fixture
def opened(path: Path) -> Iterator[Callable[..., SearchLog]]:
    """Opens SearchLogs on `path` (0 retention days unless given), each closed at the end of the test."""
    logs: list[SearchLog] = []

    def open_log(retention_days: int = 0, **options: object) -> SearchLog:
        logs.append(SearchLog(LogConfig(path, retention_days), **options))  # type: ignore[arg-type]
        return logs[-1]

    yield open_log
    for log in logs:
        log.close()


def test_a_search_and_its_events_reach_the_file_as_recorded(path: Path, opened: Callable[..., SearchLog]) -> None:
    log = opened()
    search_id = search(log)
    assert log.record_event(search_id, 1003, "open") and log.record_event(search_id, "1003", "add")
    log.close()
    tables = read_log([path])
    row = tables.searches.iloc[0]
    assert len(search_id) == 32 and row["search_id"] == search_id
    assert (row["kind"], row["query"], row["session"], row["model"], row["mode"]) == (
        "text",
        "red dress",
        "s1",
        "model folder m",
        "vector",
    )
    assert row["filters"] == {"gender": ["Women"]} and row["shown"] == SHOWN and row["offset"] == 24
    assert abs(row["at"] - time.time()) < 60
    assert tables.events[["search_id", "product_id", "event"]].values.tolist() == [
        [search_id, "1003", "open"],
        [search_id, "1003", "add"],
    ]
    assert log.stats().written == 3 and log.stats().problem is None


def test_close_writes_everything_still_queued(path: Path, opened: Callable[..., SearchLog]) -> None:
    log = opened(batch=7)
    ids = {search(log, f"query {n}") for n in range(500)}
    log.close()
    assert set(read_log([path]).searches["search_id"]) == ids and log.stats().written == 500


def test_a_full_queue_drops_and_counts_instead_of_waiting(path: Path, opened: Callable[..., SearchLog]) -> None:
    """The store is locked (the writer waits on its first record), so the queue of one fills: the third is dropped."""
    log = opened(connect=partial(log_schema.connect, timeout_ms=20_000), queue_size=1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    search(log, "first")
    wait_for(log, lambda stats: stats.queued == 0)  # taken by the writer, which waits for the lock
    time.sleep(0.3)  # past the moment it gathers the rest of its batch (microseconds), so "second" waits queued
    started = time.monotonic()
    search(log, "second")
    search(log, "third")
    assert time.monotonic() - started < 1, "recording waited for the store"
    assert log.stats().dropped == 1 and log.stats().queued == 1
    holder.rollback()
    log.close()
    assert sorted(read_log([path]).searches["query"]) == ["first", "second"]


def test_a_locked_store_counts_the_lost_records_then_recovers(path: Path, opened: Callable[..., SearchLog]) -> None:
    log = opened(connect=partial(log_schema.connect, timeout_ms=100))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    search(log, "while locked")
    failing = wait_for(log, lambda stats: stats.failed == 1)
    assert failing.problem is not None and "locked" in failing.problem and failing.written == 0
    holder.rollback()
    search(log, "after")
    recovered = wait_for(log, lambda stats: stats.written == 1)
    assert recovered.problem is None and "locked" in (recovered.last_error or "")
    log.close()
    assert read_log([path]).searches["query"].tolist() == ["after"]


def full_store(where: Path) -> sqlite3.Connection:
    """A connection to a log with no room left, as on a full disk: no page may be added (SQLITE_FULL), and
    small filler rows take the free bytes of the pages there are, so no real record fits anywhere."""
    conn = log_schema.connect(where)
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    with contextlib.suppress(sqlite3.OperationalError):
        for _ in range(10_000):
            filler = uuid.uuid4().hex  # new ones at each reconnect
            conn.execute("INSERT INTO searches VALUES (?, 0, 'text', '', '{}', '', '', '', 0, '[]')", (filler,))
            conn.execute("INSERT INTO events VALUES (?, '', 'open', 0)", (filler,))
    return conn


def test_a_full_store_counts_the_lost_records_and_keeps_the_error(path: Path, opened: Callable[..., SearchLog]) -> None:
    log = opened(connect=full_store)
    for n in range(200):
        log.record_event(search(log, f"query {n}"), 1003, "open")
    stats = wait_for(log, lambda stats: stats.failed == 400)
    assert stats.written == 0 and stats.problem is not None and "full" in stats.problem


def test_a_deleted_log_file_is_noticed_and_a_new_one_started(path: Path, opened: Callable[..., SearchLog]) -> None:
    log = opened()
    search(log, "before")
    wait_for(log, lambda stats: stats.written == 1)
    for leftover in path.parent.iterdir():  # the file and its -wal and -shm, as `rm logs/*` would
        leftover.unlink()
    search(log, "after")
    stats = wait_for(log, lambda stats: stats.written == 2)
    assert stats.reopened == 1 and "deleted or replaced" in (stats.last_error or "")
    log.close()
    assert read_log([path]).searches["query"].tolist() == ["after"]


def test_retention_deletes_what_is_older_than_the_kept_days(path: Path, opened: Callable[..., SearchLog]) -> None:
    now = time.time()
    conn = log_schema.connect(path)
    old, recent = (
        SearchRecord(
            search_id=search_id,
            at=now - days * DAY_S,
            kind="text",
            query=query,
            filters={},
            session=None,
            model="m",
            mode="vector",
            offset=0,
            shown=["1"],
        )
        for search_id, days, query in [("a" * 32, 91, "old"), ("b" * 32, 89, "recent")]
    )
    log_schema.write(conn, [old, recent], [EventRecord("a" * 32, "1", "open", now - 91 * DAY_S)])
    conn.close()
    opened(retention_days=90).close()
    tables = read_log([path])
    assert tables.searches["query"].tolist() == ["recent"] and tables.events.empty


def test_an_unusable_path_is_refused_at_start_naming_it(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(ModaclipError, match=r"search log .*taken: cannot open it"):
        SearchLog(LogConfig(tmp_path / "taken", 0))


def write_many(path: Path, name: str, count: int) -> None:
    """One process's writer: `count` searches and an event each, recorded as fast as the caller can."""
    log = SearchLog(LogConfig(path, 0), batch=16)
    for n in range(count):
        log.record_event(search(log, f"{name} {n}", session=name), n, "open")
    log.close()
    stats = log.stats()
    if (stats.written, stats.dropped, stats.failed) != (2 * count, 0, 0):
        raise SystemExit(f"{name}: {stats}")


def test_two_processes_writing_one_file_lose_nothing(path: Path) -> None:
    log_schema.connect(path).close()
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=write_many, args=(path, name, 2000)) for name in ("a", "b")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [writer.exitcode for writer in writers] == [0, 0]
    tables = read_log([path])
    assert tables.searches["session"].value_counts().to_dict() == {"a": 2000, "b": 2000}
    assert len(tables.events) == 4000 and set(tables.events["search_id"]) == set(tables.searches["search_id"])


def test_a_log_folder_gone_bad_is_reported_without_its_path(path: Path, opened: Callable[..., SearchLog]) -> None:
    """The problem reaches /health, which names no file: an OSError is reported by its reason alone."""
    log = opened()
    for leftover in path.parent.iterdir():
        leftover.unlink()
    path.parent.rmdir()
    path.parent.write_text("a file where the log's folder was")
    search(log)
    stats = wait_for(log, lambda stats: stats.failed == 1)
    assert stats.problem is not None and str(path.parent) not in stats.problem, stats.problem
