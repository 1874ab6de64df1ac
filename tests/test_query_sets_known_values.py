"""Judged query sets on a four-product catalog: hand-computed nDCG@10, Recall and MRR through ir-measures and
through the project's own metric code; the BEIR and TREC loaders on tiny files; judgments of products the
catalog lacks counted; malformed lines named by file and line.

Products 1-4. Graded judgments (2 = exact, 1 = partial, unjudged = not relevant) and each query's ranking:
  q1 {1: 2, 3: 1}          ranked 2, 1, 4, 3  -> gains 0, 2, 0, 1
  q2 {4: 1}                ranked 1, 2, 3, 4  -> gains 0, 0, 0, 1
  q3 {2: 2, 3: 2, 4: 1}    ranked 3, 1        -> gains 2, 0   (a search that returned two products)
DCG = sum gain / log2(rank + 1); the ideal DCG sorts the query's judged gains, best first.
"""

from __future__ import annotations

from math import log2
from pathlib import Path

import numpy as np
import pytest

from modaclip.core.config import PromoteParams
from modaclip.core.errors import ModaclipError
from modaclip.core.metrics import mean_reciprocal_rank, ndcg_per_query, recall_per_query
from modaclip.evaluate.headline import headline_metrics
from modaclip.evaluate.judged_queries import JudgedQueries, load_beir, load_trec, set_name
from modaclip.evaluate.markdown_report import markdown_report
from modaclip.evaluate.query_sets import in_catalog, open_query_sets, score_rankings
from modaclip.registry.promotion import decide

QRELS = {"q1": {"1": 2, "3": 1}, "q2": {"4": 1}, "q3": {"2": 2, "3": 2, "4": 1}}
RANKINGS = {"q1": [2, 1, 4, 3], "q2": [1, 2, 3, 4], "q3": [3, 1]}

NDCG = {
    "q1": (2 / log2(3) + 1 / log2(5)) / (2 + 1 / log2(3)),
    "q2": (1 / log2(5)) / 1,
    "q3": 2 / (2 + 2 / log2(3) + 1 / log2(4)),
}
RECALL = {"q1": 2 / 2, "q2": 1 / 1, "q3": 1 / 3}  # at 10 and at 50 alike: no ranking is longer than 4
MRR = {"q1": 1 / 2, "q2": 1 / 4, "q3": 1 / 1}


def test_library_figures_equal_the_hand_computed_ones() -> None:
    figures = score_rankings(QRELS, RANKINGS)
    assert figures == pytest.approx(
        {
            "ndcg@10": sum(NDCG.values()) / 3,
            "recall@10": sum(RECALL.values()) / 3,
            "recall@50": sum(RECALL.values()) / 3,
            "mrr@10": sum(MRR.values()) / 3,
        }
    )
    assert figures["ndcg@10"] == pytest.approx((0.64332 + 0.43068 + 0.53165) / 3, abs=1e-5)


def binary_matrix(rankings: dict[str, list[int]], qrels: dict[str, dict[str, int]], depth: int) -> np.ndarray:
    """[query, rank] True where the ranked product is judged relevant (grade > 0); short rankings padded with misses."""
    rel = np.zeros((len(rankings), depth), dtype=bool)
    for row, (query, ranked) in enumerate(rankings.items()):
        for rank, product in enumerate(ranked):
            rel[row, rank] = qrels[query].get(str(product), 0) > 0
    return rel


def test_project_metric_code_agrees_with_the_library_on_binary_judgments() -> None:
    """core/metrics has binary gains: both score the judgments made binary, over all four ranks (= @10 here)."""
    binary = {query: {product: 1 for product, grade in judged.items() if grade > 0} for query, judged in QRELS.items()}
    library = score_rankings(binary, RANKINGS)
    rel = binary_matrix(RANKINGS, binary, depth=4)
    relevant = np.array([len(judged) for judged in binary.values()])
    assert recall_per_query(rel, relevant, 4).mean() == pytest.approx(library["recall@10"])
    assert mean_reciprocal_rank(rel) == pytest.approx(library["mrr@10"])
    assert ndcg_per_query(rel, relevant, 4).mean() == pytest.approx(library["ndcg@10"])
    # binary gains change q1 and q3 only: q1 (1/log2 3 + 1/log2 5) / (1 + 1/log2 3), q3 1 / (1 + 1/log2 3 + 1/2)
    assert library["ndcg@10"] == pytest.approx(
        ((1 / log2(3) + 1 / log2(5)) / (1 + 1 / log2(3)) + NDCG["q2"] + 1 / (1 + 1 / log2(3) + 1 / 2)) / 3
    )


def write_beir(folder: Path, queries: list[str], qrels: list[str]) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n", encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n", encoding="utf-8")
    return folder


BEIR_QUERIES = ['{"_id": "q1", "text": "white  sneakers"}', '{"_id": "q2", "text": "tee for him"}']
BEIR_QRELS = ["query-id\tcorpus-id\tscore", "q1\t1\t2", "q1\t3\t1", "q2\t4\t1"]


def test_beir_folder_loads(tmp_path: Path) -> None:
    judged = load_beir(write_beir(tmp_path / "shop-log", BEIR_QUERIES, BEIR_QRELS), "beir:x")
    assert judged.name == "shop-log"
    assert judged.queries == {"q1": "white sneakers", "q2": "tee for him"}
    assert judged.qrels == {"q1": {"1": 2, "3": 1}, "q2": {"4": 1}}


def test_trec_files_load(tmp_path: Path) -> None:
    (tmp_path / "labels.v2.qrels").write_text("q1 0 1 2\nq1 0 3 1\n\nq2 Q0 4 1\n", encoding="utf-8")
    (tmp_path / "queries.tsv").write_text("q1\twhite sneakers\nq2\ttee for him\nq3\tunjudged\n", encoding="utf-8")
    judged = load_trec(tmp_path / "labels.v2.qrels", tmp_path / "queries.tsv", "trec:x")
    assert judged.name == "labels_v2"  # a dot would split the set's dotted path in eval.json
    assert judged.queries == {"q1": "white sneakers", "q2": "tee for him", "q3": "unjudged"}
    assert judged.qrels == {"q1": {"1": 2, "3": 1}, "q2": {"4": 1}}


def test_products_the_catalog_lacks_are_counted_and_left_out() -> None:
    judged = JudgedQueries(
        name="s", source="beir:s", queries={"q1": "a", "q2": "b", "q3": "c"}, qrels={**QRELS, "q2": {"9": 1, "8": 0}}
    )
    scored, summary = in_catalog(judged, {"1", "2", "3", "4"})
    assert scored.qrels == {"q1": QRELS["q1"], "q3": QRELS["q3"]}  # q2 judged only products the catalog lacks
    assert list(scored.queries) == ["q1", "q3"]
    assert summary["judgments_not_in_catalog"] == 2 and summary["products_not_in_catalog"] == 2
    assert (summary["judged_queries"], summary["scored_queries"], summary["judgments"]) == (3, 2, 7)
    assert summary["relevant_per_query"] == pytest.approx((2 + 3) / 2)
    assert summary["recall@10_ceiling"] == pytest.approx(1.0)


def test_a_set_with_no_product_in_the_catalog_stops_the_stage() -> None:
    judged = JudgedQueries(name="s", source="beir:s", queries={"q1": "a"}, qrels={"q1": {"SKU-1": 1}})
    with pytest.raises(ModaclipError, match=r"beir:s: no query has a relevant product in the catalog \(1 judgment"):
        in_catalog(judged, {"1"})


@pytest.mark.parametrize(
    ("queries", "qrels", "message"),
    [
        (BEIR_QUERIES, [*BEIR_QRELS[:2], "q1\t3"], r"qrels/test.tsv:3: expected 3 fields \(query-id corpus-id score\)"),
        (BEIR_QUERIES, [*BEIR_QRELS[:3], "q2\t4\thigh"], r"qrels/test.tsv:4: grade 'high' is not a whole number"),
        (BEIR_QUERIES, BEIR_QRELS[1:], r"qrels/test.tsv:1: expected the header"),
        (BEIR_QUERIES, [*BEIR_QRELS, "q7\t1\t1"], r"qrels/test.tsv:5: query id 'q7' is not in the queries file"),
        (BEIR_QUERIES, [*BEIR_QRELS, "q1\t1\t0"], r"qrels/test.tsv:5: query 'q1' judges product '1' twice"),
        ([BEIR_QUERIES[0], '{"_id": "q2", "text": "tee'], BEIR_QRELS, r"queries.jsonl:2: expected \{\"_id\""),
        ([BEIR_QUERIES[0], '{"id": "q2", "text": "tee"}'], BEIR_QRELS, r"queries.jsonl:2: expected"),
        ([BEIR_QUERIES[0], BEIR_QUERIES[0]], BEIR_QRELS, r"queries.jsonl:2: query id 'q1' appears twice"),
    ],
)
def test_a_malformed_beir_line_is_named_by_file_and_line(
    tmp_path: Path, queries: list[str], qrels: list[str], message: str
) -> None:
    with pytest.raises(ModaclipError, match=message):
        load_beir(write_beir(tmp_path / "set", queries, qrels), "beir:set")


def test_a_malformed_trec_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "q.qrels").write_text("q1 0 1 2\nq1 0 3\n", encoding="utf-8")
    (tmp_path / "q.tsv").write_text("q1\twhite sneakers\n", encoding="utf-8")
    with pytest.raises(ModaclipError, match=r"q.qrels:2: expected 4 fields \(query-id iteration product-id grade\)"):
        load_trec(tmp_path / "q.qrels", tmp_path / "q.tsv", "trec:x")
    (tmp_path / "q.tsv").write_text("q1\twhite sneakers\nq2 tee\n", encoding="utf-8")
    with pytest.raises(ModaclipError, match=r"q.tsv:2: expected query-id<TAB>text, got 1 field"):
        load_trec(tmp_path / "q.qrels", tmp_path / "q.tsv", "trec:x")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bm25:x", r"evaluate.query_sets\[0\]: 'bm25:x' is not beir:<folder>"),
        ("beir:{tmp}/absent", r"evaluate.query_sets\[0\]: folder .*absent not found"),
        ("trec:{tmp}/only.qrels", r"'trec:.*only.qrels' is not trec:<qrels file>:<queries tsv>"),
        ("trec:{tmp}/a.qrels:{tmp}/a.tsv", r"evaluate.query_sets: .*a.tsv not found"),
        ("shoppers:many", r"shoppers:<count> takes a number of queries"),
    ],
)
def test_bad_specs_name_the_parameter(tmp_path: Path, spec: str, message: str) -> None:
    with pytest.raises(ModaclipError, match=message):
        open_query_sets([spec.format(tmp=tmp_path)], tmp_path, [])


def test_two_sets_of_one_name_are_refused(tmp_path: Path) -> None:
    for parent in ("a", "b"):
        write_beir(tmp_path / parent / "shop", BEIR_QUERIES, BEIR_QRELS)
    with pytest.raises(ModaclipError, match=r"evaluate.query_sets\[1\]: a second set named 'shop'"):
        open_query_sets([f"beir:{tmp_path / 'a' / 'shop'}", f"beir:{tmp_path / 'b' / 'shop'}"], tmp_path, [])


def test_set_names_stay_dotted_path_safe() -> None:
    assert set_name("shop log.2024") == "shop_log_2024"
    assert set_name("my-set_1") == "my-set_1"


def eval_report(ndcg: float) -> dict:
    figures = {"vector": {"ndcg@10": ndcg}, "hybrid": {"ndcg@10": ndcg + 0.1}}
    return {
        "query_sets": {"shop": {"queries": 10}},
        "finetuned": {"text_to_image": {"recall@10": 0.9}, "query_sets": {"shop": figures}},
    }


def test_the_headline_has_one_figure_per_set() -> None:
    assert headline_metrics({"train": {}, "eval": eval_report(0.41234)})["shop_ndcg@10"] == 0.4123


def test_the_gate_guards_a_query_sets_ndcg_by_dotted_path() -> None:
    params = PromoteParams(min_gain=0.0, min_confidence=0.0, guarded=["finetuned.query_sets.shop.vector.ndcg@10"])
    kept = decide(eval_report(0.40), eval_report(0.41), params)
    assert kept.passed and kept.checks[1].change == pytest.approx(-0.01)
    dropped = decide(eval_report(0.30), eval_report(0.41), params)
    assert not dropped.passed
    assert "guarded finetuned.query_sets.shop.vector.ndcg@10 0.3000 vs production 0.4100" in dropped.reason


def test_the_example_set_loads_and_is_the_one_in_the_docs() -> None:
    """queries/example, the ten-line example docs/evaluation.md shows, read as the stage reads it."""
    repo = Path(__file__).resolve().parents[1]
    judged = load_beir(repo / "queries" / "example", "beir:queries/example")
    assert len(judged.queries) == 4 and sum(len(q) for q in judged.qrels.values()) == 5
    docs = (repo / "docs" / "evaluation.md").read_text(encoding="utf-8")
    for name in ("queries.jsonl", "qrels/test.tsv"):
        assert _fenced_block(docs, name) == (repo / "queries" / "example" / name).read_text(encoding="utf-8")


def _fenced_block(text: str, title: str) -> str:
    """The text of the fenced block right after a line holding only `title` in backticks."""
    block = text.split(f"\n`{title}`\n", 1)[1].split("```", 2)[1]
    return block.split("\n", 1)[1]


def test_the_markdown_report_states_each_sets_counts() -> None:
    figures = {"query_sets": {"shop": {"vector": {"ndcg@10": 0.25}}}}
    report = {
        "test_items": 4,
        "query_sets": {
            "shop": {"source": "beir:shop", "queries": 12, "scored_queries": 10, "judgments_not_in_catalog": 3}
        },
        "base": figures,
        "finetuned": {"query_sets": {"shop": {"vector": {"ndcg@10": 0.5}}}},
        "delta": figures,
    }
    text = markdown_report(report, published=())
    assert "| query_sets / shop / vector | ndcg@10 | 0.250 | 0.500 | +0.250 |" in text
    assert "Judged query set `shop`: 10 of 12 queries scored over the whole catalog, 3 judgments of products" in text
