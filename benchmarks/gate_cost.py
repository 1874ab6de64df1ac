"""What the promotion gate adds to a retrain: production's model scored on the candidate's test split.

    PYTHONPATH=src python benchmarks/gate_cost.py --items 3000 --grown 3300

A synthetic catalog of `--grown` products (params.yaml's default is 3000) is cleaned and captioned as
the caption stage does. An untrained modaclip-tiny stands in for production (the cost does not depend
on the weights), with its own embeddings of the first `--items` products: the catalog it was promoted
with. Then, as `modaclip retrain` runs them (registry/champion.py):

1. production's embeddings of the grown catalog, reusing its own vectors (only the added products are
   encoded) and cached by weights and catalog digest;
2. production evaluated on the grown catalog's test split (`evaluate_saved_model`);
3. the same again with the cache warm (a second retrain against the same production and catalog);

and, for scale, the `evaluate` stage's own work on the same split (`compare_base_and_finetuned`:
base model and candidate). Timings are wall-clock seconds on this machine; run it on a quiet one.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from modaclip.core.catalog_io import read_catalog, write_parts
from modaclip.core.config import CaptionParams, EmbedParams, ModelParams, Params
from modaclip.curate.clean_and_caption import clean_and_caption
from modaclip.embed.embedding import embed_catalog
from modaclip.evaluate.evaluation import compare_base_and_finetuned, evaluate_saved_model
from modaclip.ingest.synthetic import generate_catalog
from modaclip.model.clip_model import create_base_model, save_model
from modaclip.registry.model_choice import cached_embeddings_dir


def timed(step: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = step()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=3000, help="products in production's own catalog")
    parser.add_argument("--grown", type=int, default=3300, help="products in the catalog the candidate was trained on")
    parser.add_argument("--arch", default="modaclip-tiny")
    args = parser.parse_args()
    if not 0 < args.items <= args.grown:
        parser.error("need 0 < --items <= --grown")
    params = Params(model=ModelParams(arch=args.arch))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="gate-cost-") as tmp:
        root = Path(tmp)
        write_parts([generate_catalog(args.grown, seed=0, image_size=params.data.image_size)], root / "raw")
        clean_and_caption(root / "raw", root / "grown", CaptionParams())
        catalog = read_catalog(root / "grown")
        write_parts([catalog[catalog["id"].isin(catalog["id"].iloc[: args.items])]], root / "own")
        save_model(create_base_model(args.arch, "none", seed=1), root / "production")
        embed_catalog(root / "production", root / "own", root / "own-embeddings", EmbedParams())

        def production_embeddings() -> Path:
            return cached_embeddings_dir(
                root / "production", root / "grown", params.embed, root / "cache", reuse_from=root / "own-embeddings"
            )

        embeddings, embed_s = timed(production_embeddings)
        (report, _), evaluate_s = timed(
            lambda: evaluate_saved_model(root / "production", embeddings, root / "grown", params)
        )
        _, warm_s = timed(
            lambda: evaluate_saved_model(root / "production", production_embeddings(), root / "grown", params)
        )
        _, stage_s = timed(lambda: compare_base_and_finetuned(root / "production", embeddings, root / "grown", params))

    rows = [
        (f"embed the {len(catalog) - args.items} added products with production's model (cached)", embed_s),
        (f"evaluate production on the {report['test_items']} test products", evaluate_s),
        ("gate cost, first retrain against this production and catalog", embed_s + evaluate_s),
        ("gate cost, cache warm", warm_s),
        ("for scale: the evaluate stage (base + candidate) on the same split", stage_s),
    ]
    print(f"| {args.arch}, {len(catalog)} clean products ({args.items} in production's catalog) | seconds |")
    print("|---|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} |")
    print(
        f"\n{os.cpu_count()} cores ({platform.machine()}), {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )


if __name__ == "__main__":
    main()
