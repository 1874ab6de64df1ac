"""Contrastive fine-tuning of an open_clip model: data, loop, validation, checkpoints and resume.

The loop is written out in `Trainer.run_epoch` (forward, loss, backward, step) so a reader finds
where the loss is computed and where the checkpoint is written in seconds.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from dvclive import Live
from open_clip import ClipLoss
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from modaclip.atomic import atomic_file
from modaclip.clip_model import ClipBundle, decode_image, encode_images, encode_texts
from modaclip.config import TrainParams
from modaclip.errors import ModaclipError
from modaclip.metrics import count_relevant, recall_at_k, relevance, top_k

log = logging.getLogger(__name__)

CHECKPOINT = "last.pt"
BEST_WEIGHTS = "best.pt"


class CaptionedImages(Dataset):
    """(image tensor, caption) pairs; each epoch draws one of an item's captions, reproducibly."""

    def __init__(self, images: Sequence[bytes], captions: Sequence[Sequence[str]], transform, seed: int) -> None:
        self.images = images
        self.captions = captions
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        options = self.captions[index]
        pick = np.random.default_rng([self.seed, self.epoch, index]).integers(len(options))
        return self.transform(decode_image(self.images[index])), str(options[pick])


def warmup_cosine(warmup_steps: int, total_steps: int):
    """Learning-rate factor: linear warmup, then cosine decay to zero (from scratch, no warmup stalls the loss)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only: not on norms, biases, embeddings' scales or the logit scale."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim < 2 or "logit_scale" in name or "logit_bias" in name
        (no_decay if exempt else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def run_fingerprint(model_meta: dict[str, Any], params: TrainParams, train_ids: Sequence[int]) -> str:
    """Identifies a training run, so a checkpoint is resumed only by the run that wrote it."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"model": model_meta, "train": params.model_dump()}, sort_keys=True).encode())
    digest.update(np.asarray(train_ids, dtype=np.int64).tobytes())
    return digest.hexdigest()


def validation_recall(bundle: ClipBundle, val: pd.DataFrame, k: int = 10) -> float:
    """Text->image Recall@k on the validation split: query = the item's first caption, only the item counts."""
    if len(val) == 0:
        return float("nan")
    image_vecs = encode_images(bundle, val["image"].tolist())
    text_vecs = encode_texts(bundle, [captions[0] for captions in val["captions"]])
    ranked = top_k(text_vecs @ image_vecs.T, min(k, len(val)))
    keys = np.arange(len(val))
    hits = relevance(ranked, keys, keys)
    return recall_at_k(hits, count_relevant(keys, keys), min(k, len(val)))


@dataclass
class TrainState:
    epoch: int = 0
    step: int = 0
    best_epoch: int = -1
    best_score: float = -math.inf
    train_seconds: float = 0.0
    last_loss: float = float("nan")


class Trainer:
    """Owns the model, optimizer, schedule and checkpoints of one fine-tuning run."""

    def __init__(
        self,
        bundle: ClipBundle,
        train: pd.DataFrame,
        val: pd.DataFrame,
        params: TrainParams,
        checkpoint_dir: str | Path,
        fingerprint: str,
        device: torch.device,
    ) -> None:
        if len(train) < 2:
            raise ModaclipError(f"the train split has {len(train)} rows; contrastive training needs at least 2")
        self.bundle, self.val, self.params = bundle, val, params
        self.device, self.fingerprint = device, fingerprint
        self.checkpoint_dir = Path(checkpoint_dir)
        bundle.model.to(device)
        self.dataset = CaptionedImages(
            train["image"].tolist(), train["captions"].tolist(), bundle.preprocess_train, params.seed
        )
        batch_size = min(params.batch_size, len(train))
        self.steps_per_epoch = len(train) // batch_size
        self.optimizer = torch.optim.AdamW(parameter_groups(bundle.model, params.weight_decay), lr=params.lr)
        total = params.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(params.warmup_steps, total)
        )
        self.loss_fn = ClipLoss()
        self.batch_size = batch_size
        self.state = TrainState()
        self.best_weights: dict[str, torch.Tensor] | None = None

    def loader(self, epoch: int) -> DataLoader:
        self.dataset.epoch = epoch
        shuffle = torch.Generator().manual_seed(self.params.seed * 100_003 + epoch)
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            generator=shuffle,
            num_workers=self.params.num_workers,
            collate_fn=self.collate,
        )

    def collate(self, batch: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        images, captions = zip(*batch)
        return torch.stack(images), self.bundle.tokenizer(list(captions))

    def run_epoch(self, epoch: int) -> float:
        """One pass over the train split; returns the mean loss."""
        model = self.bundle.model
        model.train()
        torch.manual_seed(self.params.seed * 100_003 + epoch)
        losses = []
        bar = tqdm(self.loader(epoch), total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{self.params.epochs}")
        for images, tokens in bar:
            image_features, text_features, logit_scale = model(images.to(self.device), tokens.to(self.device))[:3]
            loss = self.loss_fn(image_features, text_features, logit_scale)
            if not torch.isfinite(loss):
                raise ModaclipError(
                    f"training loss became {loss.item()} at epoch {epoch + 1}, step {self.state.step + 1}; "
                    "lower train.lr or raise train.warmup_steps. No model was written."
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.params.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.params.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            self.state.step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        return float(np.mean(losses))

    def save_checkpoint(self) -> None:
        """Everything needed to resume: model, optimizer, schedule, progress and the best weights so far."""
        payload = {
            "fingerprint": self.fingerprint,
            "model": self.bundle.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": self.state.__dict__,
        }
        with atomic_file(self.checkpoint_dir / CHECKPOINT) as tmp:
            torch.save(payload, tmp)
        if self.state.best_epoch == self.state.epoch - 1 and self.best_weights is not None:
            with atomic_file(self.checkpoint_dir / BEST_WEIGHTS) as tmp:
                torch.save(self.best_weights, tmp)

    def try_resume(self) -> bool:
        """Continue from the last checkpoint of this same run, if there is one."""
        path = self.checkpoint_dir / CHECKPOINT
        if not path.is_file():
            return False
        payload = torch.load(path, map_location=self.device, weights_only=False)
        if payload.get("fingerprint") != self.fingerprint:
            log.info("ignoring %s: it belongs to a run with other params or data", path)
            return False
        self.bundle.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.state = TrainState(**payload["state"])
        best_path = self.checkpoint_dir / BEST_WEIGHTS
        if best_path.is_file():
            self.best_weights = torch.load(best_path, map_location="cpu", weights_only=True)
        log.info("resuming from %s after epoch %d", path, self.state.epoch)
        return True

    def fit(self, curves_dir: str | Path) -> dict[str, Any]:
        """Train for train.epochs, validating each epoch; leaves the best epoch's weights in the model."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        resumed = self.try_resume()
        live = Live(dir=str(curves_dir), resume=resumed, report=None, save_dvc_exp=False, dvcyaml=None)
        live.step = self.state.epoch
        while self.state.epoch < self.params.epochs:
            epoch = self.state.epoch
            started = time.perf_counter()
            self.state.last_loss = self.run_epoch(epoch)
            self.state.train_seconds += time.perf_counter() - started
            score = validation_recall(self.bundle, self.val)
            if math.isnan(score) or score > self.state.best_score:
                self.state.best_epoch, self.state.best_score = epoch, score
                self.best_weights = copy.deepcopy(self.bundle.model.state_dict())
            log.info("epoch %d: loss %.4f, val recall@10 %.4f", epoch + 1, self.state.last_loss, score)
            live.log_metric("train/loss", self.state.last_loss)
            live.log_metric("train/lr", self.scheduler.get_last_lr()[0])
            live.log_metric("val/recall@10", score)
            live.next_step()
            self.state.epoch += 1
            self.save_checkpoint()
        live.end()
        if self.best_weights is not None:
            self.bundle.model.load_state_dict(self.best_weights)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        samples = self.state.step * self.batch_size
        return {
            "epochs": self.state.epoch,
            "steps": self.state.step,
            "best_epoch": self.state.best_epoch + 1,
            "val_recall@10": self.state.best_score,
            "final_train_loss": self.state.last_loss,
            "train_seconds": round(self.state.train_seconds, 2),
            "samples_per_second": round(samples / self.state.train_seconds, 2) if self.state.train_seconds else 0.0,
        }
