"""Which weights a fine-tune keeps: the best epoch by train.select_metric, then the chosen WiSE-FT mix.

Validation scores are dictated (the model is tiny and untrained, so its own would be noise); the
weights are real: each epoch trains, and the test compares the kept weights with each epoch's.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch
from conftest import TEST_ARCH, TINY_TRAIN
from safetensors.torch import load_file
from test_train_options import weights
from test_training import make_trainer

from modaclip.model.clip_model import WEIGHTS_FILE, create_base_model
from modaclip.train.trainer import CHECKPOINT

REPO = Path(__file__).resolve().parents[1]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_best_epoch_by_zero_shot_f1_is_kept_not_the_last(
    clean_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = TINY_TRAIN.model_copy(update={"epochs": 3, "select_metric": "zero_shot_f1"})
    trainer = make_trainer(clean_dir, tmp_path / "ckpt", params)
    # Recall@10 prefers epoch 1, zero-shot F1 epoch 2; epoch 3, the last, is best by neither.
    scores = iter([(0.9, 0.1), (0.1, 0.8), (0.5, 0.3)])
    epoch_weights = []

    def validate() -> dict[str, float]:
        epoch_weights.append(weights(trainer))
        recall, f1 = next(scores)
        return {"recall@10": recall, "zero_shot_f1": f1}

    monkeypatch.setattr(trainer, "validate", validate)
    summary = trainer.fit(tmp_path / "curves")
    assert summary["best_epoch"] == 2 and summary["epochs"] == 3
    assert summary["val_zero_shot_f1"] == 0.8 and summary["val_recall@10"] == 0.1
    assert not same(epoch_weights[1], epoch_weights[2]), "epochs 2 and 3 must train to different weights"
    assert same(weights(trainer), epoch_weights[1])


def test_the_finetune_stage_saves_the_wise_ft_mix_it_chose(clean_dir: Path, tmp_path: Path) -> None:
    """With train.wise_ft_alphas [0.0] the chosen mix is the start model itself, bit for bit, though training ran."""
    (tmp_path / "params.yaml").write_text(
        f"model:\n  arch: {TEST_ARCH}\n"
        "train:\n  epochs: 1\n  batch_size: 16\n  warmup_steps: 2\n  wise_ft_alphas: [0.0]\n"
    )
    model, checkpoints, metrics = tmp_path / "model", tmp_path / "checkpoints", tmp_path / "train.json"
    argv = ["finetune.py", "--params", str(tmp_path / "params.yaml"), "--data", str(clean_dir), "--out", str(model)]
    argv += ["--checkpoints", str(checkpoints), "--curves", str(tmp_path / "curves"), "--metrics", str(metrics)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", argv)
        runpy.run_path(str(REPO / "stages" / "finetune.py"), run_name="__main__")
    start = create_base_model(TEST_ARCH, "none", seed=0).model.state_dict()  # train.seed 0 seeds the base model
    trained = torch.load(checkpoints / CHECKPOINT, weights_only=False)["model"]
    assert not same(trained, start), "the epoch must have moved the weights"
    assert same(load_file(model / WEIGHTS_FILE), start)
    assert json.loads(metrics.read_text())["wise_ft"]["alpha"] == 0.0
