"""Each fine-tuning option on the tiny model: one or two optimizer steps, seconds each."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TEST_ARCH, TINY_TRAIN
from test_training import make_trainer, splits

from modaclip.core.catalog_io import write_parts
from modaclip.core.config import CaptionParams
from modaclip.core.errors import ModaclipError
from modaclip.curate.clean_and_caption import clean_and_caption
from modaclip.ingest.synthetic import generate_catalog
from modaclip.model.clip_model import create_base_model, encode_images
from modaclip.model.zero_shot import predict_labels
from modaclip.train.batches import EpochBatches
from modaclip.train.precision import resolve_precision
from modaclip.train.run_identity import RunIdentity
from modaclip.train.schedules import create_schedule
from modaclip.train.trainer import Trainer, validation_scores
from modaclip.train.wiseft import interpolate

CPU = torch.device("cpu")


def first_batches(trainer: Trainer, count: int) -> list:
    loader = iter(trainer.loader(0))
    return [next(loader) for _ in range(count)]


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.bundle.model.state_dict().items()}


def grads(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in trainer.bundle.model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    "update, frozen_prefix, trained_prefix",
    [
        ({"lock_image": True}, "visual.", "transformer."),
        ({"lock_text": True}, "transformer.", "visual."),
    ],
)
def test_locked_tower_stays_bit_identical(
    clean_dir: Path, tmp_path: Path, update, frozen_prefix, trained_prefix
) -> None:
    trainer = make_trainer(clean_dir, tmp_path, TINY_TRAIN.model_copy(update=update))
    before = weights(trainer)
    batches = first_batches(trainer, 2)
    for batch in batches:
        trainer.train_step([batch])
    after = weights(trainer)
    frozen = [k for k in before if k.startswith(frozen_prefix)]
    trained = [k for k in before if k.startswith(trained_prefix) and after[k].is_floating_point()]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert trained and all(not torch.equal(before[k], after[k]) for k in trained)


def test_unlocked_top_layers_train(clean_dir: Path, tmp_path: Path) -> None:
    params = TINY_TRAIN.model_copy(
        update={"lock_image": True, "lock_image_unlocked_groups": 2, "lock_text": True, "lock_text_unlocked_layers": 2}
    )
    trainer = make_trainer(clean_dir, tmp_path, params)
    before = weights(trainer)
    trainer.train_step(first_batches(trainer, 1))
    after = weights(trainer)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "visual.transformer.resblocks.1.mlp.c_fc.weight" in changed and "visual.proj" in changed
    assert "transformer.resblocks.1.mlp.c_fc.weight" in changed and "text_projection" in changed
    assert not any(
        k.startswith(("visual.transformer.resblocks.0.", "transformer.resblocks.0.", "visual.conv1")) for k in changed
    )
    assert "token_embedding.weight" not in changed


def test_locking_everything_is_an_error(clean_dir: Path, tmp_path: Path) -> None:
    model = create_base_model(TEST_ARCH, "none", 0).model
    model.logit_scale.requires_grad_(False)
    from modaclip.train.freezing import apply_freezing

    with pytest.raises(ModaclipError, match="leave no parameter"):
        apply_freezing(model, lock_image=True, image_unlocked_groups=0, lock_text=True, text_unlocked_layers=0)


@pytest.mark.parametrize("loss", ["multipos", "fields"])
def test_accumulation_gives_the_big_batch_gradient(clean_dir: Path, tmp_path: Path, loss: str) -> None:
    """Feature caching: 2 micro-batches of 8 give the gradient of one batch of 16 (not the mean of two)."""
    base = TINY_TRAIN.model_copy(update={"grad_clip": 0.0, "loss": loss})
    big = make_trainer(clean_dir, tmp_path / "a", base.model_copy(update={"batch_size": 16}))
    small = make_trainer(clean_dir, tmp_path / "b", base.model_copy(update={"batch_size": 8, "accum_steps": 2}))
    whole = first_batches(big, 1)[0]
    parts = first_batches(small, 2)
    assert torch.equal(torch.cat([parts[0].images, parts[1].images]), whole.images)  # same items, order, crops
    loss_big = big.train_step([whole])
    loss_small = small.train_step(parts)
    assert loss_small == pytest.approx(loss_big, abs=1e-5)
    g_big, g_small = grads(big), grads(small)
    assert g_big.keys() == g_small.keys()
    for name in g_big:
        assert torch.allclose(g_small[name], g_big[name], rtol=1e-3, atol=1e-6), name


def test_gradient_checkpointing_keeps_the_gradients(clean_dir: Path, tmp_path: Path) -> None:
    plain = make_trainer(clean_dir, tmp_path / "a", TINY_TRAIN.model_copy(update={"grad_clip": 0.0}))
    ckpt = make_trainer(
        clean_dir, tmp_path / "b", TINY_TRAIN.model_copy(update={"grad_clip": 0.0, "grad_checkpointing": True})
    )
    assert ckpt.bundle.model.transformer.grad_checkpointing
    batch = first_batches(plain, 1)
    plain.train_step(batch)
    ckpt.train_step(batch)
    g_plain, g_ckpt = grads(plain), grads(ckpt)
    for name in g_plain:
        assert torch.allclose(g_ckpt[name], g_plain[name], rtol=1e-4, atol=1e-7), name


def test_siglip_trains_the_added_bias(clean_dir: Path, tmp_path: Path) -> None:
    trainer = make_trainer(clean_dir, tmp_path, TINY_TRAIN.model_copy(update={"loss": "siglip"}))
    bias = trainer.bundle.model.logit_bias.item()
    trainer.train_step(first_batches(trainer, 1))
    assert trainer.bundle.model.logit_bias.item() != bias


def test_constant_schedule_holds_after_warmup() -> None:
    factor = create_schedule("constant", 4, 100)
    assert [factor(s) for s in (0, 3, 4, 50, 99)] == [0.25, 1.0, 1.0, 1.0, 1.0]


def test_precision_on_cpu() -> None:
    assert resolve_precision("auto", CPU).name == "fp32"
    for name in ("bf16", "fp16"):
        with pytest.raises(ModaclipError, match=f"train.precision: {name} needs a CUDA device"):
            resolve_precision(name, CPU)


def test_patience_stops_early_and_keeps_the_best_epoch(
    clean_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = make_trainer(clean_dir, tmp_path / "ckpt", TINY_TRAIN.model_copy(update={"epochs": 10, "patience": 2}))
    scores = iter([0.1, 0.5, 0.4, 0.45, 0.9])
    monkeypatch.setattr(trainer, "run_epoch", lambda epoch: 1.0)
    monkeypatch.setattr(trainer, "validate", lambda: {"recall@10": next(scores), "zero_shot_f1": 0.0})
    summary = trainer.fit(tmp_path / "curves")
    assert summary["epochs"] == 4 and summary["stopped_early"]
    assert summary["best_epoch"] == 2 and summary["val_recall@10"] == 0.5


def test_wise_ft_end_points_are_exact_and_every_alpha_is_scored(
    clean_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = TINY_TRAIN.model_copy(update={"epochs": 1, "wise_ft_alphas": [0.0, 0.5, 1.0]})
    trainer = make_trainer(clean_dir, tmp_path / "ckpt", params)
    start = weights(trainer)
    trainer.train_step(first_batches(trainer, 1))
    tuned = weights(trainer)
    assert all(torch.equal(interpolate(start, tuned, 0.0)[k], start[k]) for k in start)
    assert all(torch.equal(interpolate(start, tuned, 1.0)[k], tuned[k]) for k in start)
    half = interpolate(start, tuned, 0.5)["visual.proj"]
    assert torch.allclose(half, (start["visual.proj"] + tuned["visual.proj"]) / 2, atol=1e-7)

    # the middle alpha scores best on val: it is chosen and left in the model
    monkeypatch.setattr(
        trainer,
        "validate",
        lambda: {
            "recall@10": 1.0 - abs(float(trainer.bundle.model.visual.proj.detach().sub(half).abs().max())),
            "zero_shot_f1": 0.0,
        },
    )
    trainer.wise_ft()
    assert trainer.wise_ft_alpha == 0.5 and set(trainer.wise_ft_scores) == {"0.0", "0.5", "1.0"}
    assert torch.allclose(trainer.bundle.model.visual.proj, half)


def test_validation_reports_zero_shot_f1(clean_dir: Path) -> None:
    from modaclip.core.catalog_io import read_catalog

    val = read_catalog(clean_dir, ["id", "image", "captions", "articleType"], split="val")
    labels = sorted(val["articleType"].astype(str).unique())
    scores = validation_scores(create_base_model(TEST_ARCH, "none", 0), val, labels, "articleType")
    assert 0.0 <= scores["recall@10"] <= 1.0 and 0.0 <= scores["zero_shot_f1"] <= 1.0


def test_ranks_and_micro_batches_cover_the_same_global_batches() -> None:
    single = list(EpochBatches(40, 8, accum_steps=1, seed=3, epoch=1))
    ranks = [list(EpochBatches(40, 2, accum_steps=2, seed=3, epoch=1, rank=r, world_size=2)) for r in range(2)]
    # step s of the single run = micro-batches 2s, 2s+1 of both ranks
    for step, batch in enumerate(single):
        pieces = [ranks[r][2 * step + j] for j in range(2) for r in range(2)]
        assert sorted(item for piece in pieces for item in piece) == sorted(batch)
    resumed = list(EpochBatches(40, 8, accum_steps=1, seed=3, epoch=1, start=2))
    assert resumed == single[2:]


def test_a_local_weights_file_is_a_start_point(tmp_path: Path) -> None:
    source = create_base_model(TEST_ARCH, "none", 7).model
    torch.save(source.state_dict(), tmp_path / "start.pt")
    loaded = create_base_model(TEST_ARCH, str(tmp_path / "start.pt"), 0).model
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), loaded.state_dict().values()))


@pytest.fixture(scope="module")
def colourless_captions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny catalog captioned without its colours: the plain loss never reads a colour word."""
    root = tmp_path_factory.mktemp("colourless")
    write_parts([generate_catalog(150, seed=1, image_size=64)], root / "raw")
    templates = ["a photo of a {gender} {articleType}", "{articleType} for {gender}"]
    params = CaptionParams(val_fraction=0.2, test_fraction=0.2, templates=templates)
    clean_and_caption(root / "raw", root / "clean", params)
    return root / "clean"


def colour_accuracy(loss: str, clean: Path, checkpoints: Path) -> float:
    """Zero-shot baseColour accuracy ("a photo of a {label}") on train + val after 30 steps with `loss`."""
    train, val = splits(clean)
    fields = {"{captions}": 1.0, "a photo of a {colour}": 1.0}
    params = TINY_TRAIN.model_copy(update={"loss": loss, "epochs": 6, "fields": fields})
    trainer = Trainer(
        create_base_model(TEST_ARCH, "none", 0),
        train,
        val,
        params,
        checkpoint_dir=checkpoints,
        identity=RunIdentity({}),
        device=CPU,
    )
    for epoch in range(params.epochs):
        trainer.run_epoch(epoch)
    items = pd.concat([train, val])
    labels = sorted(items["baseColour"].unique())
    predicted = predict_labels(trainer.bundle, encode_images(trainer.bundle, items["image"].tolist()), labels)
    return float((np.asarray(predicted) == items["baseColour"].to_numpy()).mean())


@pytest.mark.slow
def test_field_aware_loss_learns_a_field_the_plain_loss_does_not(colourless_captions: Path, tmp_path: Path) -> None:
    """Same steps, same data: with "a photo of a {colour}" as a field the model names colours; without, at chance."""
    plain = colour_accuracy("clip", colourless_captions, tmp_path / "clip")
    fields = colour_accuracy("fields", colourless_captions, tmp_path / "fields")
    assert plain < 0.2  # 16 colours; the most common is about 1 in 8
    assert fields > 0.5 and fields > plain + 0.3
