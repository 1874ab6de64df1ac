"""`data.limit`: a reproducible subset of any catalog, chosen by hashing (data.seed, product id).

A product is in the subset when its hash is among the `limit` smallest. The choice depends only
on the seed and the ids, not on row order or chunking, so the same catalog gives the same subset
whether it is read from a folder or streamed, and a subset of a grown catalog mostly overlaps the
old one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

_ORDER = "__subset_order"
_RANK = "__subset_rank"


def id_ranks(ids: pd.Series, seed: int) -> np.ndarray:
    """A 64-bit hash of (seed, id) per row: the order in which products enter the subset."""
    keys = pd.Series([f"{seed}:{int(i)}" for i in ids], dtype=object)
    return pd.util.hash_pandas_object(keys, index=False).to_numpy()


def take_subset(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """The rows of the `limit` products with the smallest ranks, in their original order; all when limit is 0."""
    if limit == 0 or len(frame) <= limit:
        return frame
    ranks = id_ranks(frame["id"], seed)
    chosen = np.sort(np.argsort(ranks, kind="stable")[:limit])
    return frame.iloc[chosen]


def stream_subset(chunks: Iterable[pd.DataFrame], limit: int, seed: int, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """`take_subset` over a stream: holds at most `limit` + one chunk of rows, yields after the last."""
    if limit == 0:
        yield from chunks
        return
    best: pd.DataFrame | None = None
    seen = 0
    for chunk in chunks:
        chunk = chunk.assign(**{_ORDER: np.arange(seen, seen + len(chunk)), _RANK: id_ranks(chunk["id"], seed)})
        seen += len(chunk)
        best = chunk if best is None else pd.concat([best, chunk], ignore_index=True)
        best = best.nsmallest(limit, _RANK, keep="first")
    if best is None:
        return
    best = best.sort_values(_ORDER).drop(columns=[_ORDER, _RANK]).reset_index(drop=True)
    for start in range(0, len(best), chunk_rows):
        yield best.iloc[start : start + chunk_rows]
