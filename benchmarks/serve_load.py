"""Load test of `modaclip serve`: GET /api/search with 16 concurrent clients for 30 s, on 127.0.0.1.

    PYTHONPATH=src python benchmarks/serve_load.py            # the pipeline's outputs in this project
    PYTHONPATH=src python benchmarks/serve_load.py --model /path/models/finetuned --embeddings ... --catalog ...

Starts the server as `modaclip serve` in a subprocess, then drives it with `wrk` (Debian package
`wrk`: a C load generator, so the client takes little of the CPU the server needs) and a Lua
script that cycles through queries made of the catalog's own attribute values. Two scenarios:

- `distinct`: every request a query not seen before (more queries than requests) and the query
  cache off, so every request embeds its text: the worst case.
- `popular`: 200 queries repeated, cache on: a shop's head queries.

Prints requests/s, p50 and p99 latency per scenario as a Markdown table, with the seconds the server
took to answer /health and its resident memory (with the text encoder process) after the run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from modaclip.core.catalog_io import read_catalog

LUA = """
local next_thread = 0
function setup(thread)
  thread:set("id", next_thread)
  next_thread = next_thread + 1
end
function init(args)
  queries = {}
  for line in io.lines("%(queries)s") do queries[#queries + 1] = line end
  position = id
end
function request()
  position = position + %(threads)d
  return wrk.format("GET", "/api/search?k=%(k)d&q=" .. queries[(position %% #queries) + 1])
end
function done(summary, latency, requests)
  local failed = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout + summary.errors.status
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"seconds\\": %%f, \\"p50_ms\\": %%f, \\"p99_ms\\": %%f, \\"errors\\": %%d}\\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000, failed))
end
"""


def catalog_queries(catalog_dir: Path, count: int, seed: int) -> list[str]:
    """Distinct queries such as "women red casual dresses", made of the catalog's own attribute values."""
    info = read_catalog(catalog_dir, columns=["gender", "baseColour", "articleType", "usage", "season"]).dropna()
    values = {column: sorted(info[column].astype(str).str.lower().unique()) for column in info.columns}
    shapes = [
        ("baseColour", "articleType"),
        ("gender", "baseColour", "articleType"),
        ("baseColour", "usage", "articleType"),
        ("gender", "usage", "baseColour", "articleType"),
        ("season", "gender", "baseColour", "usage", "articleType"),
    ]
    queries = [" ".join(words) for shape in shapes for words in itertools.product(*(values[c] for c in shape))]
    random.Random(seed).shuffle(queries)
    return queries[:count]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args: argparse.Namespace, port: int, query_cache: int) -> tuple[subprocess.Popen, float]:
    """The server, once /health answers, and the seconds that took."""
    command = [
        sys.executable,
        "-m",
        "modaclip.cli",
        "serve",
        "--port",
        str(port),
        "--query-cache",
        str(query_cache),
        "--model",
        args.model,
        "--embeddings",
        args.embeddings,
        "--catalog",
        args.catalog,
    ]
    started = time.monotonic()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = started + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"server exited: {server.stderr.read().strip()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                print(f"server up: {json.load(response)['model']}", file=sys.stderr)
                return server, time.monotonic() - started
        except OSError:
            time.sleep(0.5)
    server.kill()
    sys.exit("server did not answer /health within 600 s")


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (the text encoder process), from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total_kib = 0
    for process in [pid, *map(int, children)]:
        status = Path(f"/proc/{process}/status").read_text()
        total_kib += int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
    return total_kib / 1024


def run_wrk(args: argparse.Namespace, port: int, queries: list[str], workdir: Path) -> dict[str, float]:
    queries_file = workdir / "queries.txt"
    queries_file.write_text("\n".join(urllib.parse.quote(q) for q in queries) + "\n")
    script = workdir / "search.lua"
    script.write_text(LUA % {"queries": queries_file, "threads": args.wrk_threads, "k": args.k})
    url = f"http://127.0.0.1:{port}"
    warm = subprocess.run(["wrk", "-t1", "-c1", "-d3s", "-s", str(script), url], capture_output=True, text=True)
    if warm.returncode != 0:
        sys.exit(f"wrk failed: {warm.stderr.strip()}")
    done = subprocess.run(
        [
            "wrk",
            f"-t{args.wrk_threads}",
            f"-c{args.clients}",
            f"-d{args.seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/finetuned")
    parser.add_argument("--embeddings", default="data/embeddings")
    parser.add_argument("--catalog", default="data/clean")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections (default %(default)s)")
    parser.add_argument("--seconds", type=int, default=30, help="duration of each scenario (default %(default)s)")
    parser.add_argument("--k", type=int, default=24, help="hits per request, as the page asks (default %(default)s)")
    parser.add_argument(
        "--wrk-threads", type=int, default=1, help="wrk threads (default %(default)s: leaves the cores to the server)"
    )
    parser.add_argument("--scenarios", nargs="+", choices=["distinct", "popular"], default=["distinct", "popular"])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    distinct = catalog_queries(Path(args.catalog), 50_000, seed=0)
    plans = {"distinct": (distinct, 0), "popular": (distinct[:200], 10_000)}
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.scenarios:
            queries, cache = plans[name]
            port = free_port()
            server, start_s = start_server(args, port, cache)
            try:
                result = run_wrk(args, port, queries, Path(tmp))
                memory = rss_mib(server.pid)
            finally:
                server.terminate()
                server.wait(timeout=30)
            rows.append((name, len(queries), cache, result, start_s, memory))
    load_after = os.getloadavg()
    print(
        f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(f"# load average (1, 5, 15 min) before {load_before}, after {load_after}")
    print(
        f"# {args.clients} clients, {args.seconds} s per scenario, k={args.k}, wrk with {args.wrk_threads} thread(s)\n"
    )
    print(
        "| scenario | distinct queries | query cache | requests | requests/s "
        "| p50 ms | p99 ms | errors | start-up s | RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, count, cache, r, start_s, memory in rows:
        print(
            f"| {name} | {count} | {cache or 'off'} | {r['requests']} | {r['requests'] / r['seconds']:.0f} "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['errors']} | {start_s:.0f} | {memory:.0f} |"
        )


if __name__ == "__main__":
    main()
