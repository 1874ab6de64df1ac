"""The search log's file format: one SQLite file in WAL mode, written by `modaclip serve` and by the
simulated shoppers of the embedded default, read by `modaclip feedback export`.

Two tables, no client address anywhere:

- `searches`: one row per answered search. `search_id` is 32 random hex digits (uuid4), so logs of
  several servers merge without clashes; `at` is Unix seconds (UTC); `kind` is `text`,
  `similar_product` or `similar_image`; `query` the text as typed (for `similar_product` the
  product's id, NULL for `similar_image`);
  `filters` a JSON object (attribute -> list of values); `session` an opaque token the shop's front
  end may send to tell shoppers apart (NULL when it sends none); `model` the served model's version;
  `mode` `vector` or `hybrid`; `offset` the page's first position (0-based); `shown` a JSON array of
  the product ids on the page in order, so product `shown[i]` sat at position `offset + i + 1`.
- `events`: one row per thing a shopper did with a result: `search_id`, `product_id`, `event`
  (`open` or `add`), `at`. An event may name a search written by another server or not yet written:
  the export joins them and counts what it cannot match.

`meta` holds `schema_version`; a reader refuses a file of another version with a message naming it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from modaclip.core.errors import ModaclipError

SCHEMA_VERSION = "1"
EVENTS = ("open", "add")
SEARCH_KINDS = ("text", "similar_product", "similar_image")
BUSY_TIMEOUT_MS = 5000  # how long a writer waits for another process's transaction before giving up

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS searches (
    search_id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    query TEXT,
    filters TEXT NOT NULL,
    session TEXT,
    model TEXT NOT NULL,
    mode TEXT,
    offset INTEGER NOT NULL,
    shown TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    search_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('open', 'add')),
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS searches_at ON searches (at);
CREATE INDEX IF NOT EXISTS events_at ON events (at);
"""


@dataclass(frozen=True, kw_only=True)
class SearchRecord:
    """One answered search, as a row of `searches`."""

    search_id: str
    at: float
    kind: str
    query: str | None
    filters: dict[str, list[str]]
    session: str | None
    model: str
    mode: str | None
    offset: int
    shown: Sequence[str]

    def row(self) -> tuple[object, ...]:
        filters = json.dumps(self.filters, sort_keys=True)
        shown = json.dumps([str(product) for product in self.shown])
        return (
            self.search_id,
            self.at,
            self.kind,
            self.query,
            filters,
            self.session,
            self.model,
            self.mode,
            self.offset,
            shown,
        )


@dataclass(frozen=True)
class EventRecord:
    """One thing a shopper did with a result, as a row of `events`."""

    search_id: str
    product_id: str
    event: str
    at: float

    def row(self) -> tuple[object, ...]:
        return (self.search_id, str(self.product_id), self.event, self.at)


def connect(path: str | Path, timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A connection to a log file, created with the schema if new; WAL lets several processes on one host
    write one file (each transaction waits up to `timeout_ms` for another's) while readers read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "PRAGMA synchronous = NORMAL"
    )  # WAL: durable up to the last checkpoint-safe commit, no fsync per write
    conn.executescript(DDL)
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
    return conn


def write(conn: sqlite3.Connection, searches: Iterable[SearchRecord], events: Iterable[EventRecord]) -> None:
    """Append records in one transaction (all or none); a repeated search_id keeps the first row."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT OR IGNORE INTO searches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [s.row() for s in searches]
        )
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", [e.row() for e in events])


def delete_before(conn: sqlite3.Connection, cutoff: float) -> int:
    """Retention: drop searches and events older than `cutoff` (Unix seconds); returns rows removed."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        removed = conn.execute("DELETE FROM searches WHERE at < ?", (cutoff,)).rowcount
        removed += conn.execute("DELETE FROM events WHERE at < ?", (cutoff,)).rowcount
    return removed


@dataclass(frozen=True)
class LogTables:
    """A log read whole: `searches` with `filters` and `shown` decoded, and `events`."""

    searches: pd.DataFrame
    events: pd.DataFrame


def read_log(paths: Sequence[str | Path]) -> LogTables:
    """The searches and events of one or more log files (read-only, a consistent snapshot of each)."""
    searches, events = [], []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ModaclipError(f"{path}: search log not found")
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if version is None or version[0] != SCHEMA_VERSION:
                    found = version[0] if version else "none"
                    raise ModaclipError(
                        f"{path}: search log schema version {found}, this modaclip reads version {SCHEMA_VERSION}"
                    )
                conn.execute("BEGIN")  # one read transaction: searches and events from the same moment
                searches.append(pd.read_sql_query("SELECT * FROM searches", conn))
                events.append(pd.read_sql_query("SELECT * FROM events", conn))
                conn.rollback()
            finally:
                conn.close()
        except sqlite3.DatabaseError as err:
            raise ModaclipError(f"{path}: not a readable search log ({err})") from err
    searches_frame = pd.concat(searches, ignore_index=True) if searches else pd.DataFrame()
    if len(searches_frame):
        searches_frame["filters"] = searches_frame["filters"].map(json.loads)
        searches_frame["shown"] = searches_frame["shown"].map(json.loads)
    events_frame = pd.concat(events, ignore_index=True) if events else pd.DataFrame()
    return LogTables(searches_frame.drop_duplicates("search_id", keep="first"), events_frame)
