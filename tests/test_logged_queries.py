"""The `{queries}` training field: the logged queries a batch sees, their draw by pair weight, and the run identity."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import TEST_ARCH, TINY_TRAIN
from test_training import splits

from modaclip.core.config import Params
from modaclip.core.errors import ModaclipError
from modaclip.model.clip_model import create_base_model
from modaclip.train.batches import EpochBatches
from modaclip.train.logged_queries import LoggedQueries, feedback_train_params
from modaclip.train.losses import field_keys
from modaclip.train.run_identity import RunIdentity
from modaclip.train.trainer import Trainer

FIELDS = {"{captions}": 1.0, "a photo of a {type}": 0.5, "{queries}": 2.0}


def logged(train: pd.DataFrame) -> LoggedQueries:
    """The first training product has one logged query, the second two (weights 3 and 1), the rest none."""
    first, second = train["id"].astype(str).iloc[:2]
    pairs = pd.DataFrame(
        {
            "query": ["red tee", "crimson top", "plain top"],
            "product_id": [first, second, second],
            "weight": [1.0, 3.0, 1.0],
        }
    )
    return LoggedQueries(pairs)


def trainer_with(clean_dir: Path, tmp_path: Path, queries: LoggedQueries | None) -> Trainer:
    train, val = splits(clean_dir)
    params = TINY_TRAIN.model_copy(update={"fields": FIELDS, "epochs": 1})
    bundle = create_base_model(TEST_ARCH, "none", 0)
    identity = RunIdentity.of(bundle, params, train, val)
    return Trainer(
        bundle,
        train,
        val,
        params,
        checkpoint_dir=tmp_path,
        identity=identity,
        device=torch.device("cpu"),
        queries=queries,
    )


def test_a_batch_sees_each_products_logged_query_and_none_for_the_rest(clean_dir: Path, tmp_path: Path) -> None:
    train, _ = splits(clean_dir)
    trainer = trainer_with(clean_dir, tmp_path, logged(train))
    assert trainer.field_texts.part_weights() == (1.0, 0.5, 2.0)
    queries = [trainer.dataset[i][2][-1] for i in range(len(train))]
    assert queries[0] == "red tee" and queries[1] in {"crimson top", "plain top"}
    assert queries[2:] == [None] * (len(train) - 2)
    order = EpochBatches(len(train), trainer.batch_size, accum_steps=1, seed=TINY_TRAIN.seed, epoch=0)
    for indices, batch in zip(order, trainer.loader(0)):
        expected = [queries[i] for i in indices]
        assert torch.equal(batch.field_keys[-1], field_keys(expected))
        assert (batch.field_rows[-1] >= 0).tolist() == [text is not None for text in expected]
    assert trainer.run_epoch(0) > 0  # the loss takes the extra field


def test_each_epoch_draws_a_query_by_its_pair_weight(clean_dir: Path, tmp_path: Path) -> None:
    train, _ = splits(clean_dir)
    trainer = trainer_with(clean_dir, tmp_path, logged(train))
    drawn = Counter()
    for epoch in range(400):
        trainer.dataset.epoch = epoch
        drawn[trainer.dataset[1][2][-1]] += 1
    assert 0.68 < drawn["crimson top"] / 400 < 0.82  # weight 3 of 4


def test_without_feedback_pairs_the_field_is_left_out_saying_so(
    clean_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="modaclip.train.trainer"):
        trainer = trainer_with(clean_dir, tmp_path, None)
    assert trainer.field_texts.part_weights() == (1.0, 0.5)
    assert len(trainer.dataset[0][2]) == 1
    assert "{queries} left out: no feedback pairs given" in caplog.text


def test_the_run_identity_covers_the_feedback_pairs(clean_dir: Path) -> None:
    train, val = splits(clean_dir)
    bundle = create_base_model(TEST_ARCH, "none", 0)
    pairs = logged(train).pairs
    before = RunIdentity.of(bundle, TINY_TRAIN, train, val, feedback=pairs)
    changed = pairs.assign(weight=[1.0, 1.0, 1.0])
    after = RunIdentity.of(bundle, TINY_TRAIN, train, val, feedback=changed)
    assert after.changes_from(before.parts) == ["the feedback pairs"]


def test_feedback_train_params_take_feedback_train_settings() -> None:
    params = Params.model_validate({"feedback": {"train": {"epochs": 2, "lr": 0.0001, "queries_weight": 1.5}}})
    train = feedback_train_params(params)
    assert (train.epochs, train.lr, train.fields["{queries}"]) == (2, 0.0001, 1.5)
    assert train.fields["{captions}"] == params.train.fields["{captions}"]


def test_pairs_without_the_export_columns_are_refused(tmp_path: Path) -> None:
    pd.DataFrame({"query": ["a"], "product": ["1"]}).to_parquet(tmp_path / "pairs.parquet")
    with pytest.raises(ModaclipError, match=r"pairs.parquet: not a feedback export's pairs"):
        LoggedQueries.read(tmp_path)
    with pytest.raises(ModaclipError, match="no feedback pairs"):
        LoggedQueries.read(tmp_path / "nowhere")
