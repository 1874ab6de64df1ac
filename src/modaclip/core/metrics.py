"""Retrieval and classification metrics on plain numpy arrays.

Retrieval is evaluated in three steps so each can be tested alone: `top_k` ranks the gallery
for every query, `relevance` marks which ranked items share the query's key, and the metric
functions reduce that boolean matrix to one number. Keys are any hashable value: a product id,
an article type, or a tuple of attribute values.
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from modaclip.core.errors import ModaclipError


def top_k(scores: np.ndarray, k: int, exclude_self: bool = False, chunk_size: int = 1024) -> np.ndarray:
    """Indices [Q, min(k, N - exclude_self)] of the best-scoring gallery items per query.

    Rows are sorted by descending score, equal scores by ascending index, so a ranking never
    depends on how numpy happens to partition. exclude_self (Q == N) drops item i from row i,
    as in image-to-image search over one catalog. Rows are ranked `chunk_size` at a time so
    the temporary masks stay [chunk_size, N] however many queries there are.
    """
    scores = np.asarray(scores)
    _check_top_k_args(scores, k, exclude_self, chunk_size)
    num_queries, num_items = scores.shape
    kept = max(0, min(k, num_items - int(exclude_self)))
    if kept == 0:
        return np.empty((num_queries, 0), dtype=np.int64)
    chunks = [
        _top_k_chunk(scores[start : start + chunk_size], kept, start if exclude_self else None)
        for start in range(0, num_queries, chunk_size)
    ]
    return np.concatenate(chunks) if chunks else np.empty((0, kept), dtype=np.int64)


def _check_top_k_args(scores: np.ndarray, k: int, exclude_self: bool, chunk_size: int) -> None:
    if scores.ndim != 2:
        raise ModaclipError(f"scores must be a [queries, gallery] matrix, got shape {scores.shape}")
    if k < 1:
        raise ModaclipError(f"k must be at least 1, got k={k}")
    if chunk_size < 1:
        raise ModaclipError(f"chunk_size must be at least 1, got chunk_size={chunk_size}")
    if exclude_self and scores.shape[0] != scores.shape[1]:
        raise ModaclipError(f"exclude_self needs one query per gallery item, got scores of shape {scores.shape}")


def _top_k_chunk(chunk: np.ndarray, k: int, first_row: int | None) -> np.ndarray:
    """Rank one block of rows; first_row is the block's offset when the diagonal is excluded.

    Partitioning finds each row's k-th best score; everything above it is taken, and of the
    items tied with it only the lowest indices, which is what makes ties deterministic.
    """
    if np.isnan(chunk).any():
        raise ModaclipError("scores contain NaN, so no ranking is defined")
    rows = np.arange(len(chunk))
    if first_row is not None:
        chunk = chunk.astype(np.promote_types(chunk.dtype, np.float32))
        chunk[rows, first_row + rows] = -np.inf
    kth_best = np.partition(chunk, chunk.shape[1] - k, axis=1)[:, [chunk.shape[1] - k]]
    above = chunk > kth_best
    tied = chunk == kth_best
    if first_row is not None:
        tied[rows, first_row + rows] = False
    still_needed = k - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= still_needed))
    candidates = np.nonzero(chosen)[1].reshape(len(chunk), k)
    order = np.argsort(-np.take_along_axis(chunk, candidates, axis=1), axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


def relevance(ranked: np.ndarray, query_keys: Sequence, gallery_keys: Sequence) -> np.ndarray:
    """Bool [Q, k]: whether each ranked gallery item has its query's key.

    A missing key (None or NaN) matches nothing, not even another missing key.
    """
    ranked = np.asarray(ranked)
    if ranked.ndim != 2 or len(ranked) != len(query_keys):
        raise ModaclipError(f"ranked must have one row per query ({len(query_keys)}), got shape {ranked.shape}")
    query_codes, gallery_codes = _factorize(query_keys, gallery_keys)
    query_codes = query_codes[:, None]
    return (gallery_codes[ranked] == query_codes) & (query_codes >= 0)


def count_relevant(query_keys: Sequence, gallery_keys: Sequence, exclude_self: bool = False) -> np.ndarray:
    """Int [Q]: gallery items sharing each query's key, the denominator of recall.

    With exclude_self, query i is gallery item i and is not counted as its own match.
    """
    if exclude_self and len(query_keys) != len(gallery_keys):
        raise ModaclipError(
            f"exclude_self needs one query per gallery item, got {len(query_keys)} queries "
            f"and {len(gallery_keys)} gallery items"
        )
    query_codes, gallery_codes = _factorize(query_keys, gallery_keys)
    known = gallery_codes[gallery_codes >= 0]
    per_key = np.bincount(known, minlength=query_codes.max(initial=0) + 1)
    counts = np.where(query_codes >= 0, per_key[query_codes], 0)
    if exclude_self:
        counts -= query_codes >= 0
    return counts


def _factorize(*key_lists: Sequence) -> list[np.ndarray]:
    """Shared int codes for several key lists; missing keys (None, NaN) get -1.

    A pandas Series of dtype object keeps tuples whole, where np.asarray would unpack them.
    """
    keys = pd.Series([key for keys in key_lists for key in keys], dtype=object)
    codes, _ = pd.factorize(keys)
    return np.split(codes, np.cumsum([len(keys) for keys in key_lists])[:-1])


def recall_per_query(rel: np.ndarray, num_relevant: np.ndarray, k: int) -> np.ndarray:
    """Each query's share of its relevant items found in its top k; NaN for a query with none in the gallery."""
    rel = _as_rel(rel)
    _check_k(k, available=rel.shape[1])
    num_relevant = np.asarray(num_relevant)
    hits = rel[:, :k].sum(axis=1)
    return np.where(num_relevant > 0, hits / np.maximum(num_relevant, 1), np.nan)


def recall_at_k(rel: np.ndarray, num_relevant: np.ndarray, k: int) -> float:
    """Mean share of each query's relevant items found in its top k.

    Queries with no relevant item in the gallery have no recall and are left out of the mean.
    """
    return query_mean(recall_per_query(rel, num_relevant, k), f"recall@{k}")


def precision_per_query(rel: np.ndarray, k: int) -> np.ndarray:
    """Each query's share of relevant items in its top k.

    Divides by k even when rel has fewer columns (a gallery smaller than k): the missing slots
    count as misses, as they would for a retriever asked for k results.
    """
    rel = _as_rel(rel)
    _check_k(k)
    return rel[:, :k].sum(axis=1) / k


def precision_at_k(rel: np.ndarray, k: int) -> float:
    """Mean of `precision_per_query`."""
    return query_mean(precision_per_query(rel, k), f"precision@{k}")


def ndcg_per_query(rel: np.ndarray, num_relevant: np.ndarray, k: int) -> np.ndarray:
    """Each query's NDCG with binary gains and a 1 / log2(rank + 1) discount; NaN for a query without relevant items.

    The ideal ranking puts min(num_relevant, k) relevant items first; a query with no relevant
    item has no ideal DCG.
    """
    rel = _as_rel(rel)
    _check_k(k, available=rel.shape[1])
    num_relevant = np.asarray(num_relevant)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = rel[:, :k] @ discounts
    ideal_dcg = np.cumsum(discounts)[np.clip(num_relevant, 1, k) - 1]
    return np.where(num_relevant > 0, dcg / ideal_dcg, np.nan)


def ndcg_at_k(rel: np.ndarray, num_relevant: np.ndarray, k: int) -> float:
    """Mean of `ndcg_per_query` over the queries that have a relevant item."""
    return query_mean(ndcg_per_query(rel, num_relevant, k), f"NDCG@{k}")


def query_mean(values: np.ndarray, metric: str) -> float:
    """The figure of a per-query metric: its mean over the queries where it is defined (not NaN).

    Every mean-over-queries figure is computed through this, so a figure and its per-query values
    (kept for the promotion gate's paired bootstrap) always agree.
    """
    values = np.asarray(values, dtype=np.float64)
    defined = ~np.isnan(values)
    if not defined.any():
        raise ModaclipError(f"{metric} is undefined: no query has a relevant gallery item")
    return float(values[defined].mean())


def mean_reciprocal_rank(rel: np.ndarray) -> float:
    """Mean of 1 / rank of the first relevant item over all of rel's columns (0 if none).

    Unlike recall it has no num_relevant to leave queries out by: filter rel first if queries
    without any relevant gallery item should not count as zeros.
    """
    rel = _as_rel(rel)
    reciprocal_ranks = rel / np.arange(1, rel.shape[1] + 1)
    return float(np.mean(reciprocal_ranks.max(axis=1, initial=0.0)))


def _as_rel(rel: np.ndarray) -> np.ndarray:
    rel = np.asarray(rel, dtype=bool)
    if rel.ndim != 2 or len(rel) == 0:
        raise ModaclipError(f"rel must be a [queries, ranks] matrix with a query, got {rel.shape}")
    return rel


def _check_k(k: int, available: int | None = None) -> None:
    """available: columns of rel, for metrics that would be silently wrong with fewer than k."""
    if k < 1:
        raise ModaclipError(f"k must be at least 1, got k={k}")
    if available is not None and k > available:
        raise ModaclipError(f"k={k} but only {available} ranks were retrieved; retrieve at least k items")


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Share of predictions equal to the true label."""
    true_codes, pred_codes = _label_codes(y_true, y_pred)
    return float(np.mean(true_codes == pred_codes))


def weighted_f1(y_true: Sequence, y_pred: Sequence) -> float:
    """F1 per class, averaged with each class weighted by its support in y_true.

    Same as scikit-learn's f1_score(average="weighted"): classes are those seen in either
    list, and a class never predicted correctly has F1 0. F1 = 2 TP / (true + predicted).
    """
    true_codes, pred_codes = _label_codes(y_true, y_pred)
    num_classes = max(true_codes.max(), pred_codes.max()) + 1
    true_count = np.bincount(true_codes, minlength=num_classes)
    pred_count = np.bincount(pred_codes, minlength=num_classes)
    correct = np.bincount(true_codes[true_codes == pred_codes], minlength=num_classes)
    f1 = 2 * correct / (true_count + pred_count)
    return float(np.sum(f1 * true_count) / len(true_codes))


def _label_codes(y_true: Sequence, y_pred: Sequence) -> list[np.ndarray]:
    if len(y_true) != len(y_pred):
        raise ModaclipError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ModaclipError("no labels to score")
    true_codes, pred_codes = _factorize(y_true, y_pred)
    for name, codes in (("y_true", true_codes), ("y_pred", pred_codes)):
        if (codes < 0).any():
            position = int(np.argmax(codes < 0))
            raise ModaclipError(f"{name} has a missing label at position {position}")
    return [true_codes, pred_codes]
