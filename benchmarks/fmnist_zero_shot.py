"""Zero-shot Fashion-MNIST (FashionCLIP protocol) for saved models, on the original IDX files.

    PYTHONPATH=src python benchmarks/fmnist_zero_shot.py --model models/finetuned --base

prints accuracy, weighted macro F1 and images/s per model, then the published F1 of other models
(quoted from their model card, not measured here, and on the full 10,000-image test set).
"""

from __future__ import annotations

import argparse
import time

from modaclip.core.config import load_params
from modaclip.core.stage_runner import run
from modaclip.evaluate.evaluation import classify_labelled_set
from modaclip.evaluate.labelled_sets import open_labelled_sets
from modaclip.evaluate.published import PUBLISHED, SOURCES
from modaclip.model.clip_model import ClipBundle, create_base_model, load_model

FMNIST_F1 = ("zero_shot_sets", "fmnist", "weighted_f1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", action="append", help="saved model folder; repeat for several (default models/finetuned)"
    )
    parser.add_argument(
        "--base", action="store_true", help="also the base model that params.yaml's model section builds"
    )
    parser.add_argument(
        "--data", default="../shared/data/fashion-mnist", help="folder with t10k-*-ubyte[.gz] (default %(default)s)"
    )
    parser.add_argument("--limit", type=int, help="a reproducible random subset of this many images (default all)")
    parser.add_argument(
        "--params", default="params.yaml", help="zero-shot prompt templates come from evaluate.zero_shot_templates"
    )
    args = parser.parse_args()
    params = load_params(args.params)
    (fmnist,) = open_labelled_sets([f"fmnist:{args.data}"], limit=args.limit, param="--data")
    models: dict[str, ClipBundle] = {folder: load_model(folder) for folder in args.model or ["models/finetuned"]}
    if args.base:
        models["base (params.yaml)"] = create_base_model(params.model.arch, params.model.pretrained, params.train.seed)
    print(
        f"Fashion-MNIST zero-shot: {len(fmnist.images)} images from {args.data}, "
        f"templates {params.evaluate.zero_shot_templates}\n"
    )
    print(f"| {'model':<32} | accuracy | weighted F1 | images/s |")
    print(f"| {'-' * 32} | -------: | ----------: | -------: |")
    for name, bundle in models.items():
        start = time.perf_counter()
        metrics = classify_labelled_set(bundle, fmnist, params.evaluate.zero_shot_templates)
        speed = len(fmnist.images) / (time.perf_counter() - start)
        print(f"| {name:<32} | {metrics['accuracy']:8.3f} | {metrics['weighted_f1']:11.3f} | {speed:8.0f} |")
    for figure in (f for f in PUBLISHED if f.path == FMNIST_F1):
        print(f"| {figure.model + ' (quoted)':<32} | {'':8} | {figure.value:11.3f} | {'':8} |")
    source = SOURCES["fashionclip-card"]
    print(f"\nQuoted, not measured: {source.title}, {source.url} ({source.caveat}).")


if __name__ == "__main__":
    run(main, "fmnist_zero_shot")
