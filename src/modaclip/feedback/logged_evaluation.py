"""evaluate-feedback: the base, catalog-fine-tuned and fine-tuned-on-the-log models on held-out logged queries.

The judged sets are a feedback export's `heldout` (the latest searches' queries, judged by what
shoppers opened and added) and `heldout_unseen` (those of them never typed while the training pairs
were logged). Both are judged by clicks, and a shopper can click only what the serving model showed:
products the other models rank high but the logged pages never held count as not relevant, which
favours the model that served the log. A simulated log also has the truth (simulate.py's `truth/`):
`heldout_by_attributes` is the held-out queries judged by the catalog's attributes, the same for every
model. Each model searches the whole catalog exactly, scored as evaluate.query_sets' sets are
(evaluate/query_sets.py). A set the log left without a judged query is reported with no figures.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from modaclip.core.catalog_io import read_catalog
from modaclip.core.config import Params
from modaclip.evaluate.judged_queries import BEIR_QUERIES, JudgedQueries, load_beir
from modaclip.evaluate.query_sets import base_catalog_search, evaluate_query_sets, in_catalog, stored_catalog_search
from modaclip.feedback.export import HELDOUT, HELDOUT_UNSEEN, SUMMARY
from modaclip.model.clip_model import create_base_model, load_model

log = logging.getLogger(__name__)

SETS = {HELDOUT: "heldout_queries", HELDOUT_UNSEEN: "heldout_unseen_queries"}  # folder -> its count in summary.json
HEADLINE = "logged_ndcg@10"  # dvc exp show's columns: logged_ndcg@10.base, .finetuned, .feedback (vector search)
MODELS = ("base", "finetuned", "feedback")
BY_ATTRIBUTES = "heldout_by_attributes"


def logged_sets(
    feedback_dir: Path, catalog_dir: Path, truth_dir: Path
) -> tuple[list[JudgedQueries], dict[str, dict[str, Any]]]:
    """The export's judged sets (and, for a simulated log, the held-out queries by the truth) kept to the catalog's
    products, and each one's summary (an empty set: a note)."""
    counts = json.loads((feedback_dir / SUMMARY).read_text())
    product_ids = set(read_catalog(catalog_dir, columns=["id"])["id"].astype(str))
    judged = {}
    for folder, count in SETS.items():
        if counts.get(count):
            judged[folder] = load_beir(feedback_dir / folder, f"beir:{feedback_dir / folder}")
        else:
            log.warning("%s: no judged query in the held-out period; the log is too small to score", folder)
    if HELDOUT in judged and (truth_dir / BEIR_QUERIES).is_file():
        judged[BY_ATTRIBUTES] = held_out_by_truth(judged[HELDOUT], load_beir(truth_dir, f"beir:{truth_dir}"))
    sets, summaries = [], {name: {"scored_queries": 0} for name in SETS}
    for name, queries in judged.items():
        scored, summary = in_catalog(queries, product_ids)
        sets.append(scored)
        summaries[name] = summary
    return sets, summaries


def held_out_by_truth(heldout: JudgedQueries, truth: JudgedQueries) -> JudgedQueries:
    """The held-out queries the truth judges, with the truth's judgments (query ids are the export's, so they match)."""
    qrels = {query: truth.qrels[query] for query in heldout.queries if query in truth.qrels}
    queries = {query: heldout.queries[query] for query in qrels}
    return JudgedQueries(name=BY_ATTRIBUTES, source=truth.source, queries=queries, qrels=qrels)


def evaluate_logged(
    params: Params,
    *,
    catalog_dir: str | Path,
    finetuned_dir: str | Path,
    embeddings_dir: str | Path,
    feedback_model_dir: str | Path,
    feedback_dir: str | Path,
    truth_dir: str | Path,
) -> tuple[dict[str, Any], dict[str, dict[str, float | None]]]:
    """The report ({"sets": summaries, model: {set: {mode: figures}}}) and the headline: each model's vector
    nDCG@10 on the held-out logged queries.

    Args:
        finetuned_dir: the catalog-fine-tuned model, with `embeddings_dir` its embeddings of the catalog.
        feedback_model_dir: the model fine-tuned on the catalog and the log.
        feedback_dir: the feedback export (its held-out judged sets).
        truth_dir: a simulated log's attribute judgments (absent for a real log: not scored).
    """
    catalog_dir = Path(catalog_dir)
    sets, summaries = logged_sets(Path(feedback_dir), catalog_dir, Path(truth_dir))
    report: dict[str, Any] = {"sets": summaries}
    if sets:
        base = create_base_model(params.model.arch, params.model.pretrained, params.train.seed)
        report["base"] = evaluate_query_sets(sets, base_catalog_search(base, catalog_dir), base)
        finetuned = load_model(finetuned_dir)
        search = stored_catalog_search(finetuned, finetuned_dir, embeddings_dir, catalog_dir)
        report["finetuned"] = evaluate_query_sets(sets, search, finetuned)
        tuned = load_model(feedback_model_dir)
        report["feedback"] = evaluate_query_sets(sets, base_catalog_search(tuned, catalog_dir), tuned)
    return report, {HEADLINE: {model: heldout_ndcg(report, model) for model in MODELS}}


def heldout_ndcg(report: dict[str, Any], model: str) -> float | None:
    """The model's vector nDCG@10 on the held-out set, rounded; None when the set was not scored."""
    figures = report.get(model, {}).get(HELDOUT)
    return None if figures is None else round(figures["vector"]["ndcg@10"], 4)
