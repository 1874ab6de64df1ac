"""Shared fixtures: tiny generated catalogs and a tiny trained model, made once per session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from modaclip.core.catalog_io import write_parts
from modaclip.core.config import CaptionParams, TrainParams
from modaclip.curate.clean_and_caption import clean_and_caption
from modaclip.ingest.synthetic import generate_catalog

if TYPE_CHECKING:
    from built_project import BuiltProject

    from modaclip.search.engine import CatalogSearch
    from modaclip.serve.catalog_images import CatalogImages

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TEST_ARCH = "modaclip-micro"  # 3M parameters: trains ~7x faster than the default modaclip-tiny
TINY_TRAIN = TrainParams(epochs=2, batch_size=16, lr=1e-3, warmup_steps=2, seed=0)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker computes on one thread, as do the pipeline stages it starts.

    The suite runs a worker per core; torch's default of a thread per core in every worker made
    the small in-process training steps several times slower than serially.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


# The longest first (worker time on 2 busy cores, 2026-12-07: about 12, 5, 5, 4.5, 4, 2.5, 2.4 and 2.3 min; xdist
# keeps this order, see pyproject's addopts): while test_retrain.py holds one worker, the other starts the next
# longest instead of reaching a long one-test file last. test_pipeline.py waits for the project test_retrain.py's
# worker builds first (learned_project), so it comes after two others.
LONGEST_FILES = [
    "test_retrain.py",
    "test_retrain_catalog.py",
    "test_text_encoder_process.py",
    "test_pipeline_feedback.py",
    "test_pipeline.py",
    "test_pipeline_fields.py",
    "test_ray_engines.py",
    "test_follow_clone.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first, then the other slow ones: xdist hands out whole files, so none may start last."""

    def rank(item: pytest.Item) -> int:
        if item.path.name in LONGEST_FILES:
            return LONGEST_FILES.index(item.path.name)
        return len(LONGEST_FILES) + (item.get_closest_marker("slow") is None)

    items.sort(key=rank)


@pytest.fixture(scope="session")
def clean_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean, captioned, split catalog of ~150 generated products."""
    root = tmp_path_factory.mktemp("catalog")
    write_parts([generate_catalog(150, seed=1, image_size=64)], root / "raw")
    clean_and_caption(root / "raw", root / "clean", CaptionParams(val_fraction=0.2, test_fraction=0.2))
    return root / "clean"


@pytest.fixture(scope="session")
def served_paths(clean_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An untrained micro model and its embeddings of `clean_dir`: what the server tests serve (seconds to make)."""
    # Imported here, not at the top: the other tests' collection should not pay for loading torch.
    from modaclip.core.config import EmbedParams
    from modaclip.embed.embedding import embed_catalog
    from modaclip.model.clip_model import create_base_model, save_model

    root = tmp_path_factory.mktemp("served")
    save_model(create_base_model(TEST_ARCH, "none", seed=0), root / "model")
    embed_catalog(root / "model", clean_dir, root / "embeddings", EmbedParams(batch_size=32))
    return {"model": root / "model", "embeddings": root / "embeddings", "catalog": clean_dir}


@pytest.fixture(scope="module")
def served_engine(served_paths: dict[str, Path]) -> CatalogSearch:
    """A search engine over `served_paths`, one per test module."""
    from modaclip.search.engine import CatalogSearch

    return CatalogSearch.open(served_paths["model"], served_paths["embeddings"], served_paths["catalog"])


@pytest.fixture(scope="module")
def served_images(served_engine: CatalogSearch) -> CatalogImages:
    from modaclip.serve.catalog_images import CatalogImages

    return CatalogImages.load(served_engine.catalog_dir, served_engine.ids.tolist())


@pytest.fixture(scope="session")
def learned_project(tmp_path_factory: pytest.TempPathFactory) -> BuiltProject:
    """test_pipeline's tiny project that learns (TINY with LEARNING's 12 epochs) after its first `dvc repro`.

    test_pipeline.py and test_retrain.py both start from it: built once per session, each takes a copy.
    """
    from built_project import build_once
    from test_pipeline import LEARNING, TINY, make_tiny_project, sh

    def build(root: Path) -> str:
        return sh(make_tiny_project(root, {**TINY, "train": {**TINY["train"], **LEARNING}}), "dvc", "repro")

    return build_once(tmp_path_factory, "learned-project", build)
