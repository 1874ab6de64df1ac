"""Load test of `modaclip serve`: GET /api/search with 16 concurrent clients for 30 s, on 127.0.0.1.

    PYTHONPATH=src python benchmarks/serve_load.py            # the pipeline's outputs in this project
    PYTHONPATH=src python benchmarks/serve_load.py --model /path/models/finetuned --embeddings ... --catalog ...
    PYTHONPATH=src python benchmarks/serve_load.py --scenarios swap --seconds 60   # production moves under load

Starts the server as `modaclip serve` in a subprocess, then drives it with `wrk` (Debian package
`wrk`: a C load generator, so the client takes little of the CPU the server needs) and a Lua
script that cycles through queries made of the catalog's own attribute values. Two scenarios:

- `distinct`: every request a query not seen before (more queries than requests) and the query
  cache off, so every request embeds its text: the worst case.
- `popular`: 200 queries repeated, cache on: a shop's head queries.
- `swap`: a server following production (`--model production`, checking every `--follow-seconds`)
  under the `distinct` load while production is promoted from v1 to v2 and then rolled back: a
  third of `--seconds` at rest, then each move under load until /health names the new version and
  2 s more (at least a third of `--seconds` each). v1 and v2 live in a temporary registry (GTO tags
  in a scratch git repo), their files already restored (by default the same model, embeddings and
  catalog, so v2 costs what v1 does; `--v2-model/--v2-embeddings/--v2-catalog` for another version).

Prints requests/s, p50 and p99 latency per scenario as a Markdown table, with the seconds the server
took to answer /health and its resident memory (with the text encoder process) after the run; for
`swap`, per phase: failed requests, p99 at rest and during each swap, seconds from the tag move to
/health naming the new version, and the peak resident memory (server and text encoders) in the phase.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from modaclip.core.catalog_io import read_catalog

SWAP_TIMEOUT_S = 300  # a swap not seen in /health by then is reported as never

# wrk's summary as one line, `RESULT {json}`, read by `wrk_result` (a %-template: `%%` for a literal %)
WRK_DONE = """
function done(summary, latency, requests)
  local failed = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout + summary.errors.status
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"seconds\\": %%f, \\"p50_ms\\": %%f, \\"p99_ms\\": %%f, \\"errors\\": %%d}\\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000, failed))
end
"""

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
"""


def add_served_arguments(parser: argparse.ArgumentParser) -> None:
    """What the server under test serves: the pipeline's outputs by default."""
    parser.add_argument("--model", default="models/finetuned")
    parser.add_argument("--embeddings", default="data/embeddings")
    parser.add_argument("--catalog", default="data/clean")


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


def start_server(
    args: argparse.Namespace, port: int, query_cache: int, serving: list[str] | None = None, cwd: Path | None = None
) -> tuple[subprocess.Popen, float]:
    """The server, once /health answers, and the seconds that took. `serving`: its --model arguments."""
    if serving is None:
        serving = ["--model", args.model, "--embeddings", args.embeddings, "--catalog", args.catalog]
    command = [sys.executable, "-m", "modaclip.cli", "serve", "--port", str(port), "--query-cache", str(query_cache)]
    started = time.monotonic()
    # stderr to a file, never an unread pipe: a full pipe would stall the server on its next log line
    with tempfile.NamedTemporaryFile("w", prefix="modaclip-serve-load-", suffix=".log", delete=False) as server_log:
        server = subprocess.Popen([*command, *serving], stdout=subprocess.DEVNULL, stderr=server_log, cwd=cwd)
    deadline = started + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"server exited: {Path(server_log.name).read_text().strip()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                print(f"server up: {json.load(response)['model']}", file=sys.stderr)
                return server, time.monotonic() - started
        except OSError:
            time.sleep(0.5)
    server.kill()
    sys.exit("server did not answer /health within 600 s")


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (the text encoder processes), from /proc.

    Every thread's children: a following server starts a new version's text encoder from a worker thread.
    A thread or child that ends while this reads (a swapped-out text encoder) counts as nothing.
    """
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    total_kib = 0
    for process in [pid, *children]:
        try:
            status = Path(f"/proc/{process}/status").read_text().splitlines()
        except FileNotFoundError:
            continue
        total_kib += sum(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))  # none: a zombie
    return total_kib / 1024


def wrk_script(args: argparse.Namespace, port: int, queries: list[str], workdir: Path) -> list[str]:
    """The wrk command line (without its duration) for these queries, after a 3 s warm-up."""
    queries_file = workdir / "queries.txt"
    queries_file.write_text("\n".join(urllib.parse.quote(q) for q in queries) + "\n")
    script = workdir / "search.lua"
    script.write_text((LUA + WRK_DONE) % {"queries": queries_file, "threads": args.wrk_threads, "k": args.k})
    url = f"http://127.0.0.1:{port}"
    warm = subprocess.run(["wrk", "-t1", "-c1", "-d3s", "-s", str(script), url], capture_output=True, text=True)
    if warm.returncode != 0:
        sys.exit(f"wrk failed: {warm.stderr.strip()}")
    return ["wrk", f"-t{args.wrk_threads}", f"-c{args.clients}", "--timeout", "10s", "-s", str(script), url]


def wrk_result(stdout: str) -> dict[str, float]:
    line = next(line for line in stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def run_wrk(args: argparse.Namespace, port: int, queries: list[str], workdir: Path) -> dict[str, float]:
    command = wrk_script(args, port, queries, workdir)
    done = subprocess.run([*command, f"-d{args.seconds}s"], capture_output=True, text=True, check=True)
    return wrk_result(done.stdout)


def served_version(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return json.load(response)["version"]
    except OSError:
        return None


def registry_project(workdir: Path, args: argparse.Namespace) -> Path:
    """A scratch git repo whose registry has v1 in production and v2 staged, their files already restored."""
    from modaclip.core.git import git
    from modaclip.core.paths import SEARCH_PATHS
    from modaclip.registry import model_versions

    root = workdir / "registry"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "benchmark@example.com")
    git(root, "config", "user.name", "benchmark")
    folders = {
        "v1.0.0": {"model": args.model, "embeddings": args.embeddings, "catalog": args.catalog},
        "v2.0.0": {
            "model": args.v2_model or args.model,
            "embeddings": args.v2_embeddings or args.embeddings,
            "catalog": args.v2_catalog or args.catalog,
        },
    }
    for version, stage in (("v1.0.0", model_versions.PROD_STAGE), ("v2.0.0", model_versions.STAGING_STAGE)):
        (root / "version").write_text(version)
        git(root, "add", "version")
        git(root, "commit", "-qm", version)
        model_versions.register(root, git(root, "rev-parse", "HEAD").strip(), version, stage=stage, reason="benchmark")
        for role, path in SEARCH_PATHS.items():
            restored = root / model_versions.CACHE_DIR / version / path
            restored.parent.mkdir(parents=True, exist_ok=True)
            restored.symlink_to(Path(folders[version][role]).resolve())
    return root


def load_phase(
    command: list[str], port: int, server: subprocess.Popen, min_s: float, move: Any = None, expect: str = ""
) -> dict[str, Any]:
    """wrk for at least `min_s`; with `move`, production is moved 2 s in and the phase runs until /health
    names `expect` and 2 s more. The server's resident memory is sampled every 0.1 s."""
    wrk = subprocess.Popen([*command, "-d3600s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    peak, moved_at, swap_s = 0.0, None, None
    while time.monotonic() - started < min_s + SWAP_TIMEOUT_S:
        peak = max(peak, rss_mib(server.pid))
        elapsed = time.monotonic() - started
        if move is not None and moved_at is None and elapsed >= 2:
            move()
            moved_at = time.monotonic()
        if moved_at is not None and swap_s is None and served_version(port) == expect:
            swap_s = time.monotonic() - moved_at
        settled = move is None or (swap_s is not None and time.monotonic() - moved_at - swap_s >= 2)
        if elapsed >= min_s and settled:
            break
        time.sleep(0.1)
    wrk.send_signal(signal.SIGINT)  # wrk stops and reports what it measured
    out, err = wrk.communicate(timeout=30)
    if wrk.returncode != 0:
        sys.exit(f"wrk failed: {err.strip()}")
    return {**wrk_result(out), "swap_s": swap_s, "peak_mib": peak}


def swap_scenario(args: argparse.Namespace, queries: list[str], workdir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Rest, promote v1 -> v2, rollback v2 -> v1, each under the same load on one following server."""
    from modaclip.registry import model_versions

    root = registry_project(workdir, args)
    port = free_port()
    following = ["--model", "production", "--follow-seconds", str(args.follow_seconds)]
    server, _ = start_server(args, port, 0, following, cwd=root)
    try:
        command = wrk_script(args, port, queries, workdir)
        phase_s = args.seconds / 3
        return [
            ("at rest (v1)", load_phase(command, port, server, phase_s)),
            (
                "promote v1 -> v2",
                load_phase(command, port, server, phase_s, lambda: model_versions.promote(root, "v2"), "v2.0.0"),
            ),
            (
                "rollback v2 -> v1",
                load_phase(command, port, server, phase_s, lambda: model_versions.rollback(root), "v1.0.0"),
            ),
        ]
    finally:
        server.terminate()
        server.wait(timeout=30)


def print_swap_table(phases: list[tuple[str, dict[str, Any]]], follow_seconds: int) -> None:
    print(f"# swap: production moves under load; the server checks the registry every {follow_seconds} s\n")
    print("| phase | requests | requests/s | p50 ms | p99 ms | failed | tag move -> /health s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in phases:
        swap = "-" if name.startswith("at rest") else "never" if r["swap_s"] is None else f"{r['swap_s']:.1f}"
        print(
            f"| {name} | {r['requests']} | {r['requests'] / r['seconds']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['errors']} | {swap} | {r['peak_mib']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_served_arguments(parser)
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections (default %(default)s)")
    parser.add_argument("--seconds", type=int, default=30, help="duration of each scenario (default %(default)s)")
    parser.add_argument("--k", type=int, default=24, help="hits per request, as the page asks (default %(default)s)")
    parser.add_argument(
        "--wrk-threads", type=int, default=1, help="wrk threads (default %(default)s: leaves the cores to the server)"
    )
    parser.add_argument(
        "--scenarios", nargs="+", choices=["distinct", "popular", "swap"], default=["distinct", "popular"]
    )
    parser.add_argument(
        "--follow-seconds", type=int, default=5, help="swap: the server's registry check interval (default %(default)s)"
    )
    parser.add_argument("--v2-model", help="swap: v2's model folder (default: --model's)")
    parser.add_argument("--v2-embeddings", help="swap: v2's embeddings (default: --embeddings)")
    parser.add_argument("--v2-catalog", help="swap: v2's catalog (default: --catalog)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    distinct = catalog_queries(Path(args.catalog), 50_000, seed=0)
    plans = {"distinct": (distinct, 0), "popular": (distinct[:200], 10_000)}
    rows = []
    swap_phases = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        if "swap" in args.scenarios:
            swap_phases = swap_scenario(args, distinct, Path(tmp))
        for name in [name for name in args.scenarios if name != "swap"]:
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
    if swap_phases:
        print_swap_table(swap_phases, args.follow_seconds)
    if not rows:
        return
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
