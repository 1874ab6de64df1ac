"""Search latency over N synthetic unit vectors: exact vs approximate indexes, and their recall@10.

    PYTHONPATH=src python benchmarks/search_latency.py --n 1000000 --dim 512

The vectors are a deliberately unflattering mixture (a product catalog is clustered, but not into
tidy, equal, well-separated blobs): `--groups` coarse centres ("categories"), `--clusters` fine centres
drawn near them (product kinds, so neighbouring clusters overlap), cluster sizes following a Zipf law
of exponent `--zipf` (a few huge kinds, a long tail), and isotropic noise whose scale varies per
cluster uniformly in [0.5, 1.5] x `--spread`. Uniform noise alone would have no near neighbours and
make every approximate index look broken; a few tight blobs make every index look perfect. The header
prints how hard the data is: the mean cosine of a query to its exact 1st and 10th neighbour and to a
random vector.

Queries come from the same distribution but are not in the index. Each is searched alone (batch 1)
on `--query-threads` faiss threads, as a user's would be, and timed; recall@10 is the share of the
exact top 10 that the approximate index returns. Indexes are built with modaclip.embed.index.build_index
on `--build-threads`, so the printed params go straight into params.yaml `embed.index`. Rows are
printed as soon as they are measured, so a long run can be followed in its log.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

from modaclip.core.config import IndexParams
from modaclip.embed.index import build_index, search_index, set_search_params

BLOCK = 100_000


def synthetic_vectors(
    path: Path, count: int, dim: int, groups: int, clusters: int, zipf: float, spread: float, seed: int
) -> np.ndarray:
    """The mixture described in the module docstring, written to a .npy memmap in blocks.

    Reused when `path` already holds the same mixture: its recipe is written beside it once complete.
    """
    recipe_path = path.with_suffix(".json")
    recipe = dict(count=count, dim=dim, groups=groups, clusters=clusters, zipf=zipf, spread=spread, seed=seed)
    if path.is_file() and recipe_path.is_file() and json.loads(recipe_path.read_text()) == recipe:
        return np.load(path, mmap_mode="r")
    recipe_path.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(groups, dim)).astype(np.float32)
    centres = coarse[rng.integers(groups, size=clusters)] + 0.7 * rng.normal(size=(clusters, dim)).astype(np.float32)
    weights = 1.0 / np.arange(1, clusters + 1) ** zipf
    weights /= weights.sum()
    noise = spread * rng.uniform(0.5, 1.5, size=clusters).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, dim))
    for start in tqdm(range(0, count, BLOCK), desc="generating vectors", unit="block"):
        size = min(BLOCK, count - start)
        labels = rng.choice(clusters, size=size, p=weights)
        block = centres[labels] + noise[labels, None] * rng.normal(size=(size, dim)).astype(np.float32)
        out[start : start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
    out.flush()
    recipe_path.write_text(json.dumps(recipe))
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


def print_row(kind: str, label: str, build: float, latency: np.ndarray, recall: float) -> None:
    p50, p99 = np.percentile(latency, 50), np.percentile(latency, 99)
    print(
        f"| {kind} | {label} | {build:.0f} | {p50:.2f} | {p99:.2f} | {recall:.3f} | {os.getloadavg()[0]:.1f} |",
        flush=True,
    )


def sweep(kind: str, args: argparse.Namespace) -> list[tuple[IndexParams, str]]:
    """(params, label) for every query-time setting of one index kind."""
    base = IndexParams(
        type=kind,
        hnsw_m=args.hnsw_m,
        hnsw_ef_construction=args.ef_construction,
        ivf_lists=args.ivf_lists,
        pq_m=args.pq_m,
    )
    if kind == "hnsw":
        label = f"M={args.hnsw_m} efC={args.ef_construction}"
        return [(base.model_copy(update={"ef_search": v}), f"{label} efSearch={v}") for v in args.ef_search]
    if kind == "ivfpq":
        return [
            (
                base.model_copy(update={"nprobe": v, "refine_factor": r}),
                f"lists={args.ivf_lists} pq_m={args.pq_m} nprobe={v} refine={r}",
            )
            for r in args.refine_factor
            for v in args.nprobe
        ]
    return [(base.model_copy(update={"nprobe": v}), f"lists={args.ivf_lists} nprobe={v}") for v in args.nprobe]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--flat-queries", type=int, default=100, help="queries timed one at a time on the exact index")
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--clusters", type=int, default=10_000)
    parser.add_argument("--zipf", type=float, default=0.8, help="cluster size ~ 1 / rank^zipf")
    parser.add_argument(
        "--spread", type=float, default=2.0, help="mean noise scale around a centre (centre norm ~ sqrt(dim))"
    )
    parser.add_argument("--work", default="/tmp/modaclip-bench", help="folder for the vectors file")
    parser.add_argument("--kinds", nargs="+", default=["ivfflat", "ivfpq", "hnsw"])
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--ivf-lists", type=int, default=2048)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--pq-m", type=int, default=64)
    parser.add_argument(
        "--refine-factor",
        type=int,
        nargs="+",
        default=[4, 16],
        help="ivfpq: PQ candidates per result re-ranked exactly",
    )
    parser.add_argument("--build-threads", type=int, default=os.cpu_count())
    parser.add_argument("--query-threads", type=int, default=1, help="faiss threads while timing single queries")
    args = parser.parse_args()
    k = 10
    faiss.omp_set_num_threads(args.build_threads)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    vectors = synthetic_vectors(
        Path(args.work) / "vectors.npy",
        args.n + args.queries,
        args.dim,
        args.groups,
        args.clusters,
        args.zipf,
        args.spread,
        0,
    )
    queries, vectors = np.array(vectors[args.n :]), vectors[: args.n]

    start = time.perf_counter()
    flat = build_index(vectors, IndexParams(type="flat"))
    flat_build = time.perf_counter() - start
    exact_scores, exact = search_index(flat, queries, k)  # batched: the ground truth
    random_cos = float(np.mean(queries @ np.asarray(vectors[:: max(1, args.n // 1000)][:1000]).T))
    print(
        f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {args.n:,} x {args.dim} vectors, {args.queries} queries "
        f"one at a time on {args.query_threads} faiss thread(s), indexes built on {args.build_threads}; "
        f"{os.cpu_count()} cores ({platform.machine()}), load average {os.getloadavg()[0]:.1f} at start"
    )
    print(
        f"# data: {args.groups} groups, {args.clusters} clusters, zipf {args.zipf}, spread {args.spread}; "
        f"mean cosine of a query to its exact 1st / 10th neighbour {exact_scores[:, 0].mean():.3f} / "
        f"{exact_scores[:, -1].mean():.3f}, to a random vector {random_cos:.3f}",
        flush=True,
    )
    print("| index | params | build s | p50 ms | p99 ms | recall@10 vs exact | load |")
    print("|---|---|---:|---:|---:|---:|---:|", flush=True)
    _, latency = timed_queries(flat, queries[: args.flat_queries], k, args.query_threads)
    print_row("flat", "exact", flat_build, latency, 1.0)
    del flat

    for kind in args.kinds:
        settings = sweep(kind, args)
        start = time.perf_counter()
        with tqdm(total=args.n, desc=f"building {kind}", unit="vec", mininterval=30) as bar:
            index = build_index(vectors, settings[0][0], progress=bar.update)
        build = time.perf_counter() - start
        for params, label in settings:
            set_search_params(index, params)
            found, latency = timed_queries(index, queries, k, args.query_threads)
            print_row(kind, label, build, latency, recall_at(found, exact))
        del index
    print(f"# peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.1f} GiB")


if __name__ == "__main__":
    main()
