"""Why `modaclip serve` embeds text queries in a child process: a forward pass beside busy Python threads.

    PYTHONPATH=src python benchmarks/gil_contention.py [--model models/finetuned]

torch releases the GIL inside each operator and must take it back after each one. When another
thread is running Python code (a web server's event loop under load), every take-back can wait for
the interpreter's switch interval (5 ms). This times the server's text encoder on a batch of 8
queries, in this process and in a `TextEncoderProcess`, with 0, 1 and 4 threads spinning in pure
Python beside it, and prints a Markdown table of milliseconds per batch.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone

import numpy as np
import torch

from modaclip.model.clip_model import load_model
from modaclip.model.towers import unpadded_text_encoder
from modaclip.serve.text_encoder_process import TextEncoderProcess

QUERIES = [
    f"women {colour} casual dress for summer"
    for colour in ("red", "blue", "black", "white", "green", "pink", "grey", "navy")
]


@contextmanager
def busy_python_threads(count: int) -> Iterator[None]:
    """`count` threads that hold the GIL whenever the interpreter lets them, as a loaded event loop does."""
    stop = threading.Event()

    def spin() -> None:
        total = 0
        while not stop.is_set():
            for i in range(1000):
                total += i

    threads = [threading.Thread(target=spin, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def ms_per_batch(encode: Callable[[Sequence[str]], np.ndarray], seconds: float) -> float:
    for _ in range(3):
        encode(QUERIES)
    batches, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        encode(QUERIES)
        batches += 1
    return (time.perf_counter() - start) / batches * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/finetuned")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per cell (default %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    in_process = unpadded_text_encoder(load_model(args.model))
    rows = []
    with TextEncoderProcess(args.model, threads=1) as child:
        for busy in (0, 1, 4):
            with busy_python_threads(busy):
                rows.append((busy, ms_per_batch(in_process, args.seconds), ms_per_batch(child, args.seconds)))
    print(
        f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, model {args.model}"
    )
    print(
        f"# a batch of {len(QUERIES)} queries, 1 torch thread, "
        f"interpreter switch interval {1000 * sys.getswitchinterval():.0f} ms\n"
    )
    print("| busy Python threads | in this process, ms | in a child process, ms |")
    print("|---:|---:|---:|")
    for busy, here, there in rows:
        print(f"| {busy} | {here:.1f} | {there:.1f} |")


if __name__ == "__main__":
    main()
