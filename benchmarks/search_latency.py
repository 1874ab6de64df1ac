"""Search latency over N synthetic unit vectors: exact vs approximate indexes, and their recall@10.

    PYTHONPATH=src python benchmarks/search_latency.py --n 1000000 --dim 512

Vectors are drawn around `--clusters` random centres (real embeddings cluster by product kind;
uniform noise has no near neighbours and would make every approximate index look broken), queries
from the same distribution but not in the index. Each query is searched alone, as a user's would
be, and timed; recall@10 is the share of the exact top 10 that the approximate index returns.
Indexes are built with modaclip.index.build_index, so the printed params go straight into
params.yaml `embed.index`.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

from modaclip.config import IndexParams
from modaclip.index import build_index, search_index, set_search_params


def synthetic_vectors(path: Path, count: int, dim: int, clusters: int, spread: float, seed: int) -> np.ndarray:
    """Unit vectors around random centres, written to a .npy memmap in blocks (never all in RAM twice)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, dim))
    for start in tqdm(range(0, count, 100_000), desc="generating vectors", unit="block"):
        size = min(100_000, count - start)
        block = centres[rng.integers(clusters, size=size)] + spread * rng.normal(size=(size, dim)).astype(np.float32)
        out[start : start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
    out.flush()
    return out


def timed_queries(index: faiss.Index, queries: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows [Q, k], per-query latency in ms), one query per search call on `threads` faiss threads."""
    rows, latencies = np.empty((len(queries), k), np.int64), np.empty(len(queries))
    build_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    for i, query in enumerate(queries):
        start = time.perf_counter()
        _, rows[i] = search_index(index, query[None, :], k)
        latencies[i] = (time.perf_counter() - start) * 1000
    faiss.omp_set_num_threads(build_threads)
    return rows, latencies


def recall_at(rows: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / exact.shape[1] for a, b in zip(rows.tolist(), exact.tolist())]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--spread", type=float, default=1.0, help="noise scale around a centre (centre norm ~ sqrt(dim))")
    parser.add_argument("--work", default="/tmp/modaclip-bench", help="folder for the vectors file")
    parser.add_argument("--kinds", nargs="+", default=["hnsw", "ivfflat"])
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--ivf-lists", type=int, default=4096)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--query-threads", type=int, default=1, help="faiss threads while timing single queries")
    args = parser.parse_args()
    k = 10
    Path(args.work).mkdir(parents=True, exist_ok=True)
    vectors = synthetic_vectors(Path(args.work) / "vectors.npy", args.n + args.queries, args.dim, args.clusters, args.spread, 0)
    queries, vectors = np.array(vectors[args.n :]), vectors[: args.n]
    print(f"# search over {args.n:,} x {args.dim} vectors, {args.queries} queries one at a time "
          f"({args.query_threads} thread), clusters={args.clusters} spread={args.spread}, "
          f"{faiss.omp_get_max_threads()} faiss threads to build, {platform.processor() or platform.machine()}, {date.today()}")
    rows = []

    start = time.perf_counter()
    flat = build_index(vectors, IndexParams(type="flat"))
    flat_build = time.perf_counter() - start
    _, exact = search_index(flat, queries, k)  # batched: ground truth
    _, latency = timed_queries(flat, queries, k, args.query_threads)
    rows.append(("flat", "exact", flat_build, latency, 1.0))
    del flat

    for kind in args.kinds:
        params = IndexParams(
            type=kind, hnsw_m=args.hnsw_m, hnsw_ef_construction=args.ef_construction, ivf_lists=args.ivf_lists
        )
        start = time.perf_counter()
        index = build_index(vectors, params)
        build = time.perf_counter() - start
        sweep = [("ef_search", v) for v in args.ef_search] if kind == "hnsw" else [("nprobe", v) for v in args.nprobe]
        for knob, value in sweep:
            set_search_params(index, params.model_copy(update={knob: value}))
            found, latency = timed_queries(index, queries, k, args.query_threads)
            label = f"M={args.hnsw_m} efC={args.ef_construction}" if kind == "hnsw" else f"lists={args.ivf_lists}"
            rows.append((kind, f"{label} {knob}={value}", build, latency, recall_at(found, exact)))
        del index

    print(f"| index | params | build s | p50 ms | p99 ms | recall@10 vs exact |")
    print(f"|---|---|---:|---:|---:|---:|")
    for kind, label, build, latency, recall in rows:
        print(f"| {kind} | {label} | {build:.0f} | {np.percentile(latency, 50):.2f} | {np.percentile(latency, 99):.2f} | {recall:.3f} |")


if __name__ == "__main__":
    main()
