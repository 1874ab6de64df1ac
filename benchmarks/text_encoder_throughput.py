"""Text-query throughput of the server's encoder: onnxruntime against torch, on the same queries and threads.

    PYTHONPATH=src python benchmarks/text_encoder_throughput.py [--model models/finetuned] \\
        [--towers data/embeddings/onnx] [--threads 1] [--seconds 5]

The torch side is `unpadded_text_encoder` (what `modaclip serve`'s text encoder process runs when
there are no towers), the onnxruntime side `OnnxEmbedder.embed_texts` (what it runs with them),
both cutting the padding after the batch's last query. Each cell embeds the same 64 distinct
catalog-style queries, in batches of 1 and of 16 (the server batches concurrent requests), for
`--seconds`, after a warm-up, on `--threads` threads each. Prints queries per second as Markdown.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

import numpy as np
import torch

from modaclip.model.clip_model import load_model
from modaclip.model.onnx_runtime import OnnxEmbedder
from modaclip.model.towers import unpadded_text_encoder

QUERIES = [
    f"{gender} {colour} {kind}"
    for gender in ("women", "men")
    for colour in ("red", "navy blue", "black", "white")
    for kind in ("casual summer dress", "leather shoes", "slim fit jeans", "cotton t-shirt with print")
]


def queries_per_second(encode: Callable[[Sequence[str]], np.ndarray], batch: int, seconds: float) -> float:
    batches = [QUERIES[i : i + batch] for i in range(0, len(QUERIES), batch)]
    for texts in batches[:3]:
        encode(texts)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for texts in batches:
            encode(texts)
            done += len(texts)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/finetuned")
    parser.add_argument("--towers", default="data/embeddings/onnx")
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per cell (default %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    encoders = {
        "torch (unpadded_text_encoder)": unpadded_text_encoder(load_model(args.model)),
        "onnxruntime (OnnxEmbedder)": OnnxEmbedder(args.towers, threads=args.threads).embed_texts,
    }
    load_before = os.getloadavg()[0]
    rows = [(name, [queries_per_second(encode, b, args.seconds) for b in (1, 16)]) for name, encode in encoders.items()]
    print(
        f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {args.threads} thread(s), model {args.model}, "
        f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after\n"
    )
    print("| encoder | queries/s, batches of 1 | queries/s, batches of 16 |")
    print("|---|---:|---:|")
    for name, (single, batched) in rows:
        print(f"| {name} | {single:.0f} | {batched:.0f} |")


if __name__ == "__main__":
    main()
