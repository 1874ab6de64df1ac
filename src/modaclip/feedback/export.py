"""`modaclip feedback export`: a search log (one or more files) -> training pairs and held-out judged queries.

What the export writes to its folder (atomically; the same log gives the same bytes):

- `pairs.parquet`: one row per (query, product) clicked in the training period: `query` (normalised:
  lowercase, whitespace collapsed), `product_id`, `label` (the best grade any click gave it: open 1,
  add 2), `clicks` (searches in which it was clicked) and `weight` (the sum over those clicks of
  grade / propensity, the click-model correction for position bias below); sorted by query, product.
- `heldout/` and `heldout_unseen/`: judged query sets in the BEIR layout (evaluate/judged_queries.py):
  each query of the held-out period with the products clicked for it, graded as above. `heldout_unseen`
  keeps only the queries never typed in the training period: the test of generalisation.
- `summary.json`: what was read, matched, dropped and written.

The split is by time: the latest `heldout_fraction` of text searches (by `at`, ties by search_id) are
held out and training pairs come only from earlier ones, as a model shipped today is judged on
tomorrow's queries. Only text searches make pairs. A query typed by fewer than `min_shoppers` distinct
shoppers (sessions; a search without a session is its own shopper) over the whole log is dropped.

Position bias: shoppers look at the top of a page more than its bottom, so a click at position 1
says less about relevance than one at 10. A click's weight is its grade divided by the propensity
(1/position)^eta that its position was examined at all (inverse propensity scoring), the inverse
clipped at `max_weight`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modaclip.core.atomic import atomic_directory
from modaclip.core.config import FeedbackExportParams
from modaclip.evaluate.judged_queries import BEIR_HEADER, BEIR_QRELS, BEIR_QUERIES
from modaclip.feedback.log_schema import LogTables, read_log

PAIRS = "pairs.parquet"
HELDOUT = "heldout"
HELDOUT_UNSEEN = "heldout_unseen"
SUMMARY = "summary.json"
GRADES = {"open": 1, "add": 2}
PAIR_COLUMNS = ["query", "product_id", "label", "clicks", "weight"]


def normalise(query: str) -> str:
    """Case and whitespace folded: "  Red  Dress " and "red dress" are one query."""
    return " ".join(query.lower().split())


def inverse_propensity(position: int, eta: float, max_weight: float) -> float:
    """1 / (1/position)^eta, clipped at max_weight."""
    return min(max_weight, float(position) ** eta)


@dataclass(frozen=True)
class Export:
    """The export's tables: training pairs, held-out judgments (query, product_id, grade), the unseen subset's
    queries, and the summary."""

    pairs: pd.DataFrame
    heldout: pd.DataFrame
    unseen: frozenset[str]
    summary: dict[str, Any]


def text_searches(log: LogTables) -> pd.DataFrame:
    """Text searches with a non-empty normalised query, in time order (ties by search_id), with their shopper."""
    searches = log.searches
    if not len(searches):
        return pd.DataFrame(columns=["search_id", "at", "query", "shopper", "offset", "shown"])
    text = searches[(searches["kind"] == "text") & searches["query"].notna()].copy()
    text["query"] = text["query"].map(normalise)
    text = text[text["query"] != ""]
    text["shopper"] = text["session"].where(text["session"].notna(), "search:" + text["search_id"])
    return text.sort_values(["at", "search_id"], kind="stable").reset_index(drop=True)


def positions_shown(searches: pd.DataFrame) -> dict[str, dict[str, int]]:
    """search_id -> {product id: its position on the page (1-based, counting the offset); a repeat keeps the first}."""
    pages: dict[str, dict[str, int]] = {}
    for search_id, offset, shown in zip(
        searches.get("search_id", []), searches.get("offset", []), searches.get("shown", [])
    ):
        page: dict[str, int] = {}
        for i, product in enumerate(shown):
            page.setdefault(str(product), offset + i + 1)
        pages[search_id] = page
    return pages


def clicked(log: LogTables, searches: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """(search_id, product_id, grade, position) per clicked result of the given searches (the best event's grade),
    and the count of events that match no search of the log or name a product the search did not show."""
    events = log.events
    counts = {"search_not_in_log": 0, "product_not_shown": 0}
    if not len(events):
        return pd.DataFrame(columns=["search_id", "product_id", "grade", "position"]), counts
    known = set(log.searches["search_id"]) if len(log.searches) else set()
    counts["search_not_in_log"] = int((~events["search_id"].isin(known)).sum())
    shown = positions_shown(log.searches)
    positions = [shown.get(s, {}).get(str(p)) for s, p in zip(events["search_id"], events["product_id"])]
    events = events.assign(position=positions, grade=events["event"].map(GRADES))
    known_events = events[events["search_id"].isin(known)]
    counts["product_not_shown"] = int(known_events["position"].isna().sum())
    matched = known_events[
        known_events["position"].notna() & known_events["search_id"].isin(set(searches["search_id"]))
    ]
    best = matched.groupby(["search_id", "product_id"], as_index=False).agg(
        grade=("grade", "max"), position=("position", "first")
    )
    best["position"] = best["position"].astype(int)
    return best, counts


def export_log(log: LogTables, params: FeedbackExportParams) -> Export:
    """The pairs, held-out judgments and summary of a log (pure: no files)."""
    searches = text_searches(log)
    shoppers = searches.groupby("query")["shopper"].nunique()
    common = set(shoppers[shoppers >= params.min_shoppers].index)
    held = math.ceil(len(searches) * params.heldout_fraction) if len(searches) else 0
    split = len(searches) - held
    searches["period"] = ["train"] * split + ["heldout"] * held
    kept = searches[searches["query"].isin(common)]
    clicks, unmatched = clicked(log, kept)
    clicks = clicks.merge(kept[["search_id", "query", "period"]], on="search_id")
    clicks["weight"] = [
        grade * inverse_propensity(position, params.eta, params.max_weight)
        for grade, position in zip(clicks["grade"], clicks["position"])
    ]
    train_clicks = clicks[clicks["period"] == "train"]
    pairs = (
        train_clicks.groupby(["query", "product_id"], as_index=False)
        .agg(label=("grade", "max"), clicks=("search_id", "nunique"), weight=("weight", "sum"))
        .sort_values(["query", "product_id"])
        .reset_index(drop=True)
    )
    pairs["label"] = pairs["label"].astype("int64")
    pairs["clicks"] = pairs["clicks"].astype("int64")
    heldout = (
        clicks[clicks["period"] == "heldout"]
        .groupby(["query", "product_id"], as_index=False)
        .agg(grade=("grade", "max"))
        .sort_values(["query", "product_id"])
        .reset_index(drop=True)
    )
    training_queries = set(searches.loc[searches["period"] == "train", "query"])
    unseen = frozenset(q for q in heldout["query"] if q not in training_queries)
    summary = {
        "searches": len(log.searches),
        "text_searches": len(searches),
        "events": len(log.events),
        "unmatched_events": unmatched,
        "queries": len(shoppers),
        "queries_dropped_as_rare": len(shoppers) - len(common),
        "searches_dropped_as_rare": int(len(searches) - len(kept)),
        "split_at": float(searches["at"].iloc[split]) if held else None,
        "training_searches": split,
        "heldout_searches": held,
        "pairs": len(pairs),
        "heldout_queries": int(heldout["query"].nunique()),
        "heldout_unseen_queries": len(unseen),
        "params": params.model_dump(),
    }
    return Export(pairs[PAIR_COLUMNS], heldout, unseen, summary)


def query_id(query: str) -> str:
    """A query's id in the judged sets: stable across exports of a growing log."""
    return "q" + hashlib.sha256(query.encode()).hexdigest()[:12]


def write_beir(folder: Path, judgments: pd.DataFrame) -> None:
    """judgments (query, product_id, grade) as BEIR's queries.jsonl and qrels/test.tsv, sorted by query id."""
    judgments = judgments.assign(query_id=judgments["query"].map(query_id)).sort_values(["query_id", "product_id"])
    queries = judgments.drop_duplicates("query_id")
    (folder / BEIR_QRELS).parent.mkdir(parents=True)
    (folder / BEIR_QUERIES).write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in zip(queries["query_id"], queries["query"]))
    )
    lines = ["\t".join(BEIR_HEADER)] + [
        f"{q}\t{p}\t{g}" for q, p, g in zip(judgments["query_id"], judgments["product_id"], judgments["grade"])
    ]
    (folder / BEIR_QRELS).write_text("\n".join(lines) + "\n")


def write_export(export: Export, out: str | Path) -> None:
    """The export's files, replacing `out` whole when complete."""
    with atomic_directory(out) as tmp:
        table = pa.Table.from_pandas(export.pairs, preserve_index=False).replace_schema_metadata(None)
        pq.write_table(table, tmp / PAIRS)
        write_beir(tmp / HELDOUT, export.heldout)
        write_beir(tmp / HELDOUT_UNSEEN, export.heldout[export.heldout["query"].isin(export.unseen)])
        (tmp / SUMMARY).write_text(json.dumps(export.summary, indent=2, sort_keys=True) + "\n")


def export_feedback(paths: Sequence[str | Path], out: str | Path, params: FeedbackExportParams) -> dict[str, Any]:
    """Read the logs, write the export to `out`; returns its summary."""
    export = export_log(read_log(list(paths)), params)
    write_export(export, out)
    return export.summary
