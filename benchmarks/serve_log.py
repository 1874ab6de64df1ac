"""The search log's cost in `modaclip serve`: search latency at 16 clients with and without the log, records written
per second, and the log file's size per million searches and per million events.

    PYTHONPATH=src python benchmarks/serve_log.py                          # 3 repeats of 20 s a variant
    PYTHONPATH=src python benchmarks/serve_log.py --seconds 3 --repeats 1  # a quick check that it runs

Starts two servers as `modaclip serve` on 127.0.0.1, one with `--log` (a fresh file in a temporary
folder) and one with `--no-log`, and measures them in turn (logging, not logging, not logging, logging, ...:
`--repeats` of each, so a drift in the machine's load, or going first, falls on both). Each turn runs for `--seconds`:

- `--clients` connections of text searches with wrk (serve_load.py's script: 200 popular queries
  made of the catalog's attribute values, the query cache on, so a search costs little and the
  log's share of it is as large as it gets), whose p50 and p99 are the table's latency;
- `--event-clients` connections posting `open` events with wrk at most one per `--event-delay-ms`
  each (a random search_id and a catalog product: the server does not check that the search exists),
  the traffic a page reporting its clicks adds.

Both servers get both loads; only the first writes them. Records written per second come from the
logging server's /metrics (`modaclip_search_log_written_total`) over its turns, with the records
dropped and failed. After the last turn the logging server is stopped (it flushes and checkpoints on
SIGTERM) and the file measured with SQLite's `dbstat` table: the bytes of `searches` with its indexes
over its rows, and of `events` likewise, times a million, give the size per million of each: a linear
extrapolation from the measured rows (B-tree pages grow with the rows; the few fixed pages of the schema
are left out), for pages of `--k` results.

Last, the writer's ceiling, apart from any server: `--capacity` records (half searches of `--k` results,
half events) appended to a fresh file in the server's transactions of up to 1,000 records, as fast as
SQLite takes them.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from serve_load import WRK_DONE, catalog_queries, free_port, start_server, wrk_result, wrk_script

from modaclip.core.catalog_io import read_catalog
from modaclip.feedback import log_schema
from modaclip.feedback.log_schema import EventRecord, SearchRecord
from modaclip.feedback.search_log import BATCH

EVENTS_LUA = """
function init(args)
  math.randomseed(os.time())
  products = {}
  for line in io.lines("%(products)s") do products[#products + 1] = line end
end
function request()
  local id = string.format("%%08x%%08x%%08x%%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff),
    math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  local body = string.format('{"search_id":"%%s","product_id":%%s,"event":"open"}', id,
    products[math.random(#products)])
  return wrk.format("POST", "/api/events", {["Content-Type"] = "application/json"}, body)
end
function delay()
  return %(delay)d
end
"""


def events_command(args: argparse.Namespace, port: int, catalog: Path, workdir: Path) -> list[str]:
    products = workdir / "products.txt"
    products.write_text("\n".join(str(i) for i in read_catalog(catalog, columns=["id"])["id"]) + "\n")
    script = workdir / "events.lua"
    script.write_text((EVENTS_LUA + WRK_DONE) % {"products": products, "delay": args.event_delay_ms})
    url = f"http://127.0.0.1:{port}"
    return ["wrk", "-t1", f"-c{args.event_clients}", "--timeout", "10s", "-s", str(script), url]


def log_counters(port: int) -> dict[str, float]:
    """The logging server's search log counters from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    wanted = {f"modaclip_search_log_{name}_total": name for name in ("written", "dropped", "failed")}
    return {
        wanted[line.split()[0]]: float(line.split()[1])
        for line in text.splitlines()
        if line.split()[0:1] and line.split()[0] in wanted
    }


def turn(searches: list[str], events: list[str], seconds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Both wrk loads at once for `seconds`: the searches' result and the events'."""
    running = [
        subprocess.Popen([*command, f"-d{seconds}s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for command in (searches, events)
    ]
    results = []
    for wrk in running:
        out, err = wrk.communicate(timeout=seconds + 60)
        if wrk.returncode != 0:
            sys.exit(f"wrk failed: {err.strip()}")
        results.append(wrk_result(out))
    return results[0], results[1]


def table_bytes(path: Path) -> dict[str, tuple[int, int]]:
    """(bytes with its indexes, rows) of `searches` and `events`, from SQLite's dbstat table."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        pages = dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
        owners = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master").fetchall())
        sizes = {}
        for table in ("searches", "events"):
            size = sum(size for name, size in pages.items() if owners.get(name, name) == table)
            sizes[table] = (size, conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        return sizes
    finally:
        conn.close()


def writer_capacity(path: Path, records: int, k: int) -> float:
    """Records a second `log_schema.write` appends in batches of the server's size, on a fresh file."""
    conn = log_schema.connect(path)
    shown = [str(10_000 + i) for i in range(k)]
    started = time.perf_counter()
    for start in range(0, records, BATCH):
        ids = [uuid.uuid4().hex for _ in range(min(BATCH, records - start) // 2)]
        now = time.time()
        searches = [
            SearchRecord(
                search_id=i,
                at=now,
                kind="text",
                query="red summer dress",
                filters={},
                session="s1",
                model="m",
                mode="vector",
                offset=0,
                shown=shown,
            )
            for i in ids
        ]
        log_schema.write(conn, searches, [EventRecord(i, shown[3], "open", now) for i in ids])
    elapsed = time.perf_counter() - started
    conn.close()
    return records / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/finetuned")
    parser.add_argument("--embeddings", default="data/embeddings")
    parser.add_argument("--catalog", default="data/clean")
    parser.add_argument("--clients", type=int, default=16, help="search connections (default %(default)s)")
    parser.add_argument("--event-clients", type=int, default=2, help="event connections (default %(default)s)")
    parser.add_argument(
        "--event-delay-ms", type=int, default=5, help="pause between one connection's events (default %(default)s)"
    )
    parser.add_argument("--seconds", type=int, default=20, help="one turn of one variant (default %(default)s)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="turns of each variant, alternating (default %(default)s)"
    )
    parser.add_argument("--k", type=int, default=24, help="hits per search, as the page asks (default %(default)s)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads for the searches (default %(default)s)")
    parser.add_argument(
        "--capacity", type=int, default=200_000, help="records of the writer's ceiling (default %(default)s)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    queries = catalog_queries(Path(args.catalog), 200, seed=0)
    paths = ["--model", args.model, "--embeddings", args.embeddings, "--catalog", args.catalog]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        log_path = workdir / "search-log.sqlite"
        servers = {}
        try:
            for variant, flags in (("log", ["--log", str(log_path)]), ("no log", ["--no-log"])):
                port = free_port()
                servers[variant] = (start_server(args, port, 10_000, [*paths, *flags])[0], port)
            commands = {
                variant: (
                    wrk_script(args, port, queries, workdir),
                    events_command(args, port, Path(args.catalog), workdir),
                )
                for variant, (_, port) in servers.items()
            }
            runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in servers}
            logged = {"written": 0.0, "dropped": 0.0, "failed": 0.0, "seconds": 0.0}
            for repeat in range(args.repeats):
                for variant in list(servers)[:: 1 if repeat % 2 == 0 else -1]:  # ABBA: order effects cancel
                    before = log_counters(servers["log"][1])
                    searched, evented = turn(*commands[variant], args.seconds)
                    if variant == "log":
                        after = log_counters(servers["log"][1])
                        for name in ("written", "dropped", "failed"):
                            logged[name] += after[name] - before[name]
                        logged["seconds"] += searched["seconds"]
                    runs[variant].append({"search": searched, "events": evented})
        finally:
            for server, _ in servers.values():
                server.terminate()
                server.wait(timeout=60)
        sizes = table_bytes(log_path)
        file_mib = log_path.stat().st_size / 2**20
        ceiling = writer_capacity(workdir / "capacity.sqlite", args.capacity, args.k)
    load_after = os.getloadavg()
    machine = platform.processor() or platform.machine()
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {machine}, {os.cpu_count()} CPUs")
    print(f"# load average (1, 5, 15 min) before {load_before}, after {load_after}")
    print(
        f"# {args.clients} search clients (200 popular queries, cache on, k={args.k}) + {args.event_clients} event "
        f"clients (one per {args.event_delay_ms} ms each); {args.repeats} turns of {args.seconds} s per variant, "
        "alternating\n"
    )
    print("| variant (medians of turns) | searches/s | search p50 ms | search p99 ms (range) | events/s ", end="")
    print("| event p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for variant, turns in runs.items():
        search = [t["search"] for t in turns]
        events = [t["events"] for t in turns]
        p99 = [r["p99_ms"] for r in search]
        print(
            f"| {variant} | {statistics.median(r['requests'] / r['seconds'] for r in search):.0f} "
            f"| {statistics.median(r['p50_ms'] for r in search):.1f} "
            f"| {statistics.median(p99):.1f} ({min(p99):.1f}-{max(p99):.1f}) "
            f"| {statistics.median(r['requests'] / r['seconds'] for r in events):.0f} "
            f"| {statistics.median(r['p99_ms'] for r in events):.1f} "
            f"| {sum(r['errors'] for r in search + events)} |"
        )
    print(
        f"\nlog: {logged['written'] / logged['seconds']:.0f} records written/s over its turns "
        f"({logged['written']:.0f} written, {logged['dropped']:.0f} dropped, {logged['failed']:.0f} failed); "
        f"file {file_mib:.1f} MiB after the run"
    )
    for table, (size, rows) in sizes.items():
        if rows:
            print(
                f"{table}: {rows} rows, {size / rows:.0f} bytes a row with its indexes: {size / rows:.0f} MB a million"
            )

    print(f"writer ceiling: {ceiling:,.0f} records/s ({args.capacity} records, batches of {BATCH}, no server)")


if __name__ == "__main__":
    main()
