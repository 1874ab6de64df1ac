"""Embedding throughput of the embed stage vs a naive one-image-at-a-time loop, and the stage's peak memory.

    PYTHONPATH=src python benchmarks/embed_throughput.py --n 20000 --naive 300

The catalog is `--pool` distinct synthetic product shots repeated under new ids up to N rows
(decoding and embedding cost the same as N distinct shots; generating 100k would take longer than
the benchmark). The stage runs as a subprocess (`stages/embed.py`, exactly as `dvc repro` runs it)
so its peak RSS is its own; the naive loop decodes, preprocesses and embeds one image per forward
pass with the same model, over the first `--naive` images, and its rate is per image.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from modaclip.catalog_io import read_catalog, write_parts
from modaclip.clip_model import create_base_model, decode_image, load_model, save_model
from modaclip.synthetic import generate_catalog

ROOT = Path(__file__).resolve().parents[1]
PART_ROWS = 5000


def write_catalog(directory: Path, count: int, pool: int, image_size: int) -> None:
    """`count` rows cycling through `pool` generated images, in parquet parts of PART_ROWS."""
    base = generate_catalog(pool, seed=0, image_size=image_size, defect_rate=0.0)

    def parts():
        for start in range(0, count, PART_ROWS):
            rows = base.iloc[[i % pool for i in range(start, min(start + PART_ROWS, count))]].copy()
            rows["id"] = range(start, start + len(rows))
            yield rows

    write_parts(parts(), directory)


def run_stage(work: Path, model: Path, catalog: Path, batch_size: int, workers: int) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of `stages/embed.py` over the catalog."""
    params = work / "params.yaml"
    params.write_text(f"embed:\n  batch_size: {batch_size}\n  num_workers: {workers}\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "stages/embed.py"), "--params", str(params), "--model", str(model),
         "--data", str(catalog), "--out", str(work / "embeddings")],
        check=True, env=env,
    )
    seconds = time.perf_counter() - start
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


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
    parser.add_argument("--pool", type=int, default=1000, help="distinct generated images")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--naive", type=int, default=300, help="images embedded by the naive loop")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        save_model(create_base_model("modaclip-tiny", "none", seed=0), work / "model")
        write_catalog(work / "catalog", args.n, args.pool, args.image_size)
        seconds, peak = run_stage(work, work / "model", work / "catalog", args.batch_size, args.workers)
        naive = naive_rate(work / "model", work / "catalog", args.naive)
    stage = args.n / seconds
    print(f"# modaclip-tiny, {args.image_size}px JPEGs, {torch.get_num_threads()} torch threads, "
          f"{os.cpu_count()} cores ({platform.machine()}), {date.today()}")
    print("| path | images | batch | workers | images/s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| embed stage (incl. start-up, index) | {args.n} | {args.batch_size} | {args.workers} | {stage:.0f} | {peak:.0f} |")
    print(f"| naive loop, one image per pass | {args.naive} | 1 | 0 | {naive:.0f} | - |")
    print(f"stage / naive = {stage / naive:.1f}x")


if __name__ == "__main__":
    main()
