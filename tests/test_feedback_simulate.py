"""The simulated shoppers: deterministic, position-biased, and a log the export reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modaclip.core.config import FeedbackExportParams, FeedbackSimulateParams
from modaclip.evaluate.judged_queries import JudgedQueries, load_beir
from modaclip.feedback.export import export_feedback
from modaclip.feedback.log_schema import read_log
from modaclip.feedback.simulate import LOG_NAME, TRUTH, simulate, simulate_log

PAGE = 10


def every_product_relevant() -> tuple[JudgedQueries, list[list[str]]]:
    """Three queries whose whole page is grade 2, so clicks differ by position alone."""
    queries = {f"q{i}": f"query {i}" for i in range(3)}
    rankings = [[f"{q}{p}" for p in range(PAGE)] for q in range(3)]
    qrels = {f"q{q}": {product: 2 for product in rankings[q]} for q in range(3)}
    return JudgedQueries(name="pool", source="test", queries=queries, qrels=qrels), rankings


def test_click_rates_fall_with_position() -> None:
    pool, rankings = every_product_relevant()
    params = FeedbackSimulateParams(searches=3000, page=PAGE, eta=1.0, open_probability=[0.0, 0.5, 1.0])
    searches, events = simulate(pool, rankings, params)
    position = {(s.search_id, p): i + 1 for s in searches for i, p in enumerate(s.shown)}
    opens = np.bincount([position[e.search_id, e.product_id] for e in events if e.event == "open"], minlength=PAGE + 1)
    rates = opens[1:] / len(searches)
    # examined with (1/p)^1 and always opened: the open rate at p is 1/p, within sampling error
    assert np.allclose(rates, 1.0 / np.arange(1, PAGE + 1), atol=0.03), rates
    assert all(rates[i] > rates[i + 3] for i in range(PAGE - 3))
    adds = sum(e.event == "add" for e in events)
    assert 0.25 < adds / opens.sum() < 0.35  # add_probability 0.3 of opened grade-2 products


def test_irrelevant_products_are_rarely_opened_and_popular_queries_repeat() -> None:
    pool, rankings = every_product_relevant()
    pool.qrels["q1"].clear()  # nothing is relevant to query 1
    params = FeedbackSimulateParams(searches=2000, page=PAGE, open_probability=[0.0, 0.3, 0.7])
    searches, events = simulate(pool, rankings, params)
    query_of = {s.search_id: s.query for s in searches}
    assert not [e for e in events if query_of[e.search_id] == "query 1"]
    counts = pd.Series([s.query for s in searches]).value_counts()
    assert counts["query 0"] > counts["query 1"] > counts["query 2"]  # Zipf: rank 1 the most drawn


def test_simulation_is_deterministic_and_the_export_reads_it(served_paths: dict[str, Path], tmp_path: Path) -> None:
    params = FeedbackSimulateParams(searches=300, shoppers=40, pool=30, page=8)
    fields = ["{captions}"]
    args = (served_paths["model"], served_paths["embeddings"], served_paths["catalog"])
    counts = simulate_log(*args, out=tmp_path / "a", params=params, train_fields=fields)
    simulate_log(*args, out=tmp_path / "b", params=params, train_fields=fields)
    assert (tmp_path / "a" / LOG_NAME).read_bytes() == (tmp_path / "b" / LOG_NAME).read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [LOG_NAME, TRUTH], "a -wal or -shm file was left"
    truth = load_beir(tmp_path / "a" / TRUTH, "truth")
    assert len(truth.queries) == counts["queries"] == 30
    log = read_log([tmp_path / "a" / LOG_NAME])
    assert len(log.searches) == counts["searches"] == 300 and len(log.events) == counts["events"] > 0
    assert log.searches["shown"].map(len).eq(8).all() and log.searches["session"].nunique() <= 40
    summary = export_feedback([tmp_path / "a" / LOG_NAME], tmp_path / "out", FeedbackExportParams())
    assert summary["unmatched_events"] == {"search_not_in_log": 0, "product_not_shown": 0}
    assert summary["pairs"] > 0 and summary["heldout_queries"] > 0
    heldout = load_beir(tmp_path / "out" / "heldout", "heldout")
    assert set(heldout.queries) <= set(truth.queries), "the truth's query ids are the export's"
