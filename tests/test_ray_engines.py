"""The `ray` engines of caption and embed write what the local engines write, and survive a killed worker.

One local Ray instance serves the whole module (2 CPUs, a 256 MB object store), started through the
same `ray_session` the stages use; the engines find it connected and use it.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from conftest import TEST_ARCH

from modaclip.core.catalog_io import part_files, read_catalog, write_parts
from modaclip.core.config import CaptionParams, EmbedParams, RayParams
from modaclip.core.ray_cluster import ray_session
from modaclip.curate.clean_and_caption import clean_and_caption
from modaclip.curate.ray_engine import clean_and_caption_on_ray
from modaclip.embed import ray_engine
from modaclip.embed.embedding import embed_catalog, read_embeddings
from modaclip.embed.ray_engine import embed_catalog_on_ray
from modaclip.embed.stored import TOWERS_DIR
from modaclip.ingest.synthetic import generate_catalog
from modaclip.model.clip_model import create_base_model, save_model
from modaclip.model.onnx_runtime import TOWERS_CONFIG

pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")
pytestmark = pytest.mark.slow  # a Ray instance and its workers start in about 20 s on 2 busy cores
CLUSTER = RayParams(address="local", num_cpus=2, object_store_mb=256)
EMBED = EmbedParams(batch_size=16)


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    with ray_session(CLUSTER):
        yield


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("model") / "model"
    save_model(create_base_model(TEST_ARCH, "none", seed=0), directory)
    return directory


def raw_parts_with_duplicates_across_them(directory: Path) -> None:
    """Four raw parts and an empty one; later parts repeat images of earlier ones, kept and dropped."""
    catalog = generate_catalog(80, seed=2, image_size=48, defect_rate=0.05)
    catalog.loc[45, "image"] = catalog.loc[3, "image"]  # a kept image again, two parts later
    catalog.loc[70, "image"] = catalog.loc[30, "image"]
    catalog.loc[75, "image"] = catalog.loc[42, "image"]  # row 41 is a tiny-image defect row
    parts = [catalog.iloc[:20], catalog.iloc[20:40], catalog.iloc[:0], catalog.iloc[40:60], catalog.iloc[60:]]
    write_parts(parts, directory)


def test_caption_on_ray_writes_the_local_engines_parts_byte_for_byte(tmp_path: Path) -> None:
    raw_parts_with_duplicates_across_them(tmp_path / "raw")
    params = CaptionParams(val_fraction=0.2, test_fraction=0.2)

    local = clean_and_caption(tmp_path / "raw", tmp_path / "local", params)
    on_ray = clean_and_caption_on_ray(tmp_path / "raw", tmp_path / "ray", params, CLUSTER)

    assert on_ray == local
    assert local["dropped"]["duplicate_image"] >= 3
    local_parts, ray_parts = part_files(tmp_path / "local"), part_files(tmp_path / "ray")
    assert [path.name for path in ray_parts] == [path.name for path in local_parts] and len(local_parts) == 5
    for ours, theirs in zip(ray_parts, local_parts):
        assert ours.read_bytes() == theirs.read_bytes(), f"{ours.name} differs"


def catalog_in_parts(clean_dir: Path, directory: Path, sizes: list[int]) -> Path:
    """The clean catalog's rows repeated under new ids into parts of these sizes."""
    catalog = read_catalog(clean_dir)
    rows = catalog.iloc[np.arange(sum(sizes)) % len(catalog)].reset_index(drop=True)
    rows["id"] = np.arange(len(rows)) + 100_000
    bounds = np.cumsum([0, *sizes])
    write_parts([rows.iloc[lo:hi] for lo, hi in itertools.pairwise(bounds)], directory)
    return directory


def assert_same_embeddings(ours: Path, theirs: Path) -> None:
    a, b = read_embeddings(ours), read_embeddings(theirs)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.image_keys, b.image_keys)
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)


def test_embed_on_ray_reuses_unchanged_products_like_the_local_engine(
    model_dir: Path, clean_dir: Path, tmp_path: Path
) -> None:
    grown = catalog_in_parts(clean_dir, tmp_path / "grown", [60, 0, 60, 60])  # 0: all its raw rows dropped
    old = tmp_path / "old"
    write_parts([read_catalog(grown).iloc[:100]], old)
    embed_catalog(model_dir, grown, tmp_path / "local", EMBED)
    embed_catalog(model_dir, old, tmp_path / "ray", EMBED)

    meta = embed_catalog_on_ray(model_dir, grown, tmp_path / "ray", EMBED, cluster=CLUSTER, towers=True)

    assert meta["reused"] == 100 and meta["count"] == 180
    assert_same_embeddings(tmp_path / "ray", tmp_path / "local")
    assert meta["onnx"] == "exported" and (tmp_path / "ray" / TOWERS_DIR / TOWERS_CONFIG).is_file()  # by the driver


def encoder_pids() -> set[int]:
    """Processes of this test's Ray instance that hold a CatalogEncoder actor."""
    found = set()
    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "CatalogEncoder" in " ".join(process.cmdline()):
                found.add(process.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def test_embed_on_ray_survives_a_worker_killed_mid_run(
    model_dir: Path, clean_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = catalog_in_parts(clean_dir, tmp_path / "catalog", [10, *[200] * 6])
    embed_catalog(model_dir, catalog, tmp_path / "local", EMBED)
    killed: list[int] = []
    later_encoders: set[int] = set()
    write = ray_engine.write_embeddings

    def kill_the_encoder_after_the_first_part(blocks, *args, **kwargs):
        def watched():
            for number, block in enumerate(blocks):
                if killed:
                    later_encoders.update(encoder_pids())
                yield block
                if number == 0:
                    (pid,) = encoder_pids()
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

        return write(watched(), *args, **kwargs)

    monkeypatch.setattr(ray_engine, "write_embeddings", kill_the_encoder_after_the_first_part)
    meta = embed_catalog_on_ray(
        model_dir, catalog, tmp_path / "ray", EmbedParams(batch_size=16, actors=1), cluster=CLUSTER
    )

    assert len(killed) == 1 and meta["count"] == 1210
    assert later_encoders - set(killed), "no restarted encoder took over the killed one's parts"
    assert_same_embeddings(tmp_path / "ray", tmp_path / "local")
