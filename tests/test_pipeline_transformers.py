"""The real `dvc repro` starting from a transformers CLIPModel folder: every stage runs on the converted model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_hf_convert import save_random_clip, small_clip_config
from test_pipeline import TINY, make_tiny_project, sh, stages_run

pytestmark = pytest.mark.slow


def test_repro_from_a_saved_transformers_checkpoint_runs_every_stage(tmp_path: Path) -> None:
    checkpoint = save_random_clip(tmp_path / "checkpoint", small_clip_config("quick_gelu"))
    params = {**TINY, "model": {"arch": "modaclip-micro", "pretrained": str(checkpoint)}}
    (tmp_path / "project").mkdir()
    project = make_tiny_project(tmp_path / "project", params)
    output = sh(project, "dvc", "repro")
    assert stages_run(output) == {"download", "caption", "finetune", "embed", "evaluate"}
    meta = json.loads((project / "models/finetuned/modaclip.json").read_text())
    assert meta["pretrained"] == str(checkpoint) and meta["arch"] == "transformers CLIPModel"
    config = json.loads((project / "models/finetuned/open_clip_config.json").read_text())
    assert config["model_cfg"]["quick_gelu"] is True and config["model_cfg"]["embed_dim"] == 24
    report = json.loads((project / "metrics/eval.json").read_text())
    assert 0 <= report["finetuned"]["text_to_image"]["recall@10"] <= 1
    towers = json.loads((project / "data/embeddings/onnx/towers.json").read_text())
    assert towers["context_length"] == 24 and towers["image"]["size"] == 32
