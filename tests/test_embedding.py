import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_ARCH

from modaclip.core.catalog_io import read_catalog, write_parts
from modaclip.core.config import EmbedParams, IndexParams
from modaclip.core.errors import ModaclipError
from modaclip.embed.embedding import Shard, embed_catalog, merge_shards
from modaclip.embed.index import INDEX_FILE
from modaclip.embed.stored import read_embeddings
from modaclip.model.clip_model import create_base_model, save_model

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


def test_two_shards_merged_equal_a_single_run(model_dir: Path, clean_dir: Path, full_run: Path, tmp_path: Path) -> None:
    parts = [tmp_path / f"part{i}" for i in range(2)]
    for i, part in enumerate(parts):
        meta = embed_catalog(model_dir, clean_dir, part, PARAMS, Shard(i, 2))
        assert "index" not in meta and not (part / INDEX_FILE).exists()
    merge_shards(parts, tmp_path / "merged", IndexParams())
    merged, single = read_embeddings(tmp_path / "merged"), read_embeddings(full_run)
    np.testing.assert_array_equal(merged.ids, single.ids)
    np.testing.assert_allclose(merged.vectors, single.vectors, atol=1e-5)
    assert (tmp_path / "merged" / INDEX_FILE).is_file()


def test_merge_refuses_missing_or_reordered_shards(model_dir: Path, clean_dir: Path, tmp_path: Path) -> None:
    embed_catalog(model_dir, clean_dir, tmp_path / "p1", PARAMS, Shard(1, 2))
    with pytest.raises(ModaclipError, match=r"expected shards \['0/1'\]"):
        merge_shards([tmp_path / "p1"], tmp_path / "merged", IndexParams())


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


@pytest.mark.parametrize("text", ["2/2", "a/b", "1", "-1/2"])
def test_bad_shard_spec(text: str) -> None:
    with pytest.raises(ModaclipError, match="--shard"):
        Shard.parse(text)


def test_shards_cover_every_row_once() -> None:
    rows = [list(Shard(i, 3).rows(10)) for i in range(3)]
    assert [row for shard in rows for row in shard] == list(range(10))
