"""What identifies a training run: everything training reads, so a checkpoint is resumed only by the run that wrote it.

A run is its train params, its base model (architecture, config and start weights), its number of
processes, the content of its training and validation rows (ids, captions, the catalog fields it
reads and the stored image bytes, in order), the feedback pairs it draws `{queries}` from (when
given) and the source of the packages the finetune stage
imports. Each part is kept as its own digest in the checkpoint, so a run that cannot resume says in
one line what changed ("starting fresh: the training rows changed"), and a change to any of them
(new captions, a re-shot photo, a new attribute value for the same id, a fix in the loss) trains
from scratch instead of "resuming" a run that saw other data or other code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from modaclip.core.config import TrainParams
from modaclip.core.source_digest import source_digest
from modaclip.model.clip_model import ClipBundle

# The project packages the finetune stage imports (tests/test_run_identity.py checks the stage loads no other).
TRAINING_CODE = ("modaclip.core", "modaclip.model", "modaclip.train")

# Each part of an identity, as the log line names it when it differs.
PART_NAMES = {
    "params": "the train params",
    "model": "the base model",
    "world_size": "the number of processes",
    "train_rows": "the training rows",
    "val_rows": "the validation rows",
    "feedback": "the feedback pairs",
    "code": "the training code",
}


@dataclass(frozen=True)
class RunIdentity:
    """A digest per part of what a run reads (PART_NAMES)."""

    parts: Mapping[str, str]

    @classmethod
    def of(
        cls,
        bundle: ClipBundle,
        params: TrainParams,
        train: pd.DataFrame,
        val: pd.DataFrame,
        *,
        world_size: int = 1,
        code: Iterable[str] = TRAINING_CODE,
        feedback: pd.DataFrame | None = None,
    ) -> RunIdentity:
        """The identity of training `bundle` (as created, before training touches it) on these rows
        (and on these feedback pairs)."""
        parts = {
            "params": _json_digest(params.model_dump()),
            "model": model_digest(bundle),
            "world_size": str(world_size),
            "train_rows": rows_digest(train),
            "val_rows": rows_digest(val),
            "code": source_digest(code),
        }
        if feedback is not None:
            parts["feedback"] = rows_digest(feedback)
        return cls(parts)

    def changes_from(self, recorded: Mapping[str, str]) -> list[str]:
        """What differs from a checkpoint's recorded identity, in words; empty when it is the same run."""
        names = [*PART_NAMES, *sorted((set(self.parts) | set(recorded)) - set(PART_NAMES))]
        return [PART_NAMES.get(name, name) for name in names if self.parts.get(name) != recorded.get(name)]


def model_digest(bundle: ClipBundle) -> str:
    """The base model: what created it (meta), its open_clip config and its start weights, byte for byte."""
    digest = hashlib.sha256(json.dumps([bundle.meta, bundle.model_cfg], sort_keys=True, default=str).encode())
    for name, tensor in bundle.model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def rows_digest(frame: pd.DataFrame) -> str:
    """The rows' content in order: every column the frame holds (ids, captions, fields, image bytes)."""
    digest = hashlib.sha256(json.dumps(sorted(frame.columns)).encode())
    digest.update(len(frame).to_bytes(8, "little"))
    for column in sorted(frame.columns):
        for value in frame[column]:
            data = value if isinstance(value, bytes) else _json(value).encode()
            digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def _json(value: Any) -> str:
    if hasattr(value, "tolist"):  # numpy scalars and the arrays parquet gives list columns as
        value = value.tolist()
    return json.dumps(value, sort_keys=True, default=str)


def _json_digest(value: Any) -> str:
    return hashlib.sha256(_json(value).encode()).hexdigest()
