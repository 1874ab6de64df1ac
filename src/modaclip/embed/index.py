"""faiss indexes over catalog embeddings: exact for small catalogs, approximate for large ones.

Each kind is one builder function and one line in `INDEX_BUILDERS`. Index row i is embedding row
i (the position in ids.npy), so an index never needs its own id mapping. All vectors are unit
length, so inner product is cosine similarity.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from modaclip.core.config import IndexParams
from modaclip.core.errors import ModaclipError

INDEX_FILE = "index.faiss"
ADD_BATCH = 65536  # rows added to an index at a time, so a memory-mapped vectors file is read in slices


def _flat(dim: int, count: int, params: IndexParams) -> faiss.Index:
    return faiss.IndexFlatIP(dim)


def _hnsw(dim: int, count: int, params: IndexParams) -> faiss.Index:
    index = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = params.hnsw_ef_construction
    return index


def _ivf_lists(count: int, params: IndexParams) -> int:
    """params.ivf_lists, or 2·sqrt(n) when it is 0 (2048 lists measured at 1M:
    BENCHMARKS.md#search-latency-and-recall-at-1m-vectors); never more than n / 39 so k-means has
    the 39 points per centroid faiss asks for."""
    lists = params.ivf_lists or int(2 * np.sqrt(count))
    return max(1, min(lists, count // 39))


def _ivfflat(dim: int, count: int, params: IndexParams) -> faiss.Index:
    quantizer = faiss.IndexFlatIP(dim)
    return faiss.IndexIVFFlat(quantizer, dim, _ivf_lists(count, params), faiss.METRIC_INNER_PRODUCT)


def _ivfpq(dim: int, count: int, params: IndexParams) -> faiss.Index:
    """IVF-PQ with an exact re-ranking of the PQ candidates, since PQ alone loses too much recall@10."""
    if dim % params.pq_m:
        raise ModaclipError(f"embed.index.pq_m: {params.pq_m} does not divide the embedding dimension {dim}")
    quantizer = faiss.IndexFlatIP(dim)
    ivfpq = faiss.IndexIVFPQ(quantizer, dim, _ivf_lists(count, params), params.pq_m, 8, faiss.METRIC_INNER_PRODUCT)
    refined = faiss.IndexRefineFlat(ivfpq)
    refined.k_factor = params.refine_factor
    return refined


INDEX_BUILDERS: dict[str, Callable[[int, int, IndexParams], faiss.Index]] = {
    "flat": _flat,
    "hnsw": _hnsw,
    "ivfflat": _ivfflat,
    "ivfpq": _ivfpq,
}
# IVF-Flat, not HNSW: over 1M noisy, overlapping synthetic clusters on 2 cores, IVF-Flat (nprobe 16)
# built in 105 s and reached recall@10 0.985 at p50 2.8 ms; HNSW took 2,180 s and reached 0.80 at
# efSearch 256 (BENCHMARKS.md#search-latency-and-recall-at-1m-vectors).
AUTO_APPROXIMATE = "ivfflat"


def check_index_type(params: IndexParams) -> None:
    """embed.index.type must be `auto` or a key of INDEX_BUILDERS (checked before embedding, not after)."""
    if params.type != "auto" and params.type not in INDEX_BUILDERS:
        known = ", ".join(["auto", *INDEX_BUILDERS])
        raise ModaclipError(f"embed.index.type: unknown index type {params.type!r} (known: {known})")


def index_kind(count: int, params: IndexParams) -> str:
    """`auto` is exact below params.exact_below vectors and AUTO_APPROXIMATE from there on."""
    check_index_type(params)
    if params.type != "auto":
        return params.type
    return "flat" if count < params.exact_below else AUTO_APPROXIMATE


def build_index(vectors: np.ndarray, params: IndexParams, progress: Callable[[int], None] | None = None) -> faiss.Index:
    """An index over `vectors` (float32 [N, D], may be a memmap), tuned for search as in params."""
    count, dim = vectors.shape
    kind = index_kind(count, params)
    index = INDEX_BUILDERS[kind](dim, count, params)
    if not index.is_trained:
        index.train(_training_sample(vectors, params.train_sample))
    for start in range(0, count, ADD_BATCH):
        index.add(np.ascontiguousarray(vectors[start : start + ADD_BATCH], dtype=np.float32))
        if progress:
            progress(min(ADD_BATCH, count - start))
    set_search_params(index, params)
    return index


def _training_sample(vectors: np.ndarray, size: int) -> np.ndarray:
    """An evenly spaced sample of rows (deterministic, and reads no more than `size` rows)."""
    step = max(1, len(vectors) // size)
    return np.ascontiguousarray(vectors[::step][:size], dtype=np.float32)


def index_kind_of(index: faiss.Index) -> str:
    """The `INDEX_BUILDERS` name of a loaded index, so a service can say what it searches with."""
    if isinstance(index, faiss.IndexRefine):
        return "ivfpq"
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(inner, faiss.IndexIVFPQ):
        return "ivfpq"
    if isinstance(inner, faiss.IndexIVF):
        return "ivfflat"
    return "flat"


def set_search_params(index: faiss.Index, params: IndexParams) -> None:
    """Query-time knobs (HNSW efSearch, IVF nprobe, IVF-PQ re-ranking depth) are set on load too, so a
    change in params takes effect without rebuilding the index."""
    if isinstance(index, faiss.IndexRefine):
        index.k_factor = params.refine_factor
    inner = (
        faiss.downcast_index(index.base_index) if isinstance(index, faiss.IndexRefine) else faiss.downcast_index(index)
    )
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = params.ef_search
    if isinstance(inner, faiss.IndexIVF):
        inner.nprobe = params.nprobe


def save_index(index: faiss.Index, path: str | Path) -> None:
    faiss.write_index(index, str(path))


def load_index(path: str | Path, params: IndexParams) -> faiss.Index:
    path = Path(path)
    if not path.is_file():
        raise ModaclipError(f"{path}: no index; run `dvc repro embed`")
    index = faiss.read_index(str(path))
    set_search_params(index, params)
    return index


def search_index(
    index: faiss.Index, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) [Q, k]; rows are -1 where the index found fewer than k (allowed) vectors.

    `allowed` (bool [N]) restricts the search inside the index with an IDSelectorBitmap, so the
    approximate index still walks its graph or lists but only returns allowed rows.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if allowed is None:
        return index.search(queries, k)
    bitmap = np.packbits(allowed, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
    return index.search(queries, k, params=_selector_params(index, selector))


def _selector_params(index: faiss.Index, selector: faiss.IDSelector) -> faiss.SearchParameters:
    inner = (
        faiss.downcast_index(index.base_index) if isinstance(index, faiss.IndexRefine) else faiss.downcast_index(index)
    )
    if isinstance(inner, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=selector, efSearch=inner.hnsw.efSearch)
    if isinstance(inner, faiss.IndexIVF):
        params = faiss.SearchParametersIVF(sel=selector, nprobe=inner.nprobe)
        if isinstance(index, faiss.IndexRefine):
            return faiss.IndexRefineSearchParameters(sel=selector, k_factor=index.k_factor, base_index_params=params)
        return params
    return faiss.SearchParameters(sel=selector)
