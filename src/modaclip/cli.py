"""`modaclip`: the command line over a project's outputs.

Search, similar products and zero-shot classify on the embedded catalog; serve it over HTTP; the
eval report; retrain, promote and roll back through the model registry; export a saved model.
`--verbose` shows an error's chain of causes and the DEBUG log lines (core/stage_runner.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from modaclip.core.atomic import atomic_file
from modaclip.core.config import DEFAULT_PARAMS_PATH, Params, ServeParams, load_params
from modaclip.core.errors import ModaclipError
from modaclip.core.paths import CATALOG_DIR, EMBEDDINGS_DIR, EVAL_METRICS, MODEL_DIR
from modaclip.core.stage_runner import run
from modaclip.evaluate.markdown_report import markdown_report, read_eval_json
from modaclip.feedback.log_files import expand_logs
from modaclip.model.zero_shot import DEFAULT_TEMPLATES, classification_json, classify_image
from modaclip.registry import model_versions
from modaclip.registry.model_choice import (
    AUTO,
    PRODUCTION,
    evaluation_of,
    model_folder,
    query_embedder,
    search_source_for,
)
from modaclip.registry.retrain import EXIT_KEPT, EXIT_STAGED, exit_status, retrain
from modaclip.search.engine import CatalogSearch, SearchHit, read_image_file
from modaclip.search.filters import parse_filters
from modaclip.search.grid import GridCell, retrieval_grid, save_png_atomic

if TYPE_CHECKING:
    from PIL.Image import Image

    from modaclip.feedback.search_log import LogConfig
    from modaclip.serve.follow import Follow


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modaclip",
        description=(
            "Fine-tuned CLIP search over a fashion catalog. Run `dvc repro` first to build the model and embeddings."
        ),
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log DEBUG lines and show an error's chain of causes (as MODACLIP_LOG=debug does)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in (
        add_search_command,
        add_eval_report_command,
        add_retrain_command,
        add_promote_command,
        add_similar_command,
        add_classify_command,
        add_serve_command,
        add_export_command,
        add_feedback_command,
    ):
        add_command(commands)
    return parser


def add_search_command(commands: argparse._SubParsersAction) -> None:
    search = commands.add_parser(
        "search",
        help="text-to-image search: rank catalog products for one or more text queries",
        description="Rank catalog products for each text query (all queries embedded in one pass).",
    )
    search.add_argument("queries", nargs="*", metavar="TEXT", help='a query such as "red summer dress"')
    search.add_argument("--queries-file", metavar="FILE", help="also read queries from this file, one per line")
    search.add_argument(
        "--hybrid", action="store_true", help="fuse the vector ranking with BM25 over names and attributes"
    )
    add_filter_argument(search)
    search.add_argument("-k", type=int, default=10, help="results per query (default 10)")
    add_output_arguments(search)
    add_engine_arguments(search)
    search.set_defaults(handler=search_command)


def add_eval_report_command(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "eval-report",
        help="metrics/eval.json as a Markdown table beside published FashionCLIP 2.0 and Marqo-FashionCLIP figures",
        description=(
            "Print our base and fine-tuned figures beside published ones (quoted, with their sources, not measured)."
        ),
    )
    report.add_argument(
        "--metrics", default=str(EVAL_METRICS), help="eval.json written by `evaluate` (default %(default)s)"
    )
    report.add_argument("--out", metavar="MD", help="write the Markdown to this file instead of printing it")
    report.set_defaults(handler=eval_report_command)


def add_retrain_command(commands: argparse._SubParsersAction) -> None:
    retrain_parser = commands.add_parser(
        "retrain",
        help="rerun the pipeline and promote the new model only if it beats production (for cron / CI)",
        description=(
            "Run `dvc repro`, score the production model on the same test split, compare the two under the "
            "`promote` params, write metrics/promotion.json, and if the candidate passes commit the run and tag it "
            "with GTO (modaclip-model@vN, then #prod, or #staging with promote.mode: review). "
            f"Exit status: 0 promoted, {EXIT_KEPT} kept production, {EXIT_STAGED} staged for review, "
            "2 failed (including: another retrain is running here)."
        ),
    )
    retrain_parser.add_argument("--repo", default=".", help="project root (default: current directory)")
    retrain_parser.set_defaults(handler=retrain_command)


def add_promote_command(commands: argparse._SubParsersAction) -> None:
    promote = commands.add_parser(
        "promote",
        help="move production to an approved version (vN), or back to the previous one (--rollback)",
        description=(
            "Assign GTO's prod stage to a registered version newer than production (a candidate staged for "
            "review by `modaclip retrain`), or with --rollback take it from the current version, which hands "
            "production back to the version before it. Each move is one git tag; push it with `git push --tags`."
        ),
    )
    target = promote.add_mutually_exclusive_group(required=True)
    target.add_argument("version", nargs="?", help="the version to put in production, e.g. v3")
    target.add_argument("--rollback", action="store_true", help="return production to the previous version")
    promote.add_argument("--repo", default=".", help="project root (default: current directory)")
    promote.set_defaults(handler=promote_command)


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=AUTO,
        help=(
            f"auto (default: the registry's prod version, else {MODEL_DIR}; says which), "
            "production (the prod version, or stop: for deployments), "
            "a version such as v2, "
            "base (the untuned model of params.yaml; its catalog embeddings are computed once and cached), "
            "or a saved model folder"
        ),
    )


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument(
        "--embeddings",
        help=f"catalog embeddings made with that model (default: the version's, else {EMBEDDINGS_DIR})",
    )
    parser.add_argument("--catalog", help=f"clean catalog folder (default: the version's, else {CATALOG_DIR})")


def open_engine(args: argparse.Namespace) -> CatalogSearch:
    """The search engine for --model (a registry version, the base model or a folder) and its embeddings and catalog."""
    source = search_source_for(args.model, args.embeddings, args.catalog)
    return CatalogSearch.open(source.model, source.embeddings, source.catalog)


def add_output_arguments(
    parser: argparse.ArgumentParser, grid_help: str = "also save a picture of the results to this file"
) -> None:
    parser.add_argument("--json", action="store_true", help="print results as JSON for scripts")
    parser.add_argument("--grid", metavar="PNG", help=grid_help)


def add_filter_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="ATTR=VALUE",
        help="only products with this attribute value (repeatable): gender=Women, baseColour=Red,Blue, year=2012..2015",
    )


def add_similar_command(commands: argparse._SubParsersAction) -> None:
    similar = commands.add_parser(
        "similar",
        help="image-to-image search: products that look like an image file or a catalog product",
        description="Rank catalog products by similarity to an image file or to a catalog product (itself excluded).",
    )
    similar.add_argument("target", metavar="IMAGE_OR_PRODUCT_ID", help="an image file, or the id of a catalog product")
    similar.add_argument("-k", type=int, default=10, help="results (default 10)")
    add_filter_argument(similar)
    add_output_arguments(similar)
    add_engine_arguments(similar)
    similar.set_defaults(handler=similar_command)


def add_classify_command(commands: argparse._SubParsersAction) -> None:
    classify = commands.add_parser(
        "classify",
        help="zero-shot classification of an image among text labels",
        description="Score an image against each label's prompt(s) and list the labels, most likely first.",
    )
    classify.add_argument("image", metavar="IMAGE", help="an image file")
    classify.add_argument(
        "--labels", nargs="+", required=True, help="candidate labels, e.g. --labels dress shirt jeans"
    )
    classify.add_argument(
        "--template",
        action="append",
        help=f"prompt with {{label}} (repeatable, averaged; default {DEFAULT_TEMPLATES[0]!r})",
    )
    classify.add_argument("-k", type=int, default=None, help="show only the k most likely labels (default all)")
    add_output_arguments(classify, grid_help="also save a picture of the image with its top label")
    add_model_argument(classify)
    classify.set_defaults(handler=classify_command)


# `modaclip serve`'s flags, each over a key of params.yaml's `serve` section, where its default lives.
SERVE_FLAGS = {
    "--host": "host",
    "--port": "port",
    "--cors-origin": "cors_origins",
    "--max-upload-mb": "max_upload_mb",
    "--threads": "threads",
    "--text-threads": "text_threads",
    "--query-cache": "query_cache",
    "--follow-seconds": "follow_seconds",
    "--fetch-from": "fetch_from",
    "--log": "log_path",
    "--max-in-flight": "limits.max_in_flight",
    "--max-connections": "limits.max_connections",
    "--body-timeout": "limits.body_timeout_s",
    "--encode-timeout": "limits.encode_timeout_s",
    "--rate-limit": "limits.rate_limit",
}


def add_serve_command(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="HTTP API and search page over the production model (http://127.0.0.1:8000, API docs at /docs)",
        description=(
            "Load the model, index and catalog once and answer search, similar and classify requests over HTTP. "
            "Every default is in params.yaml's serve section (or its shipped value outside a project); a flag "
            "overrides it for this run."
        ),
    )
    add_serve_flag(serve, "--host", "address to bind; 127.0.0.1 = this machine only")
    add_serve_flag(serve, "--port", "port", type=int)
    add_serve_flag(
        serve, "--cors-origin", "allow browser calls from this origin (repeatable)", action="append", metavar="ORIGIN"
    )
    add_serve_flag(serve, "--max-upload-mb", "largest accepted image upload in MB", type=float)
    add_serve_flag(serve, "--threads", "image uploads, similar-product and hybrid searches handled at once", type=int)
    add_serve_flag(
        serve,
        "--text-threads",
        "torch threads of the process that embeds text queries, the rest of the cores answer HTTP; 0 = half the cores",
        type=int,
    )
    add_serve_flag(serve, "--query-cache", "text query embeddings kept for repeated queries; 0 = off", type=int)
    add_serve_flag(
        serve,
        "--follow-seconds",
        "a server of production (--model production, or auto once the registry has one) checks the registry this "
        "often and swaps in a new production; 0 keeps the version it started with",
        type=int,
    )
    add_serve_flag(
        serve,
        "--fetch-from",
        "a server in its own clone: the git remote whose registry tags are fetched at start and before each check; "
        "versions come from the DVC remote; '' = none",
        metavar="REMOTE",
    )
    log_choice = serve.add_mutually_exclusive_group()
    add_serve_flag(
        log_choice,
        "--log",
        "the search log: each search and each product opened or added, in SQLite (docs/search.md#search-log)",
        metavar="PATH",
    )
    log_choice.add_argument("--no-log", action="store_true", help="keep no search log")
    limits = serve.add_argument_group("load limits (docs/search.md#caps-load-limits-and-status-codes)")
    add_serve_flag(limits, "--max-in-flight", "requests handled at once; more get 503 + Retry-After", type=int)
    add_serve_flag(limits, "--max-connections", "open connections; more get uvicorn's 503", type=int)
    add_serve_flag(limits, "--body-timeout", "seconds an upload may take to arrive; later is a 408", type=float)
    add_serve_flag(
        limits,
        "--encode-timeout",
        "seconds a text forward pass may take before the encoder process counts as hung",
        type=float,
    )
    add_serve_flag(
        limits, "--rate-limit", 'per-client limit such as "120/minute"; more get 429 + Retry-After', metavar="RATE"
    )
    add_engine_arguments(serve)
    serve.set_defaults(handler=serve_command)


def add_serve_flag(group: argparse._ActionsContainer, flag: str, text: str, **options: object) -> None:
    """A flag of `serve` over its params.yaml key; the help names the key and its shipped default."""
    key = SERVE_FLAGS[flag]
    section, _, name = key.rpartition(".")
    shipped = getattr(ServeParams().limits if section else ServeParams(), name)
    shown = repr(shipped) if shipped in ("", []) else shipped
    options.setdefault("metavar", name.upper())
    group.add_argument(flag, dest=key, help=f"{text} (default: params.yaml serve.{key}, shipped as {shown})", **options)


def add_export_command(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="write a model for code without modaclip: a transformers CLIPModel folder or ONNX towers, with a card",
        description=(
            "Write MODEL to OUT as a transformers CLIPModel folder (--format hf: CLIPModel.from_pretrained and "
            "CLIPProcessor.from_pretrained load it) or as its image and text towers in ONNX (--format onnx, for "
            "onnxruntime), with a model card (README.md in the Hugging Face format)."
        ),
    )
    export.add_argument(
        "model", metavar="MODEL", help="production, a version such as v2, base, or a saved model folder"
    )
    export.add_argument("out", metavar="OUT", help="folder to write: new, empty, or an earlier export (replaced whole)")
    export.add_argument("--format", required=True, help="hf (transformers) or onnx")
    export.add_argument(
        "--metrics",
        metavar="EVAL_JSON",
        help="eval.json whose figures the card gives (default: a version's own, metrics/eval.json for the "
        "pipeline's model, none for other folders)",
    )
    export.set_defaults(handler=export_command)


def export_command(args: argparse.Namespace) -> None:
    from modaclip.model.export import export_format  # torch and open_clip load only for this command

    write = export_format(args.format)
    report = read_eval_json(args.metrics) if args.metrics else evaluation_of(args.model)
    write(model_folder(args.model), Path(args.out), markdown_report(report) if report else None)
    print(f"saved {args.out}", file=sys.stderr)


def add_feedback_command(commands: argparse._SubParsersAction) -> None:
    feedback = commands.add_parser("feedback", help="learn from the shop: turn search logs into training data")
    actions = feedback.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="search log(s) -> training pairs and a held-out judged query set (docs/feedback.md)",
        description=(
            "Read one or more search logs (the SQLite files `modaclip serve` writes) and write OUT: pairs.parquet "
            "(query -> product, graded and weighted against position bias), heldout/ and heldout_unseen/ (judged "
            "query sets in the BEIR layout, from the latest searches) and summary.json. The same logs give the same "
            "bytes. Settings from params.yaml's feedback.export."
        ),
    )
    export.add_argument(
        "--log",
        action="append",
        metavar="PATH",
        help="a log file or glob; repeat for several (default: params.yaml serve.log_path, where serve logs)",
    )
    export.add_argument("--out", default="data/feedback", help="folder to write, replaced whole (default: %(default)s)")
    export.add_argument("--params", default=str(DEFAULT_PARAMS_PATH), help="params file (default: %(default)s)")
    export.set_defaults(handler=feedback_export_command)


def feedback_export_command(args: argparse.Namespace) -> None:
    from modaclip.feedback.export import export_feedback  # pandas and pyarrow load only for this command

    params = load_params(args.params) if Path(args.params).is_file() else Params()
    paths = expand_logs(args.log or [params.serve.log_path])
    summary = export_feedback(paths, args.out, params.feedback.export)
    print(json.dumps(summary, indent=2))
    print(f"saved {args.out}", file=sys.stderr)


def serve_command(args: argparse.Namespace) -> None:
    from modaclip.serve.app import ServiceSettings  # web libraries load only for this command
    from modaclip.serve.follow import fetch_tags, serve

    params = serve_params(args)
    follow = follow_settings(args, params)
    if follow.every_s and follow.fetch_from:
        fetch_tags(follow.root, follow.fetch_from)
    source = search_source_for(args.model, args.embeddings, args.catalog)
    serve(ServiceSettings(source=source, params=params), follow, search_log_config(args, params))


def serve_params(args: argparse.Namespace) -> ServeParams:
    """params.yaml's `serve` section (its shipped defaults outside a project) with the flags given applied;
    an invalid value is one line naming its flag."""
    base = load_params().serve if DEFAULT_PARAMS_PATH.is_file() else ServeParams()
    merged = base.model_dump()
    for key in SERVE_FLAGS.values():
        value = getattr(args, key)
        if value is not None:
            section, _, name = key.rpartition(".")
            (merged[section] if section else merged)[name] = value
    try:
        return ServeParams.model_validate(merged)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        flag = next((flag for flag, flag_key in SERVE_FLAGS.items() if flag_key == key), "params.yaml")
        raise ModaclipError(f"{flag} (serve.{key}): {first['msg']} (got {first.get('input')!r})") from err


def search_log_config(args: argparse.Namespace, params: ServeParams) -> LogConfig | None:
    """Where `serve` logs searches and events; None with --no-log."""
    from modaclip.feedback.search_log import LogConfig

    return None if args.no_log else LogConfig(Path(params.log_path), params.log_retention_days)


def follow_settings(args: argparse.Namespace, params: ServeParams) -> Follow:
    """Whether and how `serve` follows production: only production (or auto) with the version's own
    embeddings and catalog follows."""
    from modaclip.serve.follow import Follow

    follows = args.model in (AUTO, PRODUCTION) and not (args.embeddings or args.catalog)
    return Follow(Path("."), args.model, params.follow_seconds if follows else 0, params.fetch_from)


def read_queries(args: argparse.Namespace) -> list[str]:
    """Queries from the command line, then from --queries-file (blank lines skipped)."""
    queries = list(args.queries)
    if args.queries_file:
        try:
            lines = Path(args.queries_file).read_text(encoding="utf-8").splitlines()
        except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError) as err:
            raise ModaclipError(f"{args.queries_file}: cannot read queries ({err.__class__.__name__})") from err
        queries += [line.strip() for line in lines if line.strip()]
    if not queries:
        raise ModaclipError("no query: give TEXT arguments or --queries-file FILE")
    return queries


def search_command(args: argparse.Namespace) -> None:
    args.queries = read_queries(args)
    engine = open_engine(args)
    results = engine.search_text(args.queries, args.k, parse_filters(args.filter), hybrid=args.hybrid)
    write_results(
        args,
        [{"query": q, "results": [hit.to_dict() for hit in hits]} for q, hits in zip(args.queries, results)],
        lambda: print_results(args.queries, results),
        lambda: engine.grid(args.queries, results),
    )


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
    if record["passed"] and not record["promoted"]:
        staged = record["candidate"]["version"]
        print(f"staged: {staged}; to put it in production: modaclip promote {staged}")
    if code := exit_status(record):
        sys.exit(code)


def promote_command(args: argparse.Namespace) -> None:
    root = Path(args.repo)
    old, new = model_versions.rollback(root) if args.rollback else model_versions.promote(root, args.version)
    print(f"production: {new.version} (was {old.version if old else 'none'}); publish the move with `git push --tags`")


def similar_command(args: argparse.Namespace) -> None:
    target = args.target
    if Path(target).exists():
        query: bytes | int = read_image_file(target)
    elif target.isdigit():
        query = int(target)
    else:
        raise ModaclipError(f"{target}: neither an image file nor a product id")
    engine = open_engine(args)
    if isinstance(query, bytes) and (same := engine.products_with_image(query)):
        print(
            f"{target} is the stored image of catalog product {', '.join(map(str, same))}: "
            "searching as that product, itself excluded",
            file=sys.stderr,
        )
    hits = engine.similar(query, args.k, parse_filters(args.filter))
    label = f"similar to {target}"
    write_results(
        args,
        [{"query": target, "results": [hit.to_dict() for hit in hits]}],
        lambda: print_results([label], [hits]),
        lambda: engine.grid([label], [hits]),
    )


def classify_command(args: argparse.Namespace) -> None:
    if args.k is not None and args.k < 1:
        raise ModaclipError(f"k must be at least 1, got {args.k}")
    image = read_image_file(args.image)
    templates = args.template or DEFAULT_TEMPLATES
    ranked = classify_image(query_embedder(args.model), image, args.labels, templates)[: args.k]
    caption = ", ".join(f"{label} {p:.2f}" for label, _, p in ranked[:3])
    write_results(
        args,
        {"image": args.image, **classification_json(ranked)},
        lambda: print_labels(ranked),
        lambda: retrieval_grid([(args.image, [GridCell(image, caption)])]),
    )


def print_labels(ranked: Sequence[tuple[str, float, float]]) -> None:
    print(f"{'rank':>4}  {'prob':>6}  {'score':>6}  label")
    for rank, (label, score, probability) in enumerate(ranked, start=1):
        print(f"{rank:>4}  {probability:6.3f}  {score:6.3f}  {label}")


def write_results(
    args: argparse.Namespace, payload: object, show: Callable[[], object], grid: Callable[[], Image]
) -> None:
    """The ending every query command shares: JSON (--json) or a table on stdout, then the picture --grid asks for."""
    if args.json:
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        show()
    if args.grid:
        save_png_atomic(grid(), args.grid)
        print(f"saved {args.grid}", file=sys.stderr)


def print_results(queries: Sequence[str], results: Sequence[Sequence[SearchHit]]) -> None:
    for query, hits in zip(queries, results):
        print(f'"{query}"')
        print(f"{'rank':>4}  {'id':>8}  {'score':>6}  name")
        for rank, hit in enumerate(hits, start=1):
            print(f"{rank:>4}  {hit.id:>8}  {hit.score:6.3f}  {hit.name}")
        print()


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run(lambda: args.handler(args), "modaclip", verbose=args.verbose)


if __name__ == "__main__":
    main()
