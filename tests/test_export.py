"""`modaclip export MODEL --format hf|onnx OUT`: folders other code loads, each with a model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_ARCH

from modaclip.cli import main
from modaclip.model.clip_model import create_base_model, encode_texts, save_model
from modaclip.model.onnx_runtime import OnnxEmbedder

EVAL = {
    "base": {"text_to_image": {"recall@10": 0.02}},
    "finetuned": {"text_to_image": {"recall@10": 0.63}},
    "delta": {"text_to_image": {"recall@10": 0.61}},
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export") / "model"
    bundle = create_base_model(TEST_ARCH, "none", seed=4)
    provenance = {"data_source": "synthetic", "train_params": {"lr": 0.001, "epochs": 2}}
    save_model(bundle, folder, {"train": {"epochs": 2, "best_epoch": 2}, **provenance})
    return folder


def test_export_onnx_writes_towers_onnxruntime_runs_and_a_card(model_dir: Path, tmp_path: Path) -> None:
    main(["export", str(model_dir), "--format", "onnx", str(tmp_path / "out")])
    texts = ["red dress", "black leather shoes for men"]
    expected = encode_texts(create_base_model(TEST_ARCH, "none", seed=4), texts)
    assert np.abs(OnnxEmbedder(tmp_path / "out").embed_texts(texts) - expected).max() <= 1e-4
    card = (tmp_path / "out" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: onnx\n")
    assert "| lr | 0.001 |" in card and "synthetic" in card
    assert "No evaluation figures" in card  # a bare folder: nothing records its figures


def test_the_card_gives_the_figures_of_the_eval_json_it_is_given(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "eval.json").write_text(json.dumps(EVAL))
    main(["export", str(model_dir), str(tmp_path / "out"), "--format", "hf", "--metrics", str(tmp_path / "eval.json")])
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| text_to_image | recall@10 | 0.020 | 0.630 | +0.610 |" in card
    assert json.loads((tmp_path / "out" / "config.json").read_text())["architectures"] == ["CLIPModel"]


def test_an_earlier_export_is_replaced_anything_else_refused(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    main(["export", str(model_dir), "--format", "onnx", str(out)])
    main(["export", str(model_dir), "--format", "hf", str(out)])
    assert (out / "config.json").is_file() and not (out / "text_tower.onnx").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for argv, message in [
        (["export", str(model_dir), "--format", "hf", str(tmp_path / "mine")], "not an earlier modaclip export"),
        (["export", str(model_dir), "--format", "tflite", str(tmp_path / "new")], "unknown (known: hf, onnx)"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
