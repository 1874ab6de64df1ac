"""Does hybrid search (vector + BM25 by reciprocal rank fusion) beat pure vector search?

    PYTHONPATH=src python benchmarks/hybrid_precision.py --model models/finetuned --catalog data/clean

The protocol of metrics/eval.json's attribute_precision@10: the gallery is the test split, each
test item's caption (one template at a time) is a query, and a hit is relevant when it shares
gender, baseColour and articleType with the query's item. Printed per caption template, for the
given model and for the untrained base model of params.yaml.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import numpy as np

from modaclip.core.catalog_io import read_catalog, read_catalog_fields
from modaclip.core.config import load_params
from modaclip.core.metrics import precision_at_k, relevance
from modaclip.core.schema import ATTRIBUTE_COLUMNS
from modaclip.curate.captions import caption_templates
from modaclip.model.clip_model import ClipBundle, create_base_model, encode_images, load_model
from modaclip.search.engine import CatalogSearch

RELEVANCE = ["gender", "baseColour", "articleType"]
K = 10


def test_split_engine(bundle: ClipBundle, catalog: Path) -> tuple[CatalogSearch, list[list[str]]]:
    items = read_catalog(
        catalog, columns=["id", "productDisplayName", *ATTRIBUTE_COLUMNS, "captions", "image"], split="test"
    )
    vectors = encode_images(bundle, items["image"].tolist())
    engine = CatalogSearch(
        bundle, items["id"].to_numpy(), vectors, info=items.drop(columns=["image", "captions"]), catalog_dir=catalog
    )
    return engine, [list(captions) for captions in items["captions"]]


def attribute_precision(engine: CatalogSearch, queries: list[str], hybrid: bool) -> float:
    results = engine.search_text(queries, K, hybrid=hybrid)
    row_of = engine.row_of
    ranked = np.array([[row_of[hit.id] for hit in hits] for hits in results])
    keys = list(engine.info[RELEVANCE].itertuples(index=False, name=None))
    return precision_at_k(relevance(ranked, keys, keys), K)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/finetuned")
    parser.add_argument("--catalog", default="data/clean")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    models = {
        "finetuned": load_model(args.model),
        "base": create_base_model(params.model.arch, params.model.pretrained, params.train.seed),
    }
    templates = caption_templates(params.caption.templates, read_catalog_fields(args.catalog))
    print(f"# attribute Precision@{K} on the test split of {args.catalog}, {date.today()}")
    print("| model | query = caption template | items | vector | hybrid (RRF) | hybrid - vector |")
    print("|---|---|---:|---:|---:|---:|")
    for name, bundle in models.items():
        engine, captions = test_split_engine(bundle, Path(args.catalog))
        for template, caption_template in enumerate(templates):
            queries = [item[template] for item in captions]
            vector = attribute_precision(engine, queries, hybrid=False)
            hybrid = attribute_precision(engine, queries, hybrid=True)
            print(
                f"| {name} | `{caption_template}` | {len(queries)} | "
                f"{vector:.3f} | {hybrid:.3f} | {hybrid - vector:+.3f} |"
            )


if __name__ == "__main__":
    main()
