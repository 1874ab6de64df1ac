"""evaluate: base vs fine-tuned model on the test split (and any zero-shot sets in params);
metrics, the headline figures `dvc exp show` lists, a Recall@k curve, the per-product values the promotion
gate resamples, and an example grid."""

import argparse
import logging

from modaclip.core.atomic import atomic_file, write_json
from modaclip.core.catalog_io import read_catalog_fields
from modaclip.core.config import load_params
from modaclip.core.stage_runner import run
from modaclip.evaluate.evaluation import compare_base_and_finetuned
from modaclip.evaluate.grid_precision import grid_precision, resolve_answers, right_hits
from modaclip.evaluate.headline import headline_metrics, read_report
from modaclip.search.engine import CatalogSearch
from modaclip.search.grid import save_png_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--embeddings", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--train", required=True, help="finetune's metrics, for the headline")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--headline", required=True)
    parser.add_argument("--curve", required=True)
    parser.add_argument("--per-product", required=True)
    parser.add_argument("--examples", required=True)
    args = parser.parse_args()
    params = load_params(args.params)
    report, curve, per_product = compare_base_and_finetuned(args.model, args.embeddings, args.data, params)
    search = CatalogSearch.open(args.model, args.embeddings, args.data)
    queries = params.evaluate.grid_queries
    k = min(params.evaluate.grid_k, len(search))
    hits = search.search_text(queries, k)
    answers = resolve_answers(queries, params.evaluate.grid_relevant, read_catalog_fields(args.data))
    report["grid"] = grid_precision(queries, hits, answers)
    save_png_atomic(search.grid(queries, hits, right_hits(queries, hits, answers)), args.examples)
    write_json(args.curve, curve)
    with atomic_file(args.per_product) as tmp:
        per_product.to_parquet(tmp, index=False)
    write_json(args.metrics, report)
    write_json(args.headline, headline_metrics({"train": read_report(args.train), "eval": report}))
    t2i = report["finetuned"]["text_to_image"]
    log = logging.getLogger("modaclip.evaluate")
    log.info("fine-tuned text->image: %s (base: %s)", t2i, report["base"]["text_to_image"])
    log.info(
        "fine-tuned KAGL title->product: %s (base: %s)",
        report["finetuned"]["kagl"]["text_to_image"],
        report["base"]["kagl"]["text_to_image"],
    )
    log.info("example grid, share of right products per query: %s", report["grid"])
    for name, metrics in report["finetuned"]["zero_shot_sets"].items():
        log.info("zero-shot %s: fine-tuned %s (base: %s)", name, metrics, report["base"]["zero_shot_sets"][name])


if __name__ == "__main__":
    run(main, "evaluate")
