"""A checkpoint is resumed only by the interrupted run that wrote it: any change to what training reads
starts fresh, saying why in one line, and a kill while a checkpoint is written resumes consistently."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import TEST_ARCH, TINY_TRAIN
from test_stage_deps import stage_modules
from test_training import splits

from modaclip.core.config import TrainParams
from modaclip.core.source_digest import source_digest
from modaclip.model.clip_model import create_base_model
from modaclip.train.run_identity import TRAINING_CODE, RunIdentity
from modaclip.train.trainer import CHECKPOINT, Trainer

CPU = torch.device("cpu")


def trainer_on(train: pd.DataFrame, val: pd.DataFrame, checkpoints: Path, params: TrainParams = TINY_TRAIN) -> Trainer:
    bundle = create_base_model(TEST_ARCH, "none", params.seed)
    return Trainer(
        bundle,
        train,
        val,
        params,
        checkpoint_dir=checkpoints,
        identity=RunIdentity.of(bundle, params, train, val),
        device=CPU,
    )


def interrupted_checkpoint(train: pd.DataFrame, val: pd.DataFrame, checkpoints: Path) -> None:
    """The checkpoint of a run stopped after epoch 1 of 2: one the same run resumes."""
    trainer = trainer_on(train, val, checkpoints)
    trainer.state.epoch = 1
    trainer.save_checkpoint()


def new_caption(train: pd.DataFrame, val: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = train.copy()
    train.at[0, "captions"] = ["a photo of a product nobody captioned so before"]
    return train, val


def new_attribute(train: pd.DataFrame, val: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Same ids, same captions, another colour: the field-aware loss reads it."""
    train = train.copy()
    train.at[0, "baseColour"] = "Purple" if train.at[0, "baseColour"] != "Purple" else "Olive"
    return train, val


def new_image(train: pd.DataFrame, val: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = train.copy()
    train.at[0, "image"] = train.at[1, "image"]
    return train, val


def new_validation_caption(train: pd.DataFrame, val: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    val = val.copy()
    val.at[0, "captions"] = ["another validation caption"]
    return train, val


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (new_caption, "the training rows changed"),
        (new_attribute, "the training rows changed"),
        (new_image, "the training rows changed"),
        (new_validation_caption, "the validation rows changed"),
    ],
)
def test_a_change_to_the_rows_starts_fresh_saying_why(
    clean_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    change: Callable[[pd.DataFrame, pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]],
    said: str,
) -> None:
    train, val = splits(clean_dir)
    interrupted_checkpoint(train, val, tmp_path)
    assert trainer_on(train, val, tmp_path).try_resume(), "the same run must resume"

    changed = trainer_on(*change(train, val), tmp_path)
    with caplog.at_level(logging.INFO, logger="modaclip.train.trainer"):
        assert not changed.try_resume()
    assert changed.state.epoch == 0 and changed.state.step == 0
    (line,) = [record.getMessage() for record in caplog.records if "starting fresh" in record.getMessage()]
    assert f"starting fresh: {said} since the checkpoint was written" in line


def test_a_change_to_the_train_params_names_them(
    clean_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train, val = splits(clean_dir)
    interrupted_checkpoint(train, val, tmp_path)
    other = trainer_on(train, val, tmp_path, TINY_TRAIN.model_copy(update={"lr": 5e-4}))
    with caplog.at_level(logging.INFO, logger="modaclip.train.trainer"):
        assert not other.try_resume()
    assert "starting fresh: the train params changed" in caplog.text


def test_a_change_to_the_code_changes_the_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The code part hashes every file of the packages named; a one-character edit to a loss is seen."""
    package = tmp_path / "somecode"
    (package / "nested").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nested" / "losses.py").write_text("TEMPERATURE = 0.07\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = source_digest(["somecode"])
    (package / "nested" / "__pycache__").mkdir()
    (package / "nested" / "__pycache__" / "losses.cpython-311.pyc").write_bytes(b"byte-code is not code")
    assert source_digest(["somecode"]) == before, "byte-code changed the digest"
    (package / "nested" / "losses.py").write_text("TEMPERATURE = 0.08\n")
    after = source_digest(["somecode"])
    assert after != before
    said = RunIdentity({"code": after}).changes_from({"code": before})
    assert said == ["the training code"]


def test_the_identity_covers_every_project_package_the_finetune_stage_loads() -> None:
    loaded = {".".join(name.split(".")[:2]) for name in stage_modules(["stages/finetune.py"])["stages/finetune.py"]}
    assert loaded - {"modaclip"} == set(TRAINING_CODE)


def test_a_finished_checkpoint_is_never_a_new_runs_result(
    clean_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train, val = splits(clean_dir)
    finished = trainer_on(train, val, tmp_path)
    finished.state.epoch = TINY_TRAIN.epochs
    finished.save_checkpoint()
    again = trainer_on(train, val, tmp_path)
    with caplog.at_level(logging.INFO, logger="modaclip.train.trainer"):
        assert not again.try_resume()
    assert "starting fresh: the checkpoint is of a finished run" in caplog.text


def scripted_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation scores by epoch that make epoch 2 of 3 the best, so the final model is not the last epoch's."""
    by_epoch = [0.5, 0.6, 0.4]
    monkeypatch.setattr(
        Trainer, "validate", lambda self: {"recall@10": by_epoch[self.state.epoch], "zero_shot_f1": math.nan}
    )


def test_a_kill_while_the_checkpoint_is_written_resumes_to_the_same_best_weights(
    clean_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after epoch 2 (the best) wrote its checkpoint's bytes but before they replaced epoch 1's.

    The two files of old (last.pt, then best.pt) could be killed between their writes, leaving a state
    that named epoch 2 best beside epoch 1's weights; one file leaves epoch 1's whole checkpoint.
    """
    train, val = splits(clean_dir)
    params = TINY_TRAIN.model_copy(update={"epochs": 3})
    scripted_scores(monkeypatch)
    straight = trainer_on(train, val, tmp_path / "straight", params)
    summary = straight.fit(tmp_path / "curves-a")
    assert summary["best_epoch"] == 2

    replace, renames = os.replace, []

    def killed_at_the_second_checkpoint(src: str | Path, dst: str | Path) -> None:
        if Path(dst).name == CHECKPOINT:
            renames.append(dst)
            if len(renames) == 2:
                raise KeyboardInterrupt("killed before the rename")
        replace(src, dst)

    killed = trainer_on(train, val, tmp_path / "killed", params)
    monkeypatch.setattr(os, "replace", killed_at_the_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(tmp_path / "curves-b")
    monkeypatch.setattr(os, "replace", replace)
    assert torch.load(tmp_path / "killed" / CHECKPOINT, weights_only=False)["state"]["epoch"] == 1

    resumed = trainer_on(train, val, tmp_path / "killed", params)
    assert resumed.fit(tmp_path / "curves-b")["best_epoch"] == 2
    for (name, expected), actual in zip(
        straight.bundle.model.state_dict().items(), resumed.bundle.model.state_dict().values()
    ):
        assert torch.equal(expected, actual), name


def test_the_checkpoint_holds_the_best_weights_when_they_are_not_the_models(
    clean_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, val = splits(clean_dir)
    scripted_scores(monkeypatch)
    trainer = trainer_on(train, val, tmp_path, TINY_TRAIN.model_copy(update={"epochs": 3}))
    trainer.fit(tmp_path / "curves")
    payload = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    assert not payload["best_is_model"] and payload["state"]["best_epoch"] == 1
    for name, value in trainer.bundle.model.state_dict().items():  # the model left holds the best weights
        assert torch.equal(payload["best_weights"][name], value), name
