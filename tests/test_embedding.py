import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_ARCH

from modaclip.core.catalog_io import read_catalog, write_parts
from modaclip.core.config import EmbedParams
from modaclip.embed import stored
from modaclip.embed.embedding import PreviousRows, embed_catalog
from modaclip.embed.index import INDEX_FILE
from modaclip.embed.stored import read_embeddings
from modaclip.model.clip_model import create_base_model, save_model
from modaclip.model.saved_model import OPEN_CLIP_CONFIG

PARAMS = EmbedParams(batch_size=32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("model") / "model"
    save_model(create_base_model(TEST_ARCH, "none", seed=0), directory)
    return directory


@pytest.fixture(scope="module")
def full_run(model_dir: Path, clean_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("full") / "embeddings"
    embed_catalog(model_dir, clean_dir, out, PARAMS)
    return out


def test_single_run_writes_an_index_over_every_product(full_run: Path, clean_dir: Path) -> None:
    embeddings = read_embeddings(full_run)
    assert embeddings.ids.tolist() == read_catalog(clean_dir, columns=["id"])["id"].tolist()
    assert (full_run / INDEX_FILE).is_file() and embeddings.meta["index"]["type"] == "flat"


def test_only_new_or_changed_products_are_embedded(
    model_dir: Path, clean_dir: Path, full_run: Path, tmp_path: Path
) -> None:
    catalog = read_catalog(clean_dir)
    write_parts([catalog.iloc[:100]], tmp_path / "old")
    embed_catalog(model_dir, tmp_path / "old", tmp_path / "embeddings", PARAMS)
    changed = catalog.copy()
    changed.loc[0, "image"] = catalog.loc[1, "image"]  # product 0 got a new photo
    write_parts([changed], tmp_path / "new")
    meta = embed_catalog(model_dir, tmp_path / "new", tmp_path / "embeddings", PARAMS)
    assert meta["reused"] == 99
    updated, fresh = read_embeddings(tmp_path / "embeddings"), read_embeddings(full_run)
    np.testing.assert_allclose(updated.vectors[1:], fresh.vectors[1:], atol=1e-5)
    np.testing.assert_allclose(updated.vectors[0], fresh.vectors[1], atol=1e-5)


def test_embeddings_of_another_model_are_not_reused(clean_dir: Path, full_run: Path, tmp_path: Path) -> None:
    save_model(create_base_model(TEST_ARCH, "none", seed=3), tmp_path / "other")
    meta = embed_catalog(tmp_path / "other", clean_dir, tmp_path / "out", PARAMS, previous_dir=full_run)
    assert meta["reused"] == 0
    assert (
        json.loads((tmp_path / "out" / "meta.json").read_text())["model_sha256"]
        != read_embeddings(full_run).meta["model_sha256"]
    )


def test_previous_rows_are_found_by_id_and_image_together() -> None:
    previous = PreviousRows(np.array([7, 3, 5]), np.array([70, 30, 50]))
    found = previous.find(np.array([3, 5, 9, 7]), np.array([30, 51, 90, 70]))
    assert found.tolist() == [1, -1, -1, 0]  # 5's image changed, 9 is new
    empty = PreviousRows(np.array([], np.int64), np.array([], np.int64))
    assert empty.find(np.array([1]), np.array([1])).tolist() == [-1]


def preprocessing_mean(config: dict) -> None:
    config["preprocess_cfg"]["mean"] = [0.5, 0.5, 0.5]


def quick_gelu(config: dict) -> None:
    config["model_cfg"]["quick_gelu"] = not config["model_cfg"].get("quick_gelu", False)


@pytest.mark.parametrize("edit", [preprocessing_mean, quick_gelu])
def test_a_change_to_preprocessing_or_model_config_embeds_every_product_again(
    model_dir: Path, clean_dir: Path, full_run: Path, tmp_path: Path, edit, caplog: pytest.LogCaptureFixture
) -> None:
    """Same weights file, another model config or preprocessing: no vector of the old folder is reused."""
    shutil.copytree(model_dir, tmp_path / "model")
    same = embed_catalog(tmp_path / "model", clean_dir, tmp_path / "same", PARAMS, previous_dir=full_run)
    assert same["reused"] == same["count"], "an unchanged model must reuse every vector"
    config_path = tmp_path / "model" / OPEN_CLIP_CONFIG
    config = json.loads(config_path.read_text())
    edit(config)
    config_path.write_text(json.dumps(config))
    with caplog.at_level(logging.INFO, logger="modaclip.embed.embedding"):
        meta = embed_catalog(tmp_path / "model", clean_dir, tmp_path / "out", PARAMS, previous_dir=full_run)
    assert meta["reused"] == 0
    assert "the model config or preprocessing changed" in caplog.text
    assert meta["model_sha256"] == read_embeddings(full_run).meta["model_sha256"], "the weights file is the same"


def test_a_change_to_the_embedding_code_embeds_every_product_again(
    model_dir: Path, clean_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "code" / "imagecode"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("RESIZE = 'bicubic'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    monkeypatch.setattr(stored, "VECTOR_CODE", ("imagecode",))
    embed_catalog(model_dir, clean_dir, tmp_path / "out", PARAMS)
    assert embed_catalog(model_dir, clean_dir, tmp_path / "out", PARAMS)["reused"] > 0
    (package / "__init__.py").write_text("RESIZE = 'bilinear'\n")
    assert embed_catalog(model_dir, clean_dir, tmp_path / "out", PARAMS)["reused"] == 0
