"""Embedding throughput of the embed stage vs the model's forward pass and a naive loop, and the stage's peak memory.

    PYTHONPATH=src python benchmarks/embed_throughput.py --n 3000 --naive 300
    PYTHONPATH=src python benchmarks/embed_throughput.py --n 20000 --naive 300
    PYTHONPATH=src python benchmarks/embed_throughput.py --n 100000 --pool 100000 --naive 0 \
        --catalog /tmp/modaclip-100k --memory-log /tmp/modaclip-100k-memory.csv     # the 100k bound

The catalog is `--pool` distinct synthetic product shots (the project's generator, `--image-size` px,
as the caption stage stores them) repeated under new ids up to N rows; `--pool N` makes every row a
distinct product. `--catalog DIR` keeps the generated catalog there and reuses it on the next run
(generating 100k products takes ~10 min on 2 cores). The stage runs as a subprocess
(`stages/embed.py`, exactly as `dvc repro` runs it) with an untrained modaclip-tiny (throughput and
memory do not depend on the weights). Its memory is sampled every `--sample-s` seconds over the
whole process tree (the stage and its DataLoader workers): peak RSS, and peak anonymous RSS, which
leaves out the file-backed pages of the vectors memmap that the kernel can write back and drop.
The stage's rate over the whole run includes Python and torch start-up, loading the model and building
the index. Its steady-state rate leaves those apart: the stage is also run over only the first
`--startup-n` rows, and steady state = (N - startup_n) / (its time over N - its time over startup_n).
The forward-only rate is the model alone: `encode_image` over one preprocessed batch of
`--batch-size` images, repeated `--forward-passes` times after one warm-up pass, so the ratio
steady state / forward-only says how close the stage is to the compute limit at that batch.
The naive loop decodes, preprocesses and embeds one image per forward pass with the same model, over
the first `--naive` images.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import torch

from modaclip.core.catalog_io import part_files, read_catalog, write_parts
from modaclip.ingest.synthetic import generate_catalog
from modaclip.model.clip_model import create_base_model, decode_image, load_model, save_model

ROOT = Path(__file__).resolve().parents[1]
PART_ROWS = 5000
MIB = 1024**2


def write_catalog(directory: Path, count: int, pool: int, image_size: int) -> None:
    """`count` rows cycling through `pool` generated images, in parquet parts of PART_ROWS."""
    base = generate_catalog(pool, seed=0, image_size=image_size, defect_rate=0.0)

    def parts():
        for start in range(0, count, PART_ROWS):
            rows = base.iloc[[i % pool for i in range(start, min(start + PART_ROWS, count))]].copy()
            rows["id"] = range(start, start + len(rows))
            yield rows

    write_parts(parts(), directory)


class TreeMemory:
    """Samples RSS and anonymous RSS summed over a process and all its descendants, in a thread."""

    def __init__(self, pid: int, every_s: float, log: Path | None) -> None:
        self.root, self.every_s, self.log = psutil.Process(pid), every_s, log
        self.peak_rss = self.peak_anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        start = time.perf_counter()
        out = self.log.open("w") if self.log else None
        if out:
            out.write("seconds,processes,rss_mib,anon_mib\n")
        while not self._stop.wait(self.every_s):
            rss = anon = processes = 0
            try:
                for process in [self.root, *self.root.children(recursive=True)]:
                    info = process.memory_info()
                    rss, anon, processes = rss + info.rss, anon + info.rss - info.shared, processes + 1
            except psutil.Error:  # a worker exited between listing and reading it
                continue
            self.peak_rss, self.peak_anon = max(self.peak_rss, rss), max(self.peak_anon, anon)
            if out:
                out.write(f"{time.perf_counter() - start:.1f},{processes},{rss / MIB:.0f},{anon / MIB:.0f}\n")
                out.flush()
        if out:
            out.close()


def run_stage(
    work: Path, model: Path, catalog: Path, out: Path, batch_size: int, workers: int, sample_s: float, log: Path | None
) -> tuple[float, TreeMemory]:
    """(seconds, sampled memory) of `stages/embed.py` over the catalog into `out` (new, so nothing is reused)."""
    params = work / "params.yaml"
    params.write_text(f"embed:\n  batch_size: {batch_size}\n  num_workers: {workers}\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    start = time.perf_counter()
    stage = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "stages/embed.py"),
            "--params",
            str(params),
            "--model",
            str(model),
            "--data",
            str(catalog),
            "--out",
            str(out),
        ],
        env=env,
    )
    with TreeMemory(stage.pid, sample_s, log) as memory:
        if stage.wait():
            sys.exit(f"stages/embed.py failed with status {stage.returncode}")
    return time.perf_counter() - start, memory


def write_head(catalog: Path, count: int, directory: Path) -> None:
    """The catalog's first `count` rows (all within its first part) as a catalog of their own."""
    first = part_files(catalog)[0]
    if pq.read_metadata(first).num_rows < count:
        sys.exit(f"--startup-n {count}: more rows than the catalog's first part {first}; pass a smaller one")
    write_parts([next(pq.ParquetFile(first).iter_batches(batch_size=count)).to_pandas()], directory)


@torch.inference_mode()
def forward_rate(model: Path, catalog: Path, batch_size: int, passes: int) -> float:
    """Images per second of `encode_image` alone over one preprocessed batch (decoding and I/O left out)."""
    bundle = load_model(model)
    images = read_catalog(catalog, columns=["image"])["image"].head(batch_size).tolist()
    batch = torch.stack([bundle.preprocess(decode_image(data)) for data in images])
    bundle.model.encode_image(batch, normalize=True)  # warm-up: first-call allocations
    start = time.perf_counter()
    for _ in range(passes):
        bundle.model.encode_image(batch, normalize=True)
    return len(images) * passes / (time.perf_counter() - start)


@torch.inference_mode()
def naive_rate(model: Path, catalog: Path, count: int) -> float:
    """Images per second opening and embedding one image at a time."""
    bundle = load_model(model)
    images = read_catalog(catalog, columns=["image"])["image"].head(count).tolist()
    start = time.perf_counter()
    for data in images:
        bundle.model.encode_image(bundle.preprocess(decode_image(data))[None], normalize=True)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="catalog rows embedded by the stage")
    parser.add_argument("--pool", type=int, default=1000, help="distinct generated images (--pool N: all distinct)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--catalog", type=Path, help="keep the generated catalog here, or reuse it if it exists")
    parser.add_argument("--naive", type=int, default=300, help="images embedded by the naive loop; 0 skips it")
    parser.add_argument(
        "--startup-n", type=int, default=256, help="rows of the second, short stage run that measures start-up"
    )
    parser.add_argument("--forward-passes", type=int, default=10, help="timed forward passes of one batch")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--sample-s", type=float, default=0.5, help="seconds between memory samples")
    parser.add_argument("--memory-log", type=Path, help="write every memory sample to this CSV")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        catalog = args.catalog or work / "catalog"
        if not catalog.is_dir():
            start = time.perf_counter()
            write_catalog(catalog, args.n, args.pool, args.image_size)
            print(
                f"# generated {args.n:,} rows ({args.pool:,} distinct) in {time.perf_counter() - start:.0f} s",
                flush=True,
            )
        if len(read_catalog(catalog, columns=["id"])) != args.n:
            sys.exit(f"{catalog}: holds another number of rows than --n {args.n}; delete it or pass its size")
        save_model(create_base_model("modaclip-tiny", "none", seed=0), work / "model")
        model, sampling = work / "model", (args.batch_size, args.workers, args.sample_s)
        seconds, memory = run_stage(work, model, catalog, work / "embeddings", *sampling, args.memory_log)
        write_head(catalog, args.startup_n, work / "head")
        startup_seconds, _ = run_stage(work, model, work / "head", work / "head-embeddings", *sampling, None)
        forward = forward_rate(model, catalog, args.batch_size, args.forward_passes)
        naive = naive_rate(model, catalog, args.naive) if args.naive else None
    stage = args.n / seconds
    steady = (args.n - args.startup_n) / (seconds - startup_seconds)
    print(
        f"# modaclip-tiny, {args.image_size}px JPEGs, {torch.get_num_threads()} torch threads, "
        f"{os.cpu_count()} cores ({platform.machine()}), {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        f"# stage: {seconds:.1f} s over {args.n} rows, {startup_seconds:.1f} s over the first {args.startup_n} "
        "(start-up, model load, a tiny index)"
    )
    print("| path | images | distinct | batch | workers | images/s | peak RSS MiB | peak anon RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| embed stage (incl. start-up, index) | {args.n} | {min(args.pool, args.n)} | {args.batch_size} | "
        f"{args.workers} | {stage:.0f} | {memory.peak_rss / MIB:.0f} | {memory.peak_anon / MIB:.0f} |"
    )
    print(
        f"| embed stage, steady state (start-up apart) | {args.n - args.startup_n} | {min(args.pool, args.n)} | "
        f"{args.batch_size} | {args.workers} | {steady:.0f} | - | - |"
    )
    print(
        f"| forward pass only (`encode_image`, preprocessed batch) | {args.batch_size * args.forward_passes} | "
        f"{args.batch_size} | {args.batch_size} | - | {forward:.0f} | - | - |"
    )
    if naive:
        print(f"| naive loop, one image per pass | {args.naive} | {args.naive} | 1 | 0 | {naive:.0f} | - | - |")
    print(f"steady state / forward only = {steady / forward:.2f}")
    if naive:
        print(f"stage / naive = {stage / naive:.1f}x, steady state / naive = {steady / naive:.1f}x")


if __name__ == "__main__":
    main()
