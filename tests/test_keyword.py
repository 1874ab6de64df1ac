import numpy as np
import pytest

from modaclip.search.keyword import BM25, reciprocal_rank_fusion


def test_bm25_scores_only_documents_with_query_words() -> None:
    bm25 = BM25(["red dress for women", "blue jeans", "red red shoes", "watch"])
    scores = bm25.scores("Red shoes")
    assert scores[1] == 0 and scores[3] == 0
    assert scores[2] > scores[0] > 0  # both words, and 'red' twice, beats one word


def test_bm25_rare_words_weigh_more_than_common_ones() -> None:
    bm25 = BM25(["red shirt", "red dress", "red belt", "green shirt"])
    assert bm25.scores("green")[3] > bm25.scores("red")[0]


def test_bm25_matches_the_okapi_formula() -> None:
    docs = ["a b b", "b c", "c c c d"]
    bm25, k1, b = BM25(docs), 1.2, 0.75
    avgdl = np.mean([3, 2, 4])
    idf = np.log1p((3 - 2 + 0.5) / (2 + 0.5))  # 'b' is in two of three documents
    expected = idf * 2 * (k1 + 1) / (2 + k1 * (1 - b + b * 3 / avgdl))
    assert bm25.scores("b")[0] == pytest.approx(expected, rel=1e-5)


def test_unknown_query_words_score_nothing() -> None:
    assert not BM25(["red dress"]).scores("zebra").any()


def test_rrf_rewards_rows_ranked_well_by_both() -> None:
    rows, scores = reciprocal_rank_fusion([np.array([1, 2, 3]), np.array([2, 9, 3])], k=3)
    assert rows.tolist() == [2, 3, 1]
    assert scores[0] == pytest.approx(1 / 62 + 1 / 61)
