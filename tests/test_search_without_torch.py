"""Search with the embed stage's ONNX towers: the same answers as torch, and a cold command that never imports torch."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_ARCH
from test_stage_runner import read_three_lines_and_close

from modaclip.core.catalog_io import read_catalog
from modaclip.core.config import EmbedParams
from modaclip.embed.embedding import embed_catalog
from modaclip.embed.stored import TOWERS_DIR
from modaclip.model.clip_model import create_base_model, save_model
from modaclip.model.embedders import TorchEmbedder
from modaclip.model.onnx_runtime import OnnxEmbedder
from modaclip.model.zero_shot import classify_image
from modaclip.search.engine import CatalogSearch
from modaclip.serve.text_encoder_process import TextEncoderProcess

HEAVY = re.compile(r"\|\s+(torch|torchvision|open_clip)(\.\w+)*\s*$")


@pytest.fixture(scope="module")
def paths(clean_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A micro model, its embeddings of `clean_dir` with the ONNX towers, and a copy of them without."""
    root = tmp_path_factory.mktemp("onnx_search")
    save_model(create_base_model(TEST_ARCH, "none", seed=2), root / "model")
    embed_catalog(root / "model", clean_dir, root / "embeddings", EmbedParams(batch_size=64), towers=True)
    shutil.copytree(root / "embeddings", root / "plain", ignore=shutil.ignore_patterns(TOWERS_DIR))
    return {"model": root / "model", "embeddings": root / "embeddings", "plain": root / "plain", "catalog": clean_dir}


def cli(paths: dict[str, Path], *args: str, embeddings: str = "embeddings") -> list[str]:
    return [
        sys.executable,
        "-m",
        "modaclip.cli",
        *args,
        *("--model", str(paths["model"]), "--embeddings", str(paths[embeddings]), "--catalog", str(paths["catalog"])),
    ]


def test_the_engine_uses_the_towers_when_there_and_torch_otherwise_saying_so(
    paths: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        engine = CatalogSearch.open(paths["model"], paths["embeddings"], paths["catalog"])
        assert isinstance(engine.embedder, OnnxEmbedder) and not caplog.records
        for _ in range(2):
            engine = CatalogSearch.open(paths["model"], paths["plain"], paths["catalog"])
    assert isinstance(engine.embedder, TorchEmbedder)
    assert [r.getMessage() for r in caplog.records] == [
        f"no ONNX towers in {paths['plain'] / TOWERS_DIR} (`dvc repro embed` writes them); "
        "embedding queries with torch, which takes seconds to load"
    ]


def test_torch_and_onnxruntime_give_the_same_top_10_for_50_queries(paths: dict[str, Path]) -> None:
    onnx = CatalogSearch.open(paths["model"], paths["embeddings"], paths["catalog"])
    torch_engine = CatalogSearch.open(paths["model"], paths["plain"], paths["catalog"])
    captions = read_catalog(paths["catalog"], columns=["captions"])["captions"]
    rows = np.linspace(0, len(captions) - 1, 50).astype(int)
    queries = [captions.iloc[row][n % len(captions.iloc[row])] for n, row in enumerate(rows)]  # all caption kinds
    assert len(set(queries)) > 25
    for a, b in zip(onnx.search_text(queries, 10), torch_engine.search_text(queries, 10)):
        assert [hit.id for hit in a] == [hit.id for hit in b]
    photo = read_catalog(paths["catalog"], columns=["image"])["image"].iloc[0][:-2] + b"\xff\xd9"  # a new image
    assert [h.id for h in onnx.similar(photo, 10)] == [h.id for h in torch_engine.similar(photo, 10)]


def test_zero_shot_with_the_towers_equals_torch(paths: dict[str, Path]) -> None:
    image = read_catalog(paths["catalog"], columns=["image"])["image"].iloc[3]
    labels = ["dress", "shoe", "watch", "shirt"]
    with_onnx = classify_image(OnnxEmbedder(paths["embeddings"] / TOWERS_DIR), image, labels)
    with_torch = classify_image(TorchEmbedder(paths["model"]), image, labels)
    assert [label for label, _, _ in with_onnx] == [label for label, _, _ in with_torch]
    np.testing.assert_allclose([p for _, _, p in with_onnx], [p for _, _, p in with_torch], atol=1e-4)


def test_a_cold_search_imports_neither_torch_nor_open_clip(paths: dict[str, Path]) -> None:
    command = [sys.executable, "-X", "importtime", *cli(paths, "search", "red dress", "-k", "3", "--json")[1:]]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    heavy = sorted({m.group(1) for line in done.stderr.splitlines() if (m := HEAVY.search(line))})
    assert heavy == [], f"a cold search imported {heavy}"
    assert len(json.loads(done.stdout)[0]["results"]) == 3


def test_search_json_into_a_reader_that_goes_away_ends_quietly(paths: dict[str, Path]) -> None:
    queries = ["red dress", "blue jeans", "black shoes", "white shirt", "brown belt"]
    done = read_three_lines_and_close(cli(paths, "search", *queries, "-k", "100", "--json"))  # past a pipe buffer
    assert done.stdout.startswith("[\n") and done.stderr == "" and done.returncode == 141


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads the child's loaded libraries from /proc")
def test_the_servers_text_encoder_process_runs_the_onnx_tower_without_torch(paths: dict[str, Path]) -> None:
    texts = ["red summer dress", "a", "women blue casual slim fit jeans for the summer season and more words"]
    with TextEncoderProcess(paths["model"], paths["embeddings"] / TOWERS_DIR) as encoder:
        np.testing.assert_allclose(encoder(texts), TorchEmbedder(paths["model"]).embed_texts(texts), atol=1e-4)
        libraries = Path(f"/proc/{encoder._process.pid}/maps").read_text()
    assert "libtorch" not in libraries and "onnxruntime" in libraries
