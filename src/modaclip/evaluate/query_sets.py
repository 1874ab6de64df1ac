"""Judged query sets (`evaluate.query_sets`): each model searches the whole catalog with each set's queries,
by vector and by hybrid (BM25 + vector fusion, search/engine.py), and ir-measures scores the rankings.

ir-measures (with pytrec_eval, trec_eval's own C code) is the scorer: nDCG@10 with graded gains,
Recall@10 and @50 and MRR@10 exactly as trec_eval and the BEIR leaderboard compute them, with two
small dependencies (ranx would add numba, matplotlib and seaborn). Judged products that are not in
the catalog (cleaned away, outside `data.limit`) cannot be found by any model: they are counted in
the set's summary and left out of its judgments, and a query left without a relevant product is
not scored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ir_measures
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from ir_measures import RR, R, nDCG

from modaclip.core.catalog_io import iter_chunks, part_files, read_catalog, read_catalog_fields
from modaclip.core.config import Params
from modaclip.core.errors import ModaclipError
from modaclip.core.fields import FIELD_COLUMNS, CatalogFields
from modaclip.embed.stored import load_embeddings
from modaclip.evaluate.judged_queries import JudgedQueries, load_beir, load_trec
from modaclip.evaluate.shopper_queries import shopper_queries
from modaclip.model.clip_model import ClipBundle, encode_images, encode_texts
from modaclip.search.engine import CatalogSearch

log = logging.getLogger(__name__)

MEASURES = {"ndcg@10": nDCG @ 10, "recall@10": R @ 10, "recall@50": R @ 50, "mrr@10": RR @ 10}
DEPTH = 50  # results retrieved per query: the deepest cutoff measured
MODES = {"vector": False, "hybrid": True}
SCHEMES = ("beir", "trec", "shoppers")


def open_query_set(spec: str, where: str, catalog_dir: Path, train_fields: Sequence[str]) -> JudgedQueries:
    """One set from `beir:<folder>`, `trec:<qrels>:<queries tsv>` or `shoppers:<count>`."""
    scheme, sep, rest = spec.partition(":")
    if not sep or not rest or scheme not in SCHEMES:
        raise ModaclipError(
            f"{where}: {spec!r} is not beir:<folder>, trec:<qrels file>:<queries tsv> or shoppers:<count>"
        )
    if scheme == "beir":
        if not Path(rest).is_dir():
            raise ModaclipError(f"{where}: folder {rest} not found (from {spec!r}); fix the path or remove the entry")
        return load_beir(Path(rest), spec)
    if scheme == "trec":
        qrels, sep, queries = rest.partition(":")
        if not sep or not qrels or not queries:
            raise ModaclipError(f"{where}: {spec!r} is not trec:<qrels file>:<queries tsv>")
        return load_trec(Path(qrels), Path(queries), spec)
    if not rest.isdigit() or int(rest) < 1:
        raise ModaclipError(f"{where}: {spec!r}: shoppers:<count> takes a number of queries of at least 1")
    catalog, fields = judged_catalog(catalog_dir)
    return shopper_queries(catalog, fields, int(rest), train_fields=train_fields, source=spec)


def judged_catalog(catalog_dir: Path) -> tuple[pd.DataFrame, CatalogFields]:
    """The clean catalog's ids, captions and field columns, and its fields: what shoppers' queries are judged on."""
    names = set(pq.read_schema(part_files(catalog_dir)[0]).names)
    catalog = read_catalog(catalog_dir, columns=["id", "captions", *(c for c in FIELD_COLUMNS if c in names)])
    return catalog, read_catalog_fields(catalog_dir)


def open_query_sets(
    specs: Sequence[str], catalog_dir: str | Path, train_fields: Sequence[str], param: str = "evaluate.query_sets"
) -> list[JudgedQueries]:
    """Every listed set; a missing file, a malformed line or two sets of one name stop the stage."""
    sets: list[JudgedQueries] = []
    for position, spec in enumerate(specs):
        where = f"{param}[{position}]"
        judged = open_query_set(spec, where, Path(catalog_dir), train_fields)
        if any(existing.name == judged.name for existing in sets):
            raise ModaclipError(f"{where}: a second set named {judged.name!r} (from {spec!r}); each needs its own name")
        sets.append(judged)
    return sets


def in_catalog(judged: JudgedQueries, product_ids: set[str]) -> tuple[JudgedQueries, dict[str, Any]]:
    """The set's scored queries (a relevant product in the catalog) with judgments of catalog products only,
    and its summary for eval.json: what was judged, what the catalog lacks, how many answers a query has."""
    missing = {(q, p) for q, judged_products in judged.qrels.items() for p in judged_products if p not in product_ids}
    kept = {
        query: {p: g for p, g in judged_products.items() if p in product_ids}
        for query, judged_products in judged.qrels.items()
    }
    qrels = {query: products for query, products in kept.items() if any(g > 0 for g in products.values())}
    if not qrels:
        raise ModaclipError(
            f"{judged.source}: no query has a relevant product in the catalog "
            f"({len(missing)} judgment(s) name products it does not have); are these the catalog's product ids?"
        )
    if missing:
        examples = sorted({p for _, p in missing})[:5]
        log.warning(
            "query set %s: %d judgment(s) name products not in the catalog (cleaned away or outside data.limit), "
            "e.g. %s; left out, %d of %d judged queries still scored",
            judged.name, len(missing), examples, len(qrels), len(judged.qrels),
        )  # fmt: skip
    relevant = np.array([sum(g > 0 for g in products.values()) for products in qrels.values()])
    summary = {
        "source": judged.source,
        "queries": len(judged.queries),
        "judged_queries": len(judged.qrels),
        "scored_queries": len(qrels),
        "judgments": sum(len(products) for products in judged.qrels.values()),
        "judgments_not_in_catalog": len(missing),
        "products_not_in_catalog": len({p for _, p in missing}),
        "relevant_per_query": float(relevant.mean()),
        "recall@10_ceiling": float(np.minimum(1.0, 10 / relevant).mean()),
        **judged.notes,
    }
    scored = JudgedQueries(
        name=judged.name,
        source=judged.source,
        queries={q: judged.queries[q] for q in qrels},
        qrels=qrels,
        notes=judged.notes,
    )
    return scored, summary


def score_rankings(qrels: dict[str, dict[str, int]], rankings: dict[str, Sequence[int]]) -> dict[str, float]:
    """MEASURES' means over the queries, from each query's ranked product ids (best first)."""
    run = {
        query: {str(product): float(DEPTH - rank) for rank, product in enumerate(ids)}
        for query, ids in rankings.items()
    }
    if any(not ranked for ranked in run.values()):
        raise ModaclipError("a judged query has no search results; every query must be ranked")
    figures = ir_measures.calc_aggregate(MEASURES.values(), qrels, run)
    return {name: float(figures[measure]) for name, measure in MEASURES.items()}


def search_set(search: CatalogSearch, judged: JudgedQueries, query_vectors: np.ndarray) -> dict[str, dict[str, float]]:
    """The set's figures with vector search and with hybrid search."""
    texts, depth = list(judged.queries.values()), min(DEPTH, len(search))
    result = {}
    for mode, hybrid in MODES.items():
        hits = search.rank_text(texts, query_vectors, depth, allowed=None, hybrid=hybrid)
        rankings = {query: [hit.id for hit in found] for query, found in zip(judged.queries, hits)}
        result[mode] = score_rankings(judged.qrels, rankings)
    return result


def evaluate_query_sets(
    sets: Sequence[JudgedQueries], search: CatalogSearch, bundle: ClipBundle
) -> dict[str, dict[str, dict[str, float]]]:
    """{set: {"vector": figures, "hybrid": figures}} for one model: its catalog search, queries encoded by it."""
    return {
        judged.name: search_set(search, judged, encode_texts(bundle, list(judged.queries.values()))) for judged in sets
    }


def judged_sets(params: Params, catalog_dir: str | Path) -> tuple[list[JudgedQueries], dict[str, dict[str, Any]]]:
    """`evaluate.query_sets` opened and kept to the catalog's products, and each set's summary by name."""
    specs = params.evaluate.query_sets
    if not specs:
        return [], {}
    sets = open_query_sets(specs, catalog_dir, list(params.train.fields))
    product_ids = set(read_catalog(catalog_dir, columns=["id"])["id"].astype(str))
    kept = [in_catalog(judged, product_ids) for judged in sets]
    return [scored for scored, _ in kept], {scored.name: summary for scored, summary in kept}


def score_query_sets(
    sets: Sequence[JudgedQueries], bundle: ClipBundle, open_search: Callable[[], CatalogSearch]
) -> dict[str, dict[str, dict[str, float]]]:
    """`evaluate_query_sets` for one model, its catalog search opened only when there is a set to score."""
    return evaluate_query_sets(sets, open_search(), bundle) if sets else {}


def stored_catalog_search(
    bundle: ClipBundle, model_dir: str | Path, embeddings_dir: str | Path, catalog_dir: str | Path
) -> CatalogSearch:
    """Exact search over the embed stage's vectors of the catalog (the stored index may be approximate:
    the figures measure the model, not the index)."""
    ids, vectors, _ = load_embeddings(embeddings_dir, model_dir)
    return CatalogSearch.from_vectors(bundle, ids, np.asarray(vectors, dtype=np.float32), catalog_dir)


def base_catalog_search(bundle: ClipBundle, catalog_dir: str | Path) -> CatalogSearch:
    """Exact search over the whole catalog embedded now, a part at a time, with a model that has no stored vectors."""
    ids, vectors = [], []
    for chunk in iter_chunks(catalog_dir, ["id", "image"]):
        ids.append(chunk["id"].to_numpy())
        vectors.append(encode_images(bundle, chunk["image"].tolist()))
    return CatalogSearch.from_vectors(bundle, np.concatenate(ids), np.concatenate(vectors), catalog_dir)
