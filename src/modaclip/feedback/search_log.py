"""The search log `modaclip serve` keeps: each search answered and each product opened or added, written to
the SQLite file of feedback/log_schema.py by one background thread, never on a request's path.

`record_search` and `record_event` only put a record on a bounded in-memory queue: they never wait and
never raise, so logging cannot delay or fail a search. A full queue drops the record (counted). Every
`flush_s` the writer thread wakes and appends what has queued, in transactions of up to `batch` records:
a few transactions a second whatever the traffic, rather than a wake-up (and a turn at the GIL) per record;
benchmarks/serve_log.py measures what the log costs a server.
A write that fails (the file locked by another process past the busy timeout, the disk or the
`max_page_count` full, an unreadable file) loses that batch (counted in `failed`) and keeps the error
as one line; the next batch opens the file afresh. Before each batch the writer checks that the path
still names the file it has open: a log deleted or replaced under a running server (rotated away by
hand, say) would otherwise swallow every later record into an unlinked file, so it is reopened, which
creates a fresh log there (counted in `reopened`). Retention (`delete_before`) runs at start and every
`retention_every_s`.

Several processes on one host may write one file (WAL, each transaction waits for the others'); servers
on several hosts keep one file each, and the export reads them together (docs/search.md#search-log).
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from modaclip.core.errors import ModaclipError
from modaclip.feedback import log_schema
from modaclip.feedback.log_schema import EventRecord, SearchRecord

log = logging.getLogger(__name__)

DAY_S = 86_400
QUEUE_SIZE = 10_000  # records waiting for the writer; at ~1 kB each, at most ~10 MB held
BATCH = 1_000  # records in one transaction at most
FLUSH_S = 0.5  # how long a record waits in memory at most (a SIGKILL loses that much; SIGTERM writes it)
RETENTION_EVERY_S = 3_600.0

Connect = Callable[[Path], sqlite3.Connection]


@dataclass(frozen=True)
class LogConfig:
    """Where the log is written and how long it keeps records (params.yaml `serve.log_path` and
    `serve.log_retention_days`; 0 days keeps everything)."""

    path: Path
    retention_days: int


@dataclass(frozen=True, kw_only=True)
class LogStats:
    """The log's counters, for /metrics and /health. `problem` is the last write's error while writes fail;
    `last_error` the last error seen, kept after writes succeed again."""

    written: int
    dropped: int
    failed: int
    reopened: int
    queued: int
    retention_days: int
    problem: str | None
    last_error: str | None


class SearchLog:
    """A search log file and the thread that writes it; `close` flushes what is queued."""

    def __init__(
        self,
        config: LogConfig,
        connect: Connect = log_schema.connect,
        queue_size: int = QUEUE_SIZE,
        batch: int = BATCH,
        flush_s: float = FLUSH_S,
        retention_every_s: float = RETENTION_EVERY_S,
    ) -> None:
        self.config = config
        self._connect = connect
        self._queue: queue.Queue[SearchRecord | EventRecord] = queue.Queue(queue_size)
        self._batch = batch
        self._flush_s = flush_s
        self._retention_every_s = retention_every_s
        self._lock = threading.Lock()
        self._written = self._dropped = self._failed = self._reopened = 0
        self._problem: str | None = None
        self._last_error: str | None = None
        self._closing = threading.Event()
        self._conn: sqlite3.Connection | None = None
        self._retention_due = 0.0
        try:
            self._conn = connect(config.path)
            self._inode = _inode(config.path)
            self._keep_retention()
        except (sqlite3.Error, OSError) as err:
            self._drop_connection()
            raise ModaclipError(
                f"search log {config.path}: cannot open it ({_one_line(err)}); give another --log PATH or --no-log"
            ) from err
        self._thread = threading.Thread(target=self._write_forever, name="search-log-writer", daemon=True)
        self._thread.start()

    def record_search(
        self,
        kind: str,
        query: str | None,
        *,
        filters: dict[str, list[str]],
        session: str | None,
        model: str,
        mode: str | None,
        offset: int,
        shown: Sequence[int | str],
    ) -> str:
        """Queue an answered search; its new search_id (for the response) whether or not the queue had room."""
        search_id = uuid.uuid4().hex
        shown_ids = [str(product) for product in shown]
        record = SearchRecord(
            search_id=search_id,
            at=time.time(),
            kind=kind,
            query=query,
            filters=filters,
            session=session,
            model=model,
            mode=mode,
            offset=offset,
            shown=shown_ids,
        )
        self._put(record)
        return search_id

    def record_event(self, search_id: str, product_id: int | str, event: str) -> bool:
        """Queue what a shopper did with a result; False when it was dropped (queue full or log closed)."""
        return self._put(EventRecord(search_id, str(product_id), event, time.time()))

    def stats(self) -> LogStats:
        with self._lock:
            return LogStats(
                written=self._written,
                dropped=self._dropped,
                failed=self._failed,
                reopened=self._reopened,
                queued=self._queue.qsize(),
                retention_days=self.config.retention_days,
                problem=self._problem,
                last_error=self._last_error,
            )

    def close(self) -> None:
        """Write what is queued, then close the file; records arriving after this are dropped. Closing again
        does nothing."""
        self._closing.set()
        self._thread.join()
        late = 0
        while records := self._take():  # put while the writer was finishing
            late += len(records)
        with self._lock:
            self._dropped += late
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _put(self, record: SearchRecord | EventRecord) -> bool:
        if not self._closing.is_set():
            try:
                self._queue.put_nowait(record)
                return True
            except queue.Full:
                pass
        with self._lock:
            self._dropped += 1
        return False

    def _write_forever(self) -> None:
        while True:
            closing = self._closing.wait(self._flush_s)  # a close wakes it at once
            while records := self._take():
                self._write(records)
            if closing:
                return
            if time.monotonic() >= self._retention_due:
                self._guarded(self._keep_retention)

    def _take(self) -> list[SearchRecord | EventRecord]:
        """What has queued, up to a batch, without waiting."""
        records: list[SearchRecord | EventRecord] = []
        while len(records) < self._batch:
            try:
                records.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return records

    def _write(self, records: list[SearchRecord | EventRecord]) -> None:
        searches = [r for r in records if isinstance(r, SearchRecord)]
        events = [r for r in records if isinstance(r, EventRecord)]
        if self._guarded(lambda: log_schema.write(self._open(), searches, events)):
            with self._lock:
                self._written += len(records)
                self._problem = None
        else:
            with self._lock:
                self._failed += len(records)

    def _guarded(self, step: Callable[[], object]) -> bool:
        """Run a step on the file; an error is counted and kept, and the file is reopened before the next."""
        try:
            step()
            return True
        except Exception as err:  # the writer thread must outlive any failure: searches go on, the log says why
            problem = _one_line(err)
            with self._lock:
                if problem != self._problem:  # once per distinct problem, not at every batch
                    log.error(
                        "search log %s: %s; searching goes on without logging",
                        self.config.path,
                        problem,
                        exc_info=not isinstance(err, (sqlite3.Error, OSError)),  # anything else is our bug
                    )
                self._problem = self._last_error = problem
            self._drop_connection()
            return False

    def _open(self) -> sqlite3.Connection:
        """The connection to the file the path names now: a new one when the old file was deleted or replaced."""
        if self._conn is not None and _inode(self.config.path) != self._inode:
            message = "the log file was deleted or replaced while the server ran; writing to a new one"
            log.warning("search log %s: %s", self.config.path, message)
            with self._lock:
                self._reopened += 1
                self._last_error = message
            self._drop_connection()
        if self._conn is None:
            self._conn = self._connect(self.config.path)
            self._inode = _inode(self.config.path)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:  # a broken file may fail to close too; the next batch opens afresh either way
                log.debug("search log %s: closing a failed connection failed", self.config.path)
            self._conn = None

    def _keep_retention(self) -> None:
        self._retention_due = time.monotonic() + self._retention_every_s
        if self.config.retention_days:
            removed = log_schema.delete_before(self._open(), time.time() - self.config.retention_days * DAY_S)
            if removed:
                log.info("search log: removed %d records older than %d days", removed, self.config.retention_days)


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _one_line(err: BaseException) -> str:
    """The error in one line; an OSError without its file name (it reaches /health, which names no path)."""
    text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return " ".join(text.split()) or err.__class__.__name__
