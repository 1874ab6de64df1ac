"""`modaclip`: search the embedded catalog from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from modaclip.atomic import atomic_file
from modaclip.eval_report import markdown_report, read_eval_json
from modaclip.grid import save_png_atomic
from modaclip.registry import search_inputs
from modaclip.retrain import EXIT_KEPT, retrain
from modaclip.search import DEFAULT_CATALOG_DIR, DEFAULT_EMBEDDINGS_DIR, DEFAULT_MODEL_DIR, CatalogSearch, SearchHit
from modaclip.stage_runner import run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modaclip",
        description="Fine-tuned CLIP search over a fashion catalog. Run `dvc repro` first to build the model and embeddings.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    search = commands.add_parser(
        "search",
        help="text-to-image search: rank catalog products for one or more text queries",
        description="Rank catalog products for each text query (all queries embedded in one pass).",
    )
    search.add_argument("queries", nargs="+", metavar="TEXT", help='a query such as "red summer dress"')
    search.add_argument("-k", type=int, default=10, help="results per query (default 10)")
    search.add_argument("--json", action="store_true", help="print results as JSON for scripts")
    search.add_argument("--grid", metavar="PNG", help="also save a picture of the results to this file")
    search.add_argument(
        "--model",
        default="production",
        help=f"production (the registry's prod version, {DEFAULT_MODEL_DIR} until one is promoted), a version such as v2, or a saved model folder",
    )
    search.add_argument("--embeddings", help=f"catalog embeddings made with that model (default: the version's, else {DEFAULT_EMBEDDINGS_DIR})")
    search.add_argument("--catalog", help=f"clean catalog folder (default: the version's, else {DEFAULT_CATALOG_DIR})")
    search.set_defaults(handler=search_command)
    report = commands.add_parser(
        "eval-report",
        help="metrics/eval.json as a Markdown table beside published FashionCLIP 2.0 and Marqo-FashionCLIP figures",
        description="Print our base and fine-tuned figures beside published ones (quoted, with their sources, not measured).",
    )
    report.add_argument("--metrics", default="metrics/eval.json", help="eval.json written by `evaluate` (default %(default)s)")
    report.add_argument("--out", metavar="MD", help="write the Markdown to this file instead of printing it")
    report.set_defaults(handler=eval_report_command)
    retrain_parser = commands.add_parser(
        "retrain",
        help="rerun the pipeline and promote the new model only if it beats production (for cron / CI)",
        description=(
            "Run `dvc repro`, compare metrics/eval.json with the production model's under the `promote` params, "
            "write metrics/promotion.json, and on promotion commit the run and tag it with GTO (modaclip-model@vN, #prod). "
            f"Exit status: 0 promoted, {EXIT_KEPT} kept production, 2 failed (including: another retrain is running)."
        ),
    )
    retrain_parser.add_argument("--repo", default=".", help="project root (default: current directory)")
    retrain_parser.set_defaults(handler=retrain_command)
    return parser


def search_command(args: argparse.Namespace) -> None:
    inputs = search_inputs(args.model)
    engine = CatalogSearch.open(inputs["model"], args.embeddings or inputs["embeddings"], args.catalog or inputs["catalog"])
    results = engine.search_text(args.queries, args.k)
    if args.json:
        payload = [{"query": q, "results": [hit.to_dict() for hit in hits]} for q, hits in zip(args.queries, results)]
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for query, hits in zip(args.queries, results):
            print_hits(query, hits)
    if args.grid:
        save_png_atomic(engine.grid(args.queries, results), args.grid)
        print(f"saved {args.grid}", file=sys.stderr)


def eval_report_command(args: argparse.Namespace) -> None:
    text = markdown_report(read_eval_json(args.metrics))
    if args.out:
        with atomic_file(args.out) as tmp:
            tmp.write_text(text, encoding="utf-8")
        print(f"saved {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
def retrain_command(args: argparse.Namespace) -> None:
    record = retrain(Path(args.repo))
    version = record["candidate"]["version"] if record["promoted"] else record["production"]["version"]
    print(f"{record['decision']}: {record['reason']}")
    print(f"production: {version or 'none'} (details in metrics/promotion.json)")
    if not record["promoted"]:
        sys.exit(EXIT_KEPT)


def print_hits(query: str, hits: Sequence[SearchHit]) -> None:
    print(f'"{query}"')
    print(f"{'rank':>4}  {'id':>8}  {'score':>6}  name")
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank:>4}  {hit.id:>8}  {hit.score:6.3f}  {hit.name}")
    print()


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run(lambda: args.handler(args), "modaclip")


if __name__ == "__main__":
    main()
