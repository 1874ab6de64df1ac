"""Overload test of `modaclip serve`: normal clients beside slow ones that send their uploads a byte at a time.

    PYTHONPATH=src python benchmarks/serve_overload.py                  # 60 s a phase, 16 + 256 clients
    PYTHONPATH=src python benchmarks/serve_overload.py --seconds 5 --slow-clients 32   # a quick check

Starts `modaclip serve` (its default limits) on 127.0.0.1 in a subprocess, then runs two phases
against the same server:

- `quiet`: `--normal-clients` clients, each a loop of text searches (every 4th request a
  similar-product search, every 8th a small image upload), as fast as the server answers.
- `slow`: the same normal clients, plus `--slow-clients` clients in a separate process that each
  send an upload's headers, then its body one byte every `--byte-interval` seconds, until the server
  answers (a 408 at its body deadline) or closes, and start over.

Prints per phase the normal clients' requests, p50 and p99 latency and error counts (503s of
shedding apart from other 5xx), the slow clients' outcomes, `/health` latency (polled every 0.5 s
throughout), and the server's resident memory (with its text encoder process) before, at peak and
after. The goals: normal p99 within 3x of the quiet phase's, memory bounded, no 5xx but shedding's 503.
Loopback only; every phase stops at its deadline and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
from serve_load import add_served_arguments, catalog_queries, free_port, rss_mib

from modaclip.core.catalog_io import read_catalog

HOST = "127.0.0.1"  # loopback only, by design
MAX_CLIENTS = 2048


@dataclass
class Samples:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    def add(self, started: float, status: int) -> None:
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.statuses[status] += 1

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(q) - 1]


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "modaclip.cli", "serve", "--host", HOST, "--port", str(port)]
    command += ["--model", args.model, "--embeddings", args.embeddings, "--catalog", args.catalog]
    log = Path(args.server_log).open("w")  # noqa: SIM115 (open for the server's lifetime)
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"server exited: see {args.server_log}")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    sys.exit("server did not answer /health within 600 s")


async def normal_client(
    client: httpx.AsyncClient, number: int, queries: list[str], ids: list[int], image: bytes, until: float, out: Samples
) -> None:
    position = number
    while time.monotonic() < until:
        position += 1
        started = time.perf_counter()
        try:
            if position % 8 == 0:
                files = {"image": ("photo.jpg", image, "image/jpeg")}
                response = await client.post("/api/similar", params={"k": 24}, files=files)
            elif position % 4 == 0:
                response = await client.get(f"/api/similar/{ids[position % len(ids)]}", params={"k": 24})
            else:
                response = await client.get("/api/search", params={"q": queries[position % len(queries)], "k": 24})
            out.add(started, response.status_code)
        except httpx.HTTPError:
            out.add(started, 0)  # connection error or client timeout


async def health_prober(base: str, until: float, out: Samples) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                out.add(started, (await client.get("/health")).status_code)
            except httpx.HTTPError:
                out.add(started, 0)
            await asyncio.sleep(0.5)


async def slow_client(port: int, interval: float, until: float, outcomes: Counter[str]) -> None:
    """Uploads a multipart body a byte at a time, over and over, until `until`."""
    boundary = "slowslowslow"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n{'x' * 2000}\r\n--{boundary}--\r\n"
    ).encode()
    head = (
        f"POST /api/similar HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            outcomes["connect failed"] += 1
            await asyncio.sleep(interval)
            continue
        reply = asyncio.ensure_future(reader.read(64))
        try:
            writer.write(head)
            for byte in body:
                if reply.done() or time.monotonic() >= until:
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.wait([reply], timeout=interval)
            if not reply.done():
                await asyncio.wait([reply], timeout=max(0.1, until - time.monotonic()))
            first = reply.result() if reply.done() else b""
            outcomes[first.split(b"\r\n")[0].decode(errors="replace")[9:12] or "closed"] += 1
        except (OSError, asyncio.TimeoutError):
            outcomes["closed"] += 1
        finally:
            reply.cancel()
            writer.close()


def slow_clients_process(
    port: int, clients: int, interval: float, seconds: float, results: multiprocessing.Queue
) -> None:
    outcomes: Counter[str] = Counter()

    async def run() -> None:
        until = time.monotonic() + seconds
        await asyncio.gather(*(slow_client(port, interval, until, outcomes) for _ in range(clients)))

    asyncio.run(run())
    results.put(dict(outcomes))


async def phase(
    args: argparse.Namespace, base: str, queries: list[str], ids: list[int], image: bytes
) -> tuple[Samples, Samples]:
    normal, health = Samples(), Samples()
    until = time.monotonic() + args.seconds
    limits = httpx.Limits(max_connections=args.normal_clients, max_keepalive_connections=args.normal_clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        await asyncio.gather(
            health_prober(base, until, health),
            *(normal_client(client, n, queries, ids, image, until, normal) for n in range(args.normal_clients)),
        )
    return normal, health


def watch_memory(pid: int, stop: float, peak: list[float]) -> None:
    while time.monotonic() < stop:
        peak[0] = max(peak[0], rss_mib(pid))
        time.sleep(0.25)


def row(name: str, normal: Samples, health: Samples, seconds: float) -> str:
    total = sum(normal.statuses.values())
    shed = normal.statuses[503]
    other_5xx = sum(n for status, n in normal.statuses.items() if status >= 500 and status != 503)
    errors = sum(n for status, n in normal.statuses.items() if status >= 400 or status == 0)
    return (
        f"| {name} | {total} | {total / seconds:.0f} | {normal.percentile(50):.1f} | {normal.percentile(99):.1f} "
        f"| {errors / max(total, 1):.2%} | {shed} | {other_5xx} | {health.percentile(50):.1f} | "
        f"{health.percentile(99):.1f} | {max(health.latencies_ms, default=float('nan')):.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_served_arguments(parser)
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of each phase (default %(default)s)")
    parser.add_argument("--normal-clients", type=int, default=16, help="(default %(default)s)")
    parser.add_argument("--slow-clients", type=int, default=256, help="(default %(default)s)")
    parser.add_argument(
        "--byte-interval", type=float, default=0.1, help="seconds between a slow client's bytes (default %(default)s)"
    )
    parser.add_argument(
        "--server-log", default="/tmp/modaclip-serve-overload.log", help="the server's stderr (default %(default)s)"
    )
    args = parser.parse_args()
    if not 0 < args.seconds <= 600 or not 0 < args.normal_clients + args.slow_clients <= MAX_CLIENTS:
        sys.exit(f"--seconds must be in (0, 600] and the clients together in (0, {MAX_CLIENTS}]")
    queries = catalog_queries(Path(args.catalog), 50_000, seed=0)
    catalog = read_catalog(args.catalog, columns=["id", "image"]).head(200)
    ids, image = [int(i) for i in catalog["id"]], bytes(catalog["image"].iloc[0])
    port = free_port()
    base = f"http://{HOST}:{port}"
    load_before = os.getloadavg()
    server = start_server(args, port)
    try:
        rss_before = rss_mib(server.pid)
        quiet = asyncio.run(phase(args, base, queries, ids, image))
        results: multiprocessing.Queue = multiprocessing.Queue()
        slow = multiprocessing.Process(
            target=slow_clients_process, args=(port, args.slow_clients, args.byte_interval, args.seconds, results)
        )
        peak = [rss_mib(server.pid)]
        slow.start()
        watcher = threading.Thread(target=watch_memory, args=(server.pid, time.monotonic() + args.seconds, peak))
        watcher.start()
        loaded = asyncio.run(phase(args, base, queries, ids, image))
        watcher.join()
        slow.join(timeout=args.seconds + 30)
        outcomes = results.get(timeout=10) if not results.empty() else {}
        if slow.is_alive():
            slow.kill()
        time.sleep(2)
        rss_after = rss_mib(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            sys.exit("the server did not stop within 30 s of SIGTERM")
    print(
        f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; load average before {load_before}, after {os.getloadavg()}"
    )
    print(
        f"# {args.normal_clients} normal clients, {args.seconds:g} s a phase; slow phase adds {args.slow_clients} "
        f"clients uploading a byte every {args.byte_interval:g} s\n"
    )
    print(
        "| phase | normal requests | req/s | p50 ms | p99 ms | error rate | 503 shed | other 5xx "
        "| /health p50 ms | /health p99 ms | /health max ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(row("quiet", *quiet, args.seconds))
    print(row(f"+ {args.slow_clients} slow", *loaded, args.seconds))
    ratio = loaded[0].percentile(99) / quiet[0].percentile(99)
    print(f"\nslow clients' outcomes (status of the answer, or closed): {dict(sorted(outcomes.items()))}")
    print(
        f"server RSS (with its text encoder): before {rss_before:.0f} MiB, peak {peak[0]:.0f} MiB, "
        f"after {rss_after:.0f} MiB"
    )
    print(f"normal p99 with slow clients / quiet: {ratio:.2f}x (goal: at most 3x)")


if __name__ == "__main__":
    main()
