"""Metrics on cases small enough to work out by hand; the expected numbers are literals."""

from math import log2

import numpy as np
import pytest

from modaclip.core.errors import ModaclipError
from modaclip.core.metrics import (
    accuracy,
    count_relevant,
    mean_reciprocal_rank,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    relevance,
    top_k,
    weighted_f1,
)

# 3 queries x 5 gallery items.
SCORES = np.array(
    [
        [0.1, 0.9, 0.5, 0.9, 0.3],  # 1 and 3 tie at the top: lower index first
        [0.2, 0.2, 0.2, 0.2, 0.2],  # all tied: plain index order
        [0.5, 0.1, 0.5, 0.9, 0.5],  # 0, 2, 4 tie across the top-3 boundary: 0 and 2 make it
    ]
)
QUERY_KEYS = ["a", "b", "c"]
GALLERY_KEYS = ["b", "a", "c", "a", "c"]
# ranked = top_k(SCORES, 3) = [[1, 3, 2], [0, 1, 2], [3, 0, 2]]; gallery keys at those ranks:
# q0 "a": a a c -> T T F;  q1 "b": b a c -> T F F;  q2 "c": a b c -> F F T
REL = np.array([[True, True, False], [True, False, False], [False, False, True]])
NUM_RELEVANT = np.array([2, 1, 2])  # "a" twice, "b" once, "c" twice in the gallery


def test_top_k_sorts_by_score_and_breaks_ties_by_index():
    assert top_k(SCORES, 3).tolist() == [[1, 3, 2], [0, 1, 2], [3, 0, 2]]


def test_top_k_tie_at_the_boundary_keeps_the_lowest_index():
    assert top_k(SCORES, 2).tolist() == [[1, 3], [0, 1], [3, 0]]


def test_top_k_larger_than_gallery_returns_the_whole_ranking():
    assert top_k(SCORES, 10).tolist() == [[1, 3, 2, 4, 0], [0, 1, 2, 3, 4], [3, 0, 2, 4, 1]]


def test_top_k_exclude_self_drops_the_diagonal():
    scores = np.array(
        [
            [1.0, 0.2, 0.8, 0.5],  # without 0: 2 (0.8), 3 (0.5), 1 (0.2)
            [0.2, 1.0, 0.3, 0.3],  # without 1: 2, 3 tie at 0.3, then 0
            [0.8, 0.3, 1.0, 0.1],  # without 2: 0, 1, 3
            [0.5, 0.3, 0.1, 1.0],  # without 3: 0, 1, 2
        ]
    )
    assert top_k(scores, 2, exclude_self=True).tolist() == [[2, 3], [2, 3], [0, 1], [0, 1]]
    assert top_k(scores, 10, exclude_self=True).tolist() == [
        [2, 3, 1],
        [2, 3, 0],
        [0, 1, 3],
        [0, 1, 2],
    ]


def test_top_k_exclude_self_holds_when_every_score_is_minus_infinity():
    scores = np.full((3, 3), -np.inf)
    assert top_k(scores, 2, exclude_self=True).tolist() == [[1, 2], [0, 2], [0, 1]]


def test_top_k_exclude_self_on_one_item_returns_no_columns():
    assert top_k(np.ones((1, 1)), 5, exclude_self=True).shape == (1, 0)


@pytest.mark.parametrize("exclude_self", [False, True])
def test_top_k_chunking_matches_one_chunk_and_a_full_stable_sort(exclude_self):
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(37, 37)).astype(np.float32)  # many ties
    whole = top_k(scores, 6, exclude_self=exclude_self, chunk_size=1024)
    for chunk_size in (1, 5, 36):
        chunked = top_k(scores, 6, exclude_self=exclude_self, chunk_size=chunk_size)
        np.testing.assert_array_equal(chunked, whole)
    if exclude_self:
        np.fill_diagonal(scores, -np.inf)
    reference = np.argsort(-scores, axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(whole, reference)


@pytest.mark.parametrize("k", [0, -1])
def test_top_k_rejects_k_below_one(k):
    with pytest.raises(ModaclipError, match=f"k={k}"):
        top_k(SCORES, k)


def test_top_k_exclude_self_needs_a_square_matrix():
    with pytest.raises(ModaclipError, match="exclude_self"):
        top_k(SCORES, 2, exclude_self=True)


def test_top_k_rejects_nan_scores():
    with pytest.raises(ModaclipError, match="NaN"):
        top_k(np.array([[0.1, np.nan]]), 1)


def test_relevance_compares_ranked_gallery_keys_with_the_query_key():
    ranked = top_k(SCORES, 3)
    np.testing.assert_array_equal(relevance(ranked, QUERY_KEYS, GALLERY_KEYS), REL)


def test_relevance_with_tuple_keys_and_missing_keys():
    gallery = [("Men", "Red"), ("Men", "Blue"), ("Women", "Blue"), None]
    queries = [("Men", "Red"), ("Women", "Blue"), None]
    ranked = np.array([[1, 0], [2, 0], [3, 0]])
    # q0 (Men, Red): (Men, Blue) F, (Men, Red) T;  q1: (Women, Blue) T, (Men, Red) F;
    # q2 None matches nothing, not even the gallery's None.
    expected = [[False, True], [True, False], [False, False]]
    assert relevance(ranked, queries, gallery).tolist() == expected


def test_count_relevant():
    assert count_relevant(QUERY_KEYS, GALLERY_KEYS).tolist() == [2, 1, 2]
    assert count_relevant(["z", None], [*GALLERY_KEYS, None]).tolist() == [0, 0]


def test_count_relevant_exclude_self_does_not_count_the_query():
    keys = ["a", "b", "a", "a"]
    assert count_relevant(keys, keys, exclude_self=True).tolist() == [2, 0, 2, 2]


def test_recall_with_multiple_relevant_items():
    # @1: q0 1/2, q1 1/1, q2 0/2 -> 1.5 / 3;  @3: q0 2/2, q1 1/1, q2 1/2 -> 2.5 / 3
    assert recall_at_k(REL, NUM_RELEVANT, 1) == pytest.approx(0.5)
    assert recall_at_k(REL, NUM_RELEVANT, 3) == pytest.approx(2.5 / 3)


def test_recall_leaves_out_queries_without_relevant_items():
    rel = np.vstack([REL, [False, False, False]])
    assert recall_at_k(rel, np.append(NUM_RELEVANT, 0), 1) == pytest.approx(0.5)


def test_precision_divides_by_k_even_past_the_retrieved_columns():
    # @1: (1 + 1 + 0) / 3;  @3: (2/3 + 1/3 + 1/3) / 3 = 4/9;  @5 on 3 columns: (2 + 1 + 1) / 5 / 3
    assert precision_at_k(REL, 1) == pytest.approx(2 / 3)
    assert precision_at_k(REL, 3) == pytest.approx(4 / 9)
    assert precision_at_k(REL, 5) == pytest.approx(4 / 15)


def test_ndcg_known_values():
    rel = np.array([[True, False, True], [True, True, True], [False, True, False]])
    # relevant at ranks 1 and 3, 2 relevant: (1 + 1/log2(4)) / (1 + 1/log2(3))
    # ranks 1-3 with 5 relevant: the ideal is capped at k = 3 items, so 1.0
    # relevant at rank 2, 1 relevant: (1/log2(3)) / 1
    expected = [(1 + 1 / 2) / (1 + 1 / log2(3)), 1.0, 1 / log2(3)]
    assert ndcg_at_k(rel[:1], [2], 3) == pytest.approx(expected[0])
    assert ndcg_at_k(rel, [2, 5, 1], 3) == pytest.approx(sum(expected) / 3)


def test_ndcg_leaves_out_queries_without_relevant_items():
    rel = np.array([[True, False, True], [False, False, False]])
    assert ndcg_at_k(rel, [2, 0], 3) == pytest.approx((1 + 1 / 2) / (1 + 1 / log2(3)))


def test_mean_reciprocal_rank():
    rel = np.array([[False, True, False], [True, False, False], [False, False, False], [False, False, True]])
    # (1/2 + 1 + 0 + 1/3) / 4 = 11/24
    assert mean_reciprocal_rank(rel) == pytest.approx(11 / 24)


def test_mean_reciprocal_rank_of_an_empty_ranking_is_zero():
    assert mean_reciprocal_rank(np.zeros((2, 0), dtype=bool)) == 0.0


@pytest.mark.parametrize("metric", [recall_at_k, ndcg_at_k])
def test_metrics_refuse_k_beyond_the_retrieved_ranks(metric):
    with pytest.raises(ModaclipError, match="k=4"):
        metric(REL, NUM_RELEVANT, 4)


@pytest.mark.parametrize(
    "call",
    [
        lambda: recall_at_k(REL, NUM_RELEVANT, 0),
        lambda: ndcg_at_k(REL, NUM_RELEVANT, 0),
        lambda: precision_at_k(REL, 0),
    ],
)
def test_metrics_refuse_k_below_one(call):
    with pytest.raises(ModaclipError, match="k=0"):
        call()


def test_recall_without_any_relevant_query_is_an_error():
    with pytest.raises(ModaclipError, match="recall@1"):
        recall_at_k(REL, [0, 0, 0], 1)


def test_accuracy():
    assert accuracy(["a", "a", "b", "c"], ["a", "b", "b", "c"]) == pytest.approx(3 / 4)


Y_TRUE = ["cat", "cat", "cat", "dog", "dog", "bird"]
Y_PRED = ["cat", "dog", "cat", "dog", "bird", "bird"]


def test_weighted_f1_three_classes():
    # F1 = 2 TP / (true + predicted):
    # cat: TP 2, true 3, predicted 2 -> 4/5;  dog: TP 1, 2, 2 -> 1/2;  bird: TP 1, 1, 2 -> 2/3
    # weighted by true support 3, 2, 1: (3 * 4/5 + 2 * 1/2 + 1 * 2/3) / 6 = 61/90
    assert weighted_f1(Y_TRUE, Y_PRED) == pytest.approx(61 / 90)


def test_weighted_f1_class_only_predicted_weighs_nothing():
    # a: TP 1, true 2, predicted 1 -> 2/3;  b: 1, 1, 1 -> 1;  c: support 0
    # (2 * 2/3 + 1 * 1) / 3 = 7/9
    assert weighted_f1(["a", "a", "b"], ["a", "c", "b"]) == pytest.approx(7 / 9)


def test_weighted_f1_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 5, size=(2, 200))
    expected = metrics.f1_score(y_true, y_pred, average="weighted")
    assert weighted_f1(y_true, y_pred) == pytest.approx(expected)


def test_classification_metrics_reject_mismatched_or_missing_labels():
    with pytest.raises(ModaclipError, match="y_true has 2 labels but y_pred has 1"):
        accuracy(["a", "b"], ["a"])
    with pytest.raises(ModaclipError, match="y_pred has a missing label at position 1"):
        weighted_f1(["a", "b"], ["a", None])
