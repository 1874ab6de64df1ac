"""Learning-rate factors by name (`train.schedule`): a function of the optimizer step, 1.0 = peak lr."""

from __future__ import annotations

import math
from collections.abc import Callable

from modaclip.core.errors import ModaclipError

Schedule = Callable[[int], float]


def warmup_cosine(warmup_steps: int, total_steps: int) -> Schedule:
    """Linear warmup, then cosine decay to zero (from scratch, no warmup stalls the loss)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def warmup_constant(warmup_steps: int, total_steps: int) -> Schedule:
    """Linear warmup, then the peak rate to the end: a fine-tune cut short ends where it would have gone on."""

    def factor(step: int) -> float:
        return (step + 1) / warmup_steps if step < warmup_steps else 1.0

    return factor


SCHEDULES: dict[str, Callable[[int, int], Schedule]] = {
    "warmup_cosine": warmup_cosine,
    "constant": warmup_constant,
}


def create_schedule(name: str, warmup_steps: int, total_steps: int) -> Schedule:
    if name not in SCHEDULES:
        raise ModaclipError(f"train.schedule: unknown schedule {name!r} (known: {', '.join(SCHEDULES)})")
    return SCHEDULES[name](warmup_steps, total_steps)
