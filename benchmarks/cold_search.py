"""Cold `modaclip search` wall time: the onnxruntime path, the torch path, and `import torch` for reference.

    PYTHONPATH=src python benchmarks/cold_search.py [--runs 10] [--embeddings data/embeddings]

Each run is a fresh process, as a user's command is; the commands take turns (run 1 of each, then
run 2 of each, ...) so a change in machine load hits all of them alike, after one discarded
warm-up run each (the page cache then holds the files, as it does for a user's second search).
The torch path is the same command over a copy of the embeddings folder without its `onnx/`
towers (files linked, not copied), so search falls back to torch as it does for a folder made
before the towers existed. Prints a Markdown table of min and median seconds, with the load
average before and after: run it on a quiet machine. With hyperfine the same comparison is

    hyperfine -N -w 1 -r 10 'python -c "import torch"' 'modaclip search "blue shirt" -k 3' \\
        'modaclip search "blue shirt" -k 3 --embeddings /tmp/no-onnx'
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from modaclip.embed.stored import TOWERS_DIR


def without_towers(embeddings: Path, into: Path) -> Path:
    """A folder with links to every file of `embeddings` except its ONNX towers."""
    into.mkdir()
    for path in embeddings.iterdir():
        if path.name != TOWERS_DIR:
            (into / path.name).symlink_to(path.resolve())
    return into


def wall_seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each command (default %(default)s)")
    parser.add_argument("--embeddings", type=Path, default=Path("data/embeddings"))
    parser.add_argument("--query", default="blue shirt")
    args = parser.parse_args()
    if not (args.embeddings / TOWERS_DIR).is_dir():
        sys.exit(f"{args.embeddings} has no {TOWERS_DIR}/ towers: run `dvc repro embed` first")
    search = [sys.executable, "-m", "modaclip.cli", "search", args.query, "-k", "3"]
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
            "modaclip search, onnxruntime": search,
            "modaclip search, torch": [*search, "--embeddings", str(without_towers(args.embeddings, Path(tmp, "e")))],
        }
        load_before = os.getloadavg()[0]
        for command in commands.values():
            wall_seconds(command)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                times[name].append(wall_seconds(command))
        load_after = os.getloadavg()[0]
    print(
        f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load_before:.2f} before, {load_after:.2f} after; "
        f"{args.runs} interleaved runs each after a warm-up; query {args.query!r}\n"
    )
    print("| command | min s | median s |")
    print("|---|---:|---:|")
    for name, seconds in times.items():
        print(f"| `{name}` | {min(seconds):.2f} | {statistics.median(seconds):.2f} |")
    onnx, torch_path = (statistics.median(times[n]) for n in ("modaclip search, onnxruntime", "modaclip search, torch"))
    print(f"\nonnxruntime path / torch path (medians): {onnx / torch_path:.2f}")
    print(f"commands: {'; '.join(shlex.join(c) for c in commands.values())}")


if __name__ == "__main__":
    main()
