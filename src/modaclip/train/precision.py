"""Numeric precision of training (`train.precision`): fp32, or bf16/fp16 autocast on CUDA."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from modaclip.core.errors import ModaclipError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """How to run forward passes; fp16 also needs loss scaling (a GradScaler) against underflow."""

    name: str
    device: torch.device

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.name])

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.name == "fp16")


def resolve_precision(name: str, device: torch.device) -> Precision:
    """`auto` is fp32 on CPU and bf16 on CUDA (fp16 on GPUs without bf16).

    bf16/fp16 on CPU is an error rather than a silent fallback: CPU autocast is slower than fp32
    for these models, so a user who asked for it on CPU has most likely picked the wrong device.
    """
    if name == "auto":
        if device.type != "cuda":
            return Precision("fp32", device)
        return Precision("bf16" if torch.cuda.is_bf16_supported() else "fp16", device)
    if name in DTYPES and device.type != "cuda":
        raise ModaclipError(
            f"train.precision: {name} needs a CUDA device, but training runs on {device.type}; "
            "set train.precision to fp32 or auto"
        )
    if name not in ("fp32", *DTYPES):
        raise ModaclipError(f"train.precision: unknown precision {name!r} (auto, fp32, bf16, fp16)")
    return Precision(name, device)
