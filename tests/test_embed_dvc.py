"""Incremental embedding through the real `dvc repro`, not just the function: DVC must leave the
persisted vectors in place when it runs the embed stage, so adding products embeds only them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_pipeline import make_tiny_project, set_params, sh, stages_run

from modaclip.core.config import EmbedParams
from modaclip.embed.embedding import embed_catalog
from modaclip.embed.stored import read_embeddings

TINY = {
    "data": {"num_items": 40, "image_size": 64},
    "caption": {"val_fraction": 0.2, "test_fraction": 0.2},
    "train": {"epochs": 1, "batch_size": 16, "warmup_steps": 2},
    "embed": {"batch_size": 32},
}

pytestmark = pytest.mark.slow


def test_growing_the_catalog_with_the_model_unchanged_embeds_only_the_new_products(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    project = make_tiny_project(tmp_path / "project", TINY)
    sh(project, "dvc", "repro", "embed")
    before = read_embeddings(project / "data/embeddings")

    set_params(project, {"data": {"num_items": 60}})
    output = sh(project, "dvc", "repro", "-s", "download", "caption", "embed")  # -s: finetune is not rerun
    assert stages_run(output) == {"download", "caption", "embed"}
    grown = read_embeddings(project / "data/embeddings")
    added = len(grown.ids) - len(before.ids)
    assert added > 0 and f"embedded {added} products, reused {len(before.ids)} unchanged ones" in output

    embed_catalog(
        project / "models/finetuned", project / "data/clean", tmp_path / "scratch", EmbedParams(batch_size=32)
    )
    scratch = read_embeddings(tmp_path / "scratch")
    np.testing.assert_array_equal(grown.ids, scratch.ids)
    np.testing.assert_allclose(grown.vectors, scratch.vectors, atol=1e-6)
