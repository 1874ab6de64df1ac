"""Simulated shoppers for the embedded default: a search log in the format `modaclip serve` writes.

Deliberately simple (docs/feedback.md); it demonstrates the loop's mechanics, and says nothing about
how real shoppers behave:

- a pool of `pool` distinct queries in shoppers' words, judged by the catalog's attributes
  (evaluate/shopper_queries.py's generator, with this simulation's own seed); their popularity is
  Zipf-like (the query of rank r is drawn with weight 1/r^zipf), so head queries repeat;
- each of `searches` searches is one draw, by a shopper (session) drawn among `shoppers`, at
  `start + i * seconds_between`; it shows the top `page` products of the catalog-fine-tuned model's
  vector ranking (the model a shop would be serving);
- a position-based click model: the shopper examines position p with probability (1/p)^eta, opens
  an examined product with `open_probability[grade]` (its grade for the query: 0, 1 or 2) and adds
  an opened grade-2 product with `add_probability`.

Everything is drawn from one seeded generator, so the same inputs write the same log. Beside the log
the simulation writes what only a simulation knows, every pool query's judgments by the catalog's
attributes (`truth/`, BEIR layout, the export's query ids): evaluate-feedback scores the held-out
logged queries by them too, free of the bias of click judgments (docs/feedback.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from modaclip.core.atomic import atomic_directory
from modaclip.core.config import FeedbackSimulateParams
from modaclip.evaluate.judged_queries import JudgedQueries
from modaclip.evaluate.query_sets import judged_catalog
from modaclip.evaluate.shopper_queries import shopper_queries
from modaclip.feedback import log_schema
from modaclip.feedback.export import normalise, write_beir
from modaclip.feedback.log_files import seal
from modaclip.feedback.log_schema import EventRecord, SearchRecord
from modaclip.search.engine import CatalogSearch

LOG_NAME = "log-000.sqlite"
TRUTH = "truth"  # the pool's attribute judgments, beside the log
MODEL_NAME = "finetuned"  # the logged model: the catalog-fine-tuned one the simulated shop serves


def query_pool(catalog_dir: Path, params: FeedbackSimulateParams, train_fields: Sequence[str]) -> JudgedQueries:
    catalog, fields = judged_catalog(catalog_dir)
    return shopper_queries(
        catalog, fields, params.pool, train_fields=train_fields, source="simulated shoppers", seed=params.seed
    )


def pool_judgments(pool: JudgedQueries) -> pd.DataFrame:
    """(query, product_id, grade) of every judged product of every pool query, the query normalised as the export's."""
    rows = [
        (normalise(pool.queries[query]), product, grade)
        for query, judged in pool.qrels.items()
        for product, grade in judged.items()
    ]
    return pd.DataFrame(rows, columns=["query", "product_id", "grade"])


def search_id(seed: int, number: int) -> str:
    """32 hex digits, as the server's uuid4 ids, but a function of (seed, number)."""
    return hashlib.sha256(f"simulated-{seed}-{number}".encode()).hexdigest()[:32]


def simulate(
    pool: JudgedQueries, rankings: Sequence[Sequence[str]], params: FeedbackSimulateParams
) -> tuple[list[SearchRecord], list[EventRecord]]:
    """The log's records: `rankings[q]` is the page (product ids, best first) shown for pool query q."""
    rng = np.random.default_rng(params.seed)
    query_ids = list(pool.queries)
    popularity = 1.0 / np.arange(1, len(query_ids) + 1) ** params.zipf
    drawn = rng.choice(len(query_ids), size=params.searches, p=popularity / popularity.sum())
    sessions = rng.integers(params.shoppers, size=params.searches)
    open_by_grade = np.asarray(params.open_probability)
    searches, events = [], []
    for number, (q, session) in enumerate(zip(drawn, sessions)):
        at = float(params.start + number * params.seconds_between)
        shown = list(rankings[q])
        sid = search_id(params.seed, number)
        searches.append(
            SearchRecord(
                search_id=sid,
                at=at,
                kind="text",
                query=pool.queries[query_ids[q]],
                filters={},
                session=f"shopper-{session:05d}",
                model=MODEL_NAME,
                mode="vector",
                offset=0,
                shown=shown,
            )
        )
        grades = pool.qrels[query_ids[q]]
        positions = np.arange(1, len(shown) + 1)
        examined = rng.random(len(shown)) < (1.0 / positions) ** params.eta
        opened = examined & (rng.random(len(shown)) < open_by_grade[[grades.get(p, 0) for p in shown]])
        added = rng.random(len(shown)) < params.add_probability
        for i in np.flatnonzero(opened):
            events.append(EventRecord(sid, shown[i], "open", at + 1.0 + i))
            if added[i] and grades.get(shown[i], 0) == 2:
                events.append(EventRecord(sid, shown[i], "add", at + 2.0 + i))
    return searches, events


def simulate_log(
    model_dir: str | Path,
    embeddings_dir: str | Path,
    catalog_dir: str | Path,
    *,
    out: str | Path,
    params: FeedbackSimulateParams,
    train_fields: Sequence[str],
) -> dict[str, int]:
    """Simulate the shoppers against the model's catalog search and write `out`/log-000.sqlite; returns counts."""
    pool = query_pool(Path(catalog_dir), params, train_fields)
    search = CatalogSearch.open(model_dir, embeddings_dir, catalog_dir)
    page = min(params.page, len(search))
    hits = search.search_text(list(pool.queries.values()), page)
    rankings = [[str(hit.id) for hit in found] for found in hits]
    searches, events = simulate(pool, rankings, params)
    with atomic_directory(out) as tmp:
        conn = log_schema.connect(tmp / LOG_NAME)
        try:
            log_schema.write(conn, searches, events)
            seal(conn)
        finally:
            conn.close()
        write_beir(tmp / TRUTH, pool_judgments(pool))
    return {"queries": len(pool.queries), "searches": len(searches), "events": len(events)}
