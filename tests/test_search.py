import json
from pathlib import Path

import numpy as np
import pytest

from modaclip.clip_model import create_base_model, save_model
from modaclip.cli import main
from modaclip.config import EmbedParams
from modaclip.embedding import embed_catalog, load_embeddings
from modaclip.errors import ModaclipError
from modaclip.search import CatalogSearch


@pytest.fixture(scope="module")
def engine_paths(clean_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("search")
    save_model(create_base_model("modaclip-tiny", "none", seed=0), root / "model")
    embed_catalog(root / "model", clean_dir, root / "embeddings", EmbedParams(batch_size=32))
    return {"model": root / "model", "embeddings": root / "embeddings", "catalog": clean_dir}


@pytest.fixture(scope="module")
def engine(engine_paths: dict[str, Path]) -> CatalogSearch:
    return CatalogSearch.open(engine_paths["model"], engine_paths["embeddings"], engine_paths["catalog"])


def test_embeddings_are_unit_vectors_for_every_product(engine: CatalogSearch) -> None:
    assert len(engine) == len(set(engine.ids.tolist()))
    np.testing.assert_allclose(np.linalg.norm(engine.vectors, axis=1), 1.0, rtol=1e-5)


def test_search_returns_k_ranked_hits_per_query(engine: CatalogSearch) -> None:
    results = engine.search_text(["red dress", "black shoes"], k=5)
    assert [len(hits) for hits in results] == [5, 5]
    for hits in results:
        scores = [hit.score for hit in hits]
        assert scores == sorted(scores, reverse=True)
        assert all(hit.attributes["articleType"] for hit in hits)


@pytest.mark.parametrize(("queries", "k", "message"), [(["red"], 0, "k must be between 1"), (["red"], 10**6, "k must be between 1"), (["  "], 3, "empty search query")])
def test_bad_search_input(engine: CatalogSearch, queries: list[str], k: int, message: str) -> None:
    with pytest.raises(ModaclipError, match=message):
        engine.search_text(queries, k)


def test_embeddings_of_another_model_are_refused(engine_paths: dict[str, Path], tmp_path: Path) -> None:
    save_model(create_base_model("modaclip-tiny", "none", seed=1), tmp_path / "other")
    with pytest.raises(ModaclipError, match="embedded with another model"):
        load_embeddings(engine_paths["embeddings"], tmp_path / "other")


def test_cli_search_json(engine_paths: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--model", str(engine_paths["model"]), "--embeddings", str(engine_paths["embeddings"]), "--catalog", str(engine_paths["catalog"])]
    main(["search", "blue jeans", "white shoes", "-k", "2", "--json", *args])
    payload = json.loads(capsys.readouterr().out)
    assert [entry["query"] for entry in payload] == ["blue jeans", "white shoes"]
    assert all(len(entry["results"]) == 2 and {"id", "score", "name", "articleType"} <= set(entry["results"][0]) for entry in payload)


def test_cli_error_is_one_line(engine_paths: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "red", "-k", "0", "--model", str(engine_paths["model"]), "--embeddings", str(engine_paths["embeddings"]), "--catalog", str(engine_paths["catalog"])])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().startswith("modaclip: error: k must be between 1")
