import faiss
import numpy as np
import pytest

from modaclip.core.config import IndexParams
from modaclip.core.errors import ModaclipError
from modaclip.core.metrics import top_k
from modaclip.embed.index import INDEX_BUILDERS, build_index, index_kind, load_index, save_index, search_index


def clustered_unit_vectors(count: int, dim: int, seed: int, clusters: int = 20) -> np.ndarray:
    """Points around a few centres, like real embeddings (uniform noise has no neighbours to find)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    points = centres[rng.integers(clusters, size=count)] + 0.5 * rng.normal(size=(count, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return clustered_unit_vectors(3000, 32, seed=0)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return clustered_unit_vectors(50, 32, seed=1)


def test_auto_is_exact_below_the_threshold_and_approximate_above() -> None:
    params = IndexParams(exact_below=1000)
    assert index_kind(999, params) == "flat"
    assert index_kind(1000, params) == "ivfflat"
    assert index_kind(10, IndexParams(type="ivfpq")) == "ivfpq"


def test_flat_index_is_exact(vectors: np.ndarray, queries: np.ndarray) -> None:
    scores, rows = search_index(build_index(vectors, IndexParams(type="flat")), queries, 10)
    np.testing.assert_array_equal(rows, top_k(queries @ vectors.T, 10))
    np.testing.assert_allclose(scores[:, 0], (queries @ vectors.T).max(axis=1), rtol=1e-5)


@pytest.mark.parametrize("kind", [k for k in INDEX_BUILDERS if k != "flat"])
def test_approximate_indexes_recall_most_exact_neighbours(kind: str, vectors: np.ndarray, queries: np.ndarray) -> None:
    params = IndexParams(type=kind, ivf_lists=16, nprobe=8, pq_m=8, refine_factor=8)
    _, rows = search_index(build_index(vectors, params), queries, 10)
    exact = top_k(queries @ vectors.T, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows.tolist(), exact.tolist())])
    assert recall >= 0.9, f"{kind} recall@10 {recall:.2f}"


@pytest.mark.parametrize("kind", list(INDEX_BUILDERS))
def test_allowed_mask_restricts_results(kind: str, vectors: np.ndarray, queries: np.ndarray) -> None:
    params = IndexParams(type=kind, ivf_lists=16, nprobe=16, pq_m=8)
    allowed = np.zeros(len(vectors), bool)
    allowed[::3] = True
    _, rows = search_index(build_index(vectors, params), queries, 10, allowed)
    assert (rows >= 0).all() and allowed[rows].all()


def test_search_params_survive_save_and_load(vectors: np.ndarray, tmp_path) -> None:
    params = IndexParams(type="hnsw", ef_search=77)
    save_index(build_index(vectors, params), tmp_path / "index.faiss")
    loaded = load_index(tmp_path / "index.faiss", params)
    assert faiss.downcast_index(loaded).hnsw.efSearch == 77 and loaded.ntotal == len(vectors)


def test_missing_index_file_is_an_error(tmp_path) -> None:
    with pytest.raises(ModaclipError, match="no index"):
        load_index(tmp_path / "index.faiss", IndexParams())


def test_pq_m_must_divide_the_dimension(vectors: np.ndarray) -> None:
    with pytest.raises(ModaclipError, match="pq_m"):
        build_index(vectors, IndexParams(type="ivfpq", pq_m=7))


def test_query_time_params_of_a_saved_index_follow_the_params_on_load(vectors: np.ndarray, tmp_path) -> None:
    """nprobe and the IVF-PQ re-ranking depth can be tuned in params.yaml without rebuilding the index."""
    save_index(
        build_index(vectors, IndexParams(type="ivfpq", ivf_lists=16, nprobe=2, pq_m=8, refine_factor=2)),
        tmp_path / "index.faiss",
    )
    loaded = load_index(tmp_path / "index.faiss", IndexParams(type="ivfpq", nprobe=9, refine_factor=12))
    assert loaded.k_factor == 12 and faiss.extract_index_ivf(loaded).nprobe == 9
