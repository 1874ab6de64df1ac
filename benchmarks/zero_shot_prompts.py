"""Zero-shot accuracy on the test split with other prompts beside FashionCLIP's "a photo of a {label}".

    PYTHONPATH=src python benchmarks/zero_shot_prompts.py --model models/finetuned --catalog data/clean

prints, per field of evaluate.zero_shot_fields and per prompt, accuracy and weighted F1 among the
field's values in the whole catalog (the `evaluate` stage's protocol). The reported standard stays
"a photo of a {label}" (metrics/eval.json); these rows are for comparison, never a replacement.
"""

from __future__ import annotations

import argparse
from datetime import date

import numpy as np

from modaclip.core.config import load_params
from modaclip.core.stage_runner import run
from modaclip.evaluate.evaluation import EmbeddedSplit, read_test_split, zero_shot
from modaclip.model.clip_model import encode_images, load_model

STANDARD = "a photo of a {label}"
OTHERS = ("{label}", "a {label}", "a product photo of a {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/finetuned")
    parser.add_argument("--catalog", default="data/clean")
    parser.add_argument("--params", default="params.yaml", help="evaluate.zero_shot_fields come from here")
    args = parser.parse_args()
    items, _, labels = read_test_split(args.catalog, load_params(args.params).evaluate)
    bundle = load_model(args.model)
    test = EmbeddedSplit(items, encode_images(bundle, items["image"].tolist()), query_vectors=np.empty((0, 0)))
    prompts = {f"`{t}`": [t] for t in (STANDARD, *OTHERS)} | {"all four, averaged": [STANDARD, *OTHERS]}
    results = {name: zero_shot(bundle, test, labels, templates)[0] for name, templates in prompts.items()}
    print(f"# zero-shot on the test split of {args.catalog} ({len(items)} products), {args.model}, {date.today()}")
    print("| field | prompt | accuracy | weighted F1 |")
    print("|---|---|---:|---:|")
    for field in labels:  # the columns evaluate.zero_shot_fields name in this catalog
        for name, by_field in results.items():
            scores = by_field[field]
            row = f"| {field} ({scores['classes']} classes) | {name} | {scores['accuracy']:.3f} |"
            print(f"{row} {scores['weighted_f1']:.3f} |")


if __name__ == "__main__":
    run(main, "zero_shot_prompts")
