"""Caption and embed throughput, local engine vs Ray on a local instance, on the same generated catalog.

    PYTHONPATH=src python benchmarks/ray_engines.py --n 5000 --repeats 3 --catalog /tmp/modaclip-ray-bench
    PYTHONPATH=src python benchmarks/ray_engines.py --n 300 --repeats 1          # a quick check that it runs
    PYTHONPATH=src python benchmarks/ray_engines.py --stages embed --arch ViT-B-32 --image-size 224 --n 20000

The raw catalog is `--n` distinct products from the project's generator (`--raw-size` px images, no
defects) in raw parts of `--part-rows` rows, as `download` writes them. Each run is a fresh Python
process that calls the stage's engine function exactly as the stage does, so every Ray run pays
for starting its local instance and workers; the child reports that start-up apart from the work.
Runs are interleaved (local, ray, local, ray, ...) so a change in the machine's load hits both
engines alike; the table gives the minimum and median of each. `embed` embeds the clean catalog the
local caption run wrote, from scratch every run (no previous vectors), with an untrained `--arch`
(throughput does not depend on the weights), `embed.batch_size` `--batch`, on the GPU when there is one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("local", "ray")


def child(stage: str, engine: str, catalog: Path, batch: int) -> None:
    """One timed run in this process; prints {"start_s", "work_s"} as JSON on the last line."""
    from modaclip.core.config import CaptionParams, EmbedParams, RayParams
    from modaclip.core.ray_cluster import ray_session
    from modaclip.curate.engines import run_caption
    from modaclip.embed.engines import run_embed

    cluster = RayParams()  # address local: an instance sized to the machine, as the stages start it
    out = catalog / f"{stage}-{engine}"
    shutil.rmtree(out, ignore_errors=True)
    began = time.perf_counter()
    with ray_session(cluster) if engine == "ray" else contextlib.nullcontext():
        started = time.perf_counter()
        if stage == "caption":
            run_caption(catalog / "raw", out, CaptionParams(engine=engine), cluster)
        else:
            run_embed(
                catalog / "model", catalog / "clean", out, EmbedParams(engine=engine, batch_size=batch), cluster=cluster
            )
        done = time.perf_counter()
    print(json.dumps({"start_s": started - began, "work_s": done - started}))


def prepare(catalog: Path, count: int, raw_size: int, part_rows: int, arch: str, image_size: int) -> None:
    """The raw catalog, its clean catalog (local engine) and an untrained model, unless already there."""
    from modaclip.core.catalog_io import write_parts
    from modaclip.core.config import CaptionParams
    from modaclip.curate.clean_and_caption import clean_and_caption
    from modaclip.ingest.synthetic import generate_catalog
    from modaclip.model.clip_model import create_base_model, save_model

    stamp = catalog / "catalog.json"
    wanted = {"n": count, "raw_size": raw_size, "part_rows": part_rows, "arch": arch, "image_size": image_size}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return
    shutil.rmtree(catalog, ignore_errors=True)
    catalog.mkdir(parents=True)
    print(f"generating {count} products at {raw_size} px ...", flush=True)
    raw = generate_catalog(count, seed=0, image_size=raw_size, defect_rate=0.0)
    write_parts((raw.iloc[start : start + part_rows] for start in range(0, count, part_rows)), catalog / "raw")
    clean_and_caption(catalog / "raw", catalog / "clean", CaptionParams(image_size=image_size))
    save_model(create_base_model(arch, "none", seed=0), catalog / "model")
    stamp.write_text(json.dumps(wanted))


def timed_run(stage: str, engine: str, catalog: Path, batch: int) -> dict[str, float]:
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", stage, engine, "--catalog", str(catalog), "--batch", str(batch)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    if done.returncode != 0:
        raise SystemExit(f"{stage} on {engine} failed:\n{done.stderr[-3000:]}")
    phases = json.loads(done.stdout.strip().splitlines()[-1])
    return {**phases, "wall_s": time.perf_counter() - began}


def table(results: dict[tuple[str, str], list[dict[str, float]]], count: int) -> str:
    lines = [
        "| stage | engine | images | runs | wall s min / median | Ray start s median | work s min / median "
        "| images/s, work (median) | images/s, wall (median) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (stage, engine), runs in results.items():
        wall = [run["wall_s"] for run in runs]
        work = [run["work_s"] for run in runs]
        start = statistics.median(run["start_s"] for run in runs)
        lines.append(
            f"| {stage} | {engine} | {count} | {len(runs)} | {min(wall):.1f} / {statistics.median(wall):.1f} "
            f"| {start:.1f} | {min(work):.1f} / {statistics.median(work):.1f} "
            f"| {count / statistics.median(work):.0f} | {count / statistics.median(wall):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="products in the catalog")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each engine, interleaved")
    parser.add_argument("--stages", nargs="+", default=["caption", "embed"], choices=["caption", "embed"])
    parser.add_argument("--catalog", type=Path, default=Path("/tmp/modaclip-ray-bench"), help="kept between runs")
    parser.add_argument("--raw-size", type=int, default=128, help="generated image side, px (data.image_size)")
    parser.add_argument("--image-size", type=int, default=128, help="stored image side, px (caption.image_size)")
    parser.add_argument("--part-rows", type=int, default=500, help="rows per raw part (data.chunk_rows)")
    parser.add_argument("--arch", default="modaclip-tiny")
    parser.add_argument("--batch", type=int, default=256, help="embed.batch_size")
    parser.add_argument("--child", nargs=2, metavar=("STAGE", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.catalog, args.batch)
        return
    prepare(args.catalog, args.n, args.raw_size, args.part_rows, args.arch, args.image_size)
    load_before = os.getloadavg()
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for repeat in range(args.repeats):
        for stage in args.stages:
            for engine in ENGINES:
                run = timed_run(stage, engine, args.catalog, args.batch)
                results.setdefault((stage, engine), []).append(run)
                print(f"repeat {repeat + 1}: {stage} {engine}: {run}", flush=True)
    load_after = os.getloadavg()
    print()
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, python {platform.python_version()}; arch {args.arch}, raw {args.raw_size} px, "
        f"stored {args.image_size} px, parts of {args.part_rows}, embed batch {args.batch}; "
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}"
    )
    print(table(results, args.n))


if __name__ == "__main__":
    main()
