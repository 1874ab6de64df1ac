from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import TEST_ARCH, TINY_TRAIN

from modaclip.core.catalog_io import read_catalog
from modaclip.core.config import TrainParams
from modaclip.core.errors import ModaclipError
from modaclip.model.clip_model import create_base_model
from modaclip.train.run_identity import RunIdentity
from modaclip.train.schedules import warmup_cosine
from modaclip.train.trainer import CHECKPOINT, Trainer, parameter_groups


def splits(clean_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    columns = ["id", "image", "captions", "gender", "articleType", "baseColour", "productDisplayName"]
    return read_catalog(clean_dir, columns, split="train"), read_catalog(clean_dir, columns, split="val")


def make_trainer(clean_dir: Path, checkpoints: Path, params: TrainParams = TINY_TRAIN) -> Trainer:
    train, val = splits(clean_dir)
    bundle = create_base_model(TEST_ARCH, "none", params.seed)
    identity = RunIdentity.of(bundle, params, train, val)
    return Trainer(
        bundle, train, val, params, checkpoint_dir=checkpoints, identity=identity, device=torch.device("cpu")
    )


def test_warmup_then_cosine() -> None:
    factor = warmup_cosine(warmup_steps=4, total_steps=14)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(9) == pytest.approx(0.5)
    assert factor(14) == pytest.approx(0.0)


def test_no_weight_decay_on_norms_biases_and_logit_scale() -> None:
    model = create_base_model(TEST_ARCH, "none", 0).model
    decay, no_decay = parameter_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.ndim >= 2 for p in decay["params"])
    exempt = {names[id(p)] for p in no_decay["params"]}
    assert "logit_scale" in exempt
    assert any(n.endswith("ln_final.weight") for n in exempt)
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.1


def test_training_lowers_the_loss_and_reports(clean_dir: Path, tmp_path: Path) -> None:
    params = TINY_TRAIN.model_copy(update={"epochs": 3})
    trainer = make_trainer(clean_dir, tmp_path / "ckpt", params)
    first_loss = trainer.run_epoch(0)
    trainer.state.epoch = 1
    summary = trainer.fit(tmp_path / "curves")
    assert summary["epochs"] == 3
    assert summary["final_train_loss"] < first_loss
    assert 0.0 <= summary["val_recall@10"] <= 1.0
    assert (tmp_path / "curves" / "plots" / "metrics" / "train" / "loss.tsv").is_file()


def test_interrupted_run_resumes_to_the_same_weights(
    clean_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = make_trainer(clean_dir, tmp_path / "straight")
    straight.fit(tmp_path / "curves-a")

    interrupted = make_trainer(clean_dir, tmp_path / "resumed")
    original = Trainer.run_epoch

    def crash_in_second_epoch(self: Trainer, epoch: int) -> float:
        if epoch == 1:
            raise KeyboardInterrupt("killed")
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "run_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(tmp_path / "curves-b")
    monkeypatch.setattr(Trainer, "run_epoch", original)
    assert (tmp_path / "resumed" / CHECKPOINT).is_file()

    resumed = make_trainer(clean_dir, tmp_path / "resumed")
    assert resumed.try_resume() and resumed.state.epoch == 1
    resumed = make_trainer(clean_dir, tmp_path / "resumed")
    resumed.fit(tmp_path / "curves-b")
    for (name, a), b in zip(straight.bundle.model.state_dict().items(), resumed.bundle.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_checkpoint_of_another_run_is_not_resumed(clean_dir: Path, tmp_path: Path) -> None:
    make_trainer(clean_dir, tmp_path / "ckpt", TINY_TRAIN.model_copy(update={"epochs": 1})).fit(tmp_path / "c")
    other = make_trainer(clean_dir, tmp_path / "ckpt", TINY_TRAIN.model_copy(update={"epochs": 1, "lr": 5e-4}))
    assert not other.try_resume()


def test_nan_loss_stops_with_the_step(clean_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = make_trainer(clean_dir, tmp_path / "ckpt")
    monkeypatch.setattr(trainer, "loss_fn", lambda *args, **kwargs: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(ModaclipError, match="loss became nan at epoch 1, step 1"):
        trainer.fit(tmp_path / "curves")
    assert not (tmp_path / "ckpt" / CHECKPOINT).exists()


def test_too_few_training_rows(clean_dir: Path, tmp_path: Path) -> None:
    train, val = splits(clean_dir)
    bundle = create_base_model(TEST_ARCH, "none", 0)
    with pytest.raises(ModaclipError, match="train split has 1 rows"):
        Trainer(
            bundle,
            train.head(1),
            val,
            TINY_TRAIN,
            checkpoint_dir=tmp_path,
            identity=RunIdentity({}),
            device=torch.device("cpu"),
        )
