"""Contrastive fine-tuning of an open_clip model: the loop, model selection, checkpoints and resume.

The loop is written out in `Trainer.train_step` (forward, loss, backward, step) and
`Trainer.run_epoch`; checkpoints are written in `Trainer.save_checkpoint`. Losses, schedules,
freezing, precision, data order, WiSE-FT and torchrun support live in their own modules.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from dvclive import Live
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from modaclip.core.atomic import atomic_file
from modaclip.core.config import TrainParams
from modaclip.core.errors import ModaclipError
from modaclip.core.fields import QUERIES_FIELD, CatalogFields
from modaclip.core.metrics import count_relevant, recall_at_k, relevance, top_k, weighted_f1
from modaclip.model.clip_model import ClipBundle, encode_images, encode_texts, ensure_logit_bias
from modaclip.model.zero_shot import predict_labels
from modaclip.train.batches import Batch, CaptionedImages, Collate, EpochBatches
from modaclip.train.distributed import DistContext, mean_over_ranks
from modaclip.train.field_texts import FieldTexts
from modaclip.train.freezing import apply_freezing, trainable_share
from modaclip.train.logged_queries import LoggedQueries
from modaclip.train.losses import FieldPart, create_loss
from modaclip.train.precision import resolve_precision
from modaclip.train.run_identity import RunIdentity
from modaclip.train.schedules import create_schedule
from modaclip.train.wiseft import interpolate

log = logging.getLogger(__name__)

CHECKPOINT = "last.pt"
LEGACY_BEST = "best.pt"  # the best weights' own file before they moved into last.pt; removed when met


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only: not on norms, biases, embeddings' scales or the logit scale."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim < 2 or "logit_scale" in name or "logit_bias" in name
        (no_decay if exempt else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _recall(text_vecs: np.ndarray, image_vecs: np.ndarray, k: int) -> float:
    k = min(k, len(image_vecs))
    ranked = top_k(text_vecs @ image_vecs.T, k)
    keys = np.arange(len(image_vecs))
    return recall_at_k(relevance(ranked, keys, keys), count_relevant(keys, keys), k)


def validation_scores(
    bundle: ClipBundle, val: pd.DataFrame, labels: Sequence[str], field: str | None
) -> dict[str, float]:
    """Val Recall@10 and, when the val split has `field` and labels are given, zero-shot weighted F1 on it."""
    if len(val) == 0:
        return {"recall@10": float("nan"), "zero_shot_f1": float("nan")}
    image_vecs = encode_images(bundle, val["image"].tolist())
    text_vecs = encode_texts(bundle, [captions[0] for captions in val["captions"]])
    scores = {"recall@10": _recall(text_vecs, image_vecs, 10), "zero_shot_f1": float("nan")}
    if labels and field in val.columns:
        labelled = val[field].notna().to_numpy()
        predicted = predict_labels(bundle, image_vecs[labelled], labels)
        scores["zero_shot_f1"] = weighted_f1(val.loc[labelled, field].astype(str).tolist(), predicted)
    return scores


@dataclass(kw_only=True)
class Features:
    """One forward pass: the normalised embeddings, the temperature, (SigLIP) the bias, and each
    train.fields template's text embedding per item ([B, d] each)."""

    image: torch.Tensor
    text: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor | None
    fields: list[torch.Tensor]


def forward(model: torch.nn.Module, batch: Batch) -> Features:
    """One pass of the model over the images and, in one text batch, the captions and the distinct field texts."""
    out = model(batch.images, torch.cat([batch.tokens, batch.field_tokens]))
    captions = len(batch.tokens)
    text, distinct = out["text_features"][:captions], out["text_features"][captions:]
    fields = [distinct[rows.clamp(min=0)] for rows in batch.field_rows]
    return Features(
        image=out["image_features"], text=text, scale=out["logit_scale"], bias=out.get("logit_bias"), fields=fields
    )


def splice(cached: list[Features], j: int, fresh: Features) -> Features:
    """A whole step's features from its micro-batches' cached ones, micro-batch j's replaced by `fresh`."""
    parts = [*cached[:j], fresh, *cached[j + 1 :]]
    return Features(
        image=torch.cat([p.image for p in parts]),
        text=torch.cat([p.text for p in parts]),
        scale=fresh.scale,
        bias=fresh.bias,
        fields=[torch.cat([p.fields[f] for p in parts]) for f in range(len(fresh.fields))],
    )


@dataclass
class TrainState:
    epoch: int = 0
    step: int = 0
    step_in_epoch: int = 0
    epoch_loss_sum: float = 0.0
    best_epoch: int = -1
    best_score: float = -math.inf
    best_scores: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    train_seconds: float = 0.0
    last_loss: float = float("nan")


class Trainer:
    """Owns the model, optimizer, schedule and checkpoints of one fine-tuning run (one rank of it under torchrun).

    Built the way timm builds a model: one builder per concern (objective, model, data, optimisation,
    distribution), called in that order, each setting the attributes the loop reads.
    """

    def __init__(
        self,
        bundle: ClipBundle,
        train: pd.DataFrame,
        val: pd.DataFrame,
        params: TrainParams,
        *,
        checkpoint_dir: str | Path,
        identity: RunIdentity,
        device: torch.device,
        context: DistContext = DistContext(),
        catalog: CatalogFields | None = None,
        queries: LoggedQueries | None = None,
    ) -> None:
        """
        Args:
            bundle: the start model, trained in place; it holds the chosen weights after `fit`.
            train: the train split's rows: image, captions and the catalog's field columns.
            val: the validation split's rows, scored after every epoch (may be empty).
            params: the `train` section of params.yaml.
            checkpoint_dir: where the resume state is written, and read when `identity` matches it.
            identity: what a checkpoint must have been written by to be resumed (train/run_identity.py).
            device: where the model trains.
            context: this process's rank among the torchrun processes; one process is rank 0 of 1.
            catalog: the whole catalog's fields (roles resolve against them); by default the train rows'.
            queries: the feedback export's logged queries per product, read by a `{queries}` train.fields entry.
        """
        if len(train) < 2:
            raise ModaclipError(f"the train split has {len(train)} rows; contrastive training needs at least 2")
        self.bundle, self.val, self.params, self.context = bundle, val, params, context
        self.device, self.identity = device, identity
        self.checkpoint_dir = Path(checkpoint_dir)
        self._build_objective(catalog or CatalogFields.of(train), train, val, queries)
        self._build_model()
        self._build_data(train, queries)
        self._build_optimisation()
        self._build_distribution()
        self.state = TrainState()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.wise_ft_scores: dict[str, dict[str, float]] = {}
        self.wise_ft_alpha: float | None = None
        log.info(
            "%s loss, %s, %.0f%% of weights trainable, %d x %d x %d samples per step",
            params.loss,
            self.precision.name,
            100 * trainable_share(bundle.model),
            self.batch_size,
            params.accum_steps,
            context.world_size,
        )

    def _build_objective(
        self, catalog: CatalogFields, train: pd.DataFrame, val: pd.DataFrame, queries: LoggedQueries | None
    ) -> None:
        """The loss, the texts of train.fields it reads, and the field validation classifies zero-shot."""
        params = self.params
        self.zero_shot_field = catalog.resolve(params.zero_shot_field)
        self.zero_shot_labels = _values(self.zero_shot_field, train, val)
        self.loss_fn = create_loss(params.loss, self.context.rank, self.context.world_size)
        self.field_texts = (
            FieldTexts.resolve(params.fields, catalog, queries is not None) if self.loss_fn.reads_fields else None
        )
        if QUERIES_FIELD in params.fields and queries is None:
            log.info("train.fields: %s left out: no feedback pairs given (finetune --feedback)", QUERIES_FIELD)
        log.info("catalog fields: %s", catalog.describe())
        log.info(
            "validation zero-shot field: %s (%d classes)", self.zero_shot_field or "(none)", len(self.zero_shot_labels)
        )
        if self.field_texts is not None:
            log.info("train.fields: %s", self.field_texts.describe())

    def _build_model(self) -> None:
        """The model as the objective and params need it: logit bias, WiSE-FT start, freezing, device, precision."""
        bundle, params = self.bundle, self.params
        if self.loss_fn.needs_logit_bias and ensure_logit_bias(bundle):
            log.info("train.loss siglip: %s has no logit bias; added one at -10", bundle.meta.get("arch"))
        # kept (on CPU) only for WiSE-FT: a second copy of a large model is not free
        self.start_weights = (
            {k: v.detach().cpu().clone() for k, v in bundle.model.state_dict().items()} if params.wise_ft_alphas else {}
        )
        apply_freezing(
            bundle.model,
            lock_image=params.lock_image,
            image_unlocked_groups=params.lock_image_unlocked_groups,
            lock_text=params.lock_text,
            text_unlocked_layers=params.lock_text_unlocked_layers,
        )
        if params.grad_checkpointing:
            bundle.model.set_grad_checkpointing(True)
        bundle.model.to(self.device)
        self.precision = resolve_precision(params.precision, self.device)
        self.scaler = self.precision.grad_scaler()

    def _build_data(self, train: pd.DataFrame, queries: LoggedQueries | None) -> None:
        """The train rows as samples, and the batch size and steps per epoch they allow on every rank."""
        params, context = self.params, self.context
        with_queries = queries is not None and self.field_texts is not None and self.field_texts.queries_weight > 0
        self.dataset = CaptionedImages(
            train["image"].tolist(),
            train["captions"].tolist(),
            self.bundle.preprocess_train,
            seed=params.seed,
            field_texts=self.field_texts.render(train) if self.field_texts is not None else None,
            queries=queries.options(train["id"].tolist()) if with_queries else None,
        )
        per_step = params.accum_steps * context.world_size
        self.batch_size = min(params.batch_size, len(train) // per_step)
        if self.batch_size * per_step < 2:
            raise ModaclipError(
                f"the train split has {len(train)} rows, too few for train.accum_steps={params.accum_steps} "
                f"on {context.world_size} processes"
            )
        self.steps_per_epoch = len(train) // (self.batch_size * per_step)

    def _build_optimisation(self) -> None:
        """AdamW over the parameter groups and the learning-rate schedule over every step of the run."""
        params = self.params
        self.optimizer = torch.optim.AdamW(parameter_groups(self.bundle.model, params.weight_decay), lr=params.lr)
        total = params.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, create_schedule(params.schedule, params.warmup_steps, total)
        )

    def _build_distribution(self) -> None:
        """DDP around the model when torchrun started more than one process."""
        self.ddp = None
        if self.context.world_size > 1:
            device = self.device
            self.ddp = DistributedDataParallel(
                self.bundle.model, device_ids=[device.index] if device.type == "cuda" else None
            )

    def loader(self, epoch: int) -> DataLoader:
        """This rank's micro-batches of `epoch`, from where the last checkpoint left off."""
        self.dataset.epoch = epoch
        batches = EpochBatches(
            len(self.dataset),
            self.batch_size,
            accum_steps=self.params.accum_steps,
            seed=self.params.seed,
            epoch=epoch,
            start=self.state.step_in_epoch * self.params.accum_steps,
            rank=self.context.rank,
            world_size=self.context.world_size,
        )
        return DataLoader(
            self.dataset,
            batch_sampler=batches,
            num_workers=self.params.num_workers,
            collate_fn=Collate(self.bundle.tokenizer),
            persistent_workers=False,
        )

    def train_step(self, micro_batches: list[Batch]) -> float:
        """One optimizer step over `accum_steps` micro-batches; returns the loss (mean over ranks)."""
        model = self.ddp or self.bundle.model
        batches = [batch.to(self.device) for batch in micro_batches]
        self.optimizer.zero_grad(set_to_none=True)
        if len(batches) == 1:
            with self.precision.autocast():
                f = forward(model, batches[0])
                loss = self.loss(f, batches[0].keys, batches[0].field_keys)
            value = self.check_finite(loss)
            self.scaler.scale(loss).backward()
        else:
            value = self.accumulate(model, batches)
        if self.params.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.bundle.model.parameters(), self.params.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        with torch.no_grad():
            self.bundle.model.logit_scale.clamp_(0, math.log(100))
        return value

    def loss(self, f: Features, keys: torch.Tensor, field_keys: torch.Tensor) -> torch.Tensor:
        """The loss of a forward pass; the field-aware loss gets the caption and each train.fields text as parts."""
        parts = []
        if self.field_texts is not None:
            weights = self.field_texts.part_weights()
            parts = [
                FieldPart(weight, text, part_keys)
                for weight, text, part_keys in zip(weights, [f.text, *f.fields], [keys, *field_keys])
            ]
        return self.loss_fn(f.image, f.text, f.scale, logit_bias=f.bias, caption_keys=keys, fields=parts)

    def accumulate(self, model: torch.nn.Module, batches: list[Batch]) -> float:
        """Gradients of the loss over all micro-batches together, as one big batch would give (open_clip's accum_freq).

        Features of every micro-batch are computed once without gradients; then each micro-batch is
        run again with gradients, its fresh features put in place of its cached ones, and the loss over
        the whole set back-propagated. Summed over micro-batches these are the big batch's gradients;
        the temperature (and bias) carry gradients in one pass only, or theirs would count N times.
        """
        with torch.no_grad(), self.precision.autocast():
            cached = [forward(model, batch) for batch in batches]
        keys = torch.cat([batch.keys for batch in batches])
        field_keys = torch.cat([batch.field_keys for batch in batches], dim=1)
        value = float("nan")
        for j, batch in enumerate(batches):
            last = j == len(batches) - 1
            sync = contextlib.nullcontext() if last or self.ddp is None else self.ddp.no_sync()
            with sync:
                with self.precision.autocast():
                    f = splice(cached, j, forward(model, batch))
                    f.scale = f.scale if last else f.scale.detach()
                    f.bias = f.bias if last or f.bias is None else f.bias.detach()
                    loss = self.loss(f, keys, field_keys)
                if j == 0:
                    value = self.check_finite(loss)
                self.scaler.scale(loss).backward()
        return value

    def check_finite(self, loss: torch.Tensor) -> float:
        """The loss averaged over ranks; every rank stops together if it is NaN or infinite."""
        value = mean_over_ranks(loss, self.context)
        if not math.isfinite(value):
            raise ModaclipError(
                f"training loss became {value} at epoch {self.state.epoch + 1}, step {self.state.step + 1}; "
                "lower train.lr or raise train.warmup_steps. No model was written."
            )
        return value

    def run_epoch(self, epoch: int) -> float:
        """The rest of one pass over the train split (all of it unless resumed mid-epoch); returns the mean loss."""
        self.bundle.model.train()
        accum, every = self.params.accum_steps, self.params.checkpoint_every_steps
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=self.state.step_in_epoch,
            desc=f"epoch {epoch + 1}/{self.params.epochs}",
            disable=not self.context.is_main,
        )
        micro_batches = []
        for batch in self.loader(epoch):
            micro_batches.append(batch)
            if len(micro_batches) < accum:
                continue
            loss = self.train_step(micro_batches)
            micro_batches = []
            self.state.step += 1
            self.state.step_in_epoch += 1
            self.state.epoch_loss_sum += loss
            bar.update()
            bar.set_postfix(loss=f"{loss:.3f}")
            if every and self.state.step % every == 0 and self.state.step_in_epoch < self.steps_per_epoch:
                self.save_checkpoint()
        bar.close()
        mean = self.state.epoch_loss_sum / max(1, self.steps_per_epoch)
        self.state.step_in_epoch, self.state.epoch_loss_sum = 0, 0.0
        return mean

    def save_checkpoint(self) -> None:
        """Everything needed to resume, mid-epoch included, in one file: model, optimizer, schedule,
        scaler, progress, and the best epoch's weights.

        The best weights sit in the same file as the progress that names their epoch, and the file is
        written under a temporary name and renamed into place, so a kill at any point leaves the
        previous checkpoint or this one, each consistent. (Two files, last.pt then best.pt, left a
        window in which the state named a best epoch whose weights were not yet written.) When the
        epoch that just ended is the best, its weights are the model's own and are not stored twice.
        """
        if not self.context.is_main:
            return
        best_is_model = self.best_is_model(self.state)
        payload = {
            "identity": dict(self.identity.parts),
            "model": self.bundle.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "state": self.state.__dict__,
            "best_is_model": best_is_model,
            "best_weights": None if best_is_model else self.best_weights,
        }
        with atomic_file(self.checkpoint_dir / CHECKPOINT) as tmp:
            torch.save(payload, tmp)

    @staticmethod
    def best_is_model(state: TrainState) -> bool:
        """At the end of an epoch that scored best, the best weights are the model's."""
        return state.step_in_epoch == 0 and state.best_epoch >= 0 and state.best_epoch == state.epoch - 1

    def finished(self, state: TrainState) -> bool:
        return state.stopped_early or state.epoch >= self.params.epochs

    def try_resume(self) -> bool:
        """Continue an interrupted run from its checkpoint; any other checkpoint is left, saying why in one line.

        Only the same run (RunIdentity: params, base model, processes, rows, code) that was interrupted
        resumes; a finished checkpoint is never taken as a new run's result.
        """
        path = self.checkpoint_dir / CHECKPOINT
        if not path.is_file():
            log.info("starting fresh: no checkpoint at %s", path)
            return False
        payload = torch.load(path, map_location=self.device, weights_only=False)
        state = TrainState(**payload["state"])
        reason = self.fresh_reason(payload, state)
        if reason:
            log.info("starting fresh: %s (%s)", reason, path)
            return False
        self.bundle.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        self.state = state
        self.best_weights = payload["best_weights"]
        if payload["best_is_model"]:
            self.best_weights = copy.deepcopy(self.bundle.model.state_dict())
        log.info("resuming from %s at epoch %d, step %d", path, self.state.epoch + 1, self.state.step_in_epoch)
        return True

    def fresh_reason(self, payload: dict[str, Any], state: TrainState) -> str | None:
        """Why a checkpoint cannot be resumed by this run, or None when it can."""
        if "identity" not in payload:
            return "the checkpoint was written by an earlier modaclip that did not record what its run read"
        changes = self.identity.changes_from(payload["identity"])
        if changes:
            return f"{_join(changes)} changed since the checkpoint was written"
        if self.finished(state):
            return "the checkpoint is of a finished run, never taken as a new run's result"
        return None

    def validate(self) -> dict[str, float]:
        return validation_scores(self.bundle, self.val, self.zero_shot_labels, self.zero_shot_field)

    def out_of_patience(self) -> bool:
        patience = self.params.patience
        return patience > 0 and self.state.epoch - 1 - self.state.best_epoch >= patience

    def fit(self, curves_dir: str | Path) -> dict[str, Any]:
        """Train for train.epochs (or until patience runs out), validating each epoch;
        leaves the chosen weights in the model."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (self.checkpoint_dir / LEGACY_BEST).unlink(missing_ok=True)
        resumed = self.try_resume()
        live = None
        if self.context.is_main:
            live = Live(dir=str(curves_dir), resume=resumed, report=None, save_dvc_exp=False, dvcyaml=None)
            live.step = self.state.epoch
        while self.state.epoch < self.params.epochs and not self.state.stopped_early:
            epoch = self.state.epoch
            started = time.perf_counter()
            self.state.last_loss = self.run_epoch(epoch)
            self.state.train_seconds += time.perf_counter() - started
            scores = self.validate()
            score = scores[self.params.select_metric]
            if math.isnan(score) or score > self.state.best_score:
                self.state.best_epoch, self.state.best_score, self.state.best_scores = epoch, score, scores
                self.best_weights = copy.deepcopy(self.bundle.model.state_dict())
            log.info("epoch %d: loss %.4f, val %s", epoch + 1, self.state.last_loss, _format(scores))
            if live is not None:
                live.log_metric("train/loss", self.state.last_loss)
                live.log_metric("train/lr", self.scheduler.get_last_lr()[0])
                for name, value in scores.items():
                    live.log_metric(f"val/{name}", value)
                live.next_step()
            self.state.epoch += 1
            if self.out_of_patience():
                log.info("no better %s for %d epochs: stopping early", self.params.select_metric, self.params.patience)
                self.state.stopped_early = True
            self.save_checkpoint()
        if live is not None:
            live.end()
        if self.best_weights is not None:
            self.bundle.model.load_state_dict(self.best_weights)
        if self.params.wise_ft_alphas:
            self.wise_ft()
        return self.summary()

    def wise_ft(self) -> None:
        """Score each alpha of train.wise_ft_alphas on val and keep the best interpolation in the model."""
        tuned = {k: v.detach().clone() for k, v in self.bundle.model.state_dict().items()}
        best_alpha, best_score = None, -math.inf
        for alpha in self.params.wise_ft_alphas:
            self.bundle.model.load_state_dict(interpolate(self.start_weights, tuned, alpha))
            scores = self.validate()
            self.wise_ft_scores[str(alpha)] = scores
            log.info("WiSE-FT alpha %.2f: val %s", alpha, _format(scores))
            score = scores[self.params.select_metric]
            if best_alpha is None or score > best_score:
                best_alpha, best_score = alpha, score
        self.wise_ft_alpha = best_alpha
        self.bundle.model.load_state_dict(interpolate(self.start_weights, tuned, best_alpha))

    def summary(self) -> dict[str, Any]:
        samples = self.state.step * self.batch_size * self.params.accum_steps * self.context.world_size
        summary = {
            "epochs": self.state.epoch,
            "steps": self.state.step,
            "best_epoch": self.state.best_epoch + 1,
            "stopped_early": self.state.stopped_early,
            "val_recall@10": _number(self.state.best_scores.get("recall@10", self.state.best_score)),
            "val_zero_shot_f1": _number(self.state.best_scores.get("zero_shot_f1", math.nan)),
            "final_train_loss": self.state.last_loss,
            "train_seconds": round(self.state.train_seconds, 2),
            "samples_per_second": round(samples / self.state.train_seconds, 2) if self.state.train_seconds else 0.0,
        }
        if self.wise_ft_alpha is not None:
            scores = {alpha: {k: _number(v) for k, v in val.items()} for alpha, val in self.wise_ft_scores.items()}
            summary["wise_ft"] = {"alpha": self.wise_ft_alpha, "val": scores}
        return summary


def _values(field: str | None, *frames: pd.DataFrame) -> list[str]:
    """Every value `field` takes in the frames, sorted: the classes of the validation zero-shot score."""
    if field is None:
        return []
    return sorted({str(v) for frame in frames if field in frame.columns for v in frame[field].dropna()})


def _join(words: list[str]) -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _format(scores: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in scores.items())


def _number(value: float) -> float | None:
    """JSON has no NaN: a score that could not be computed (empty val split) is written as null."""
    return None if math.isnan(value) else value
