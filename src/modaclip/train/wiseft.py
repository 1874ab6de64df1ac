"""WiSE-FT (Wortsman et al. 2022): average the start and fine-tuned weights to keep general knowledge.

A fine-tune gains on the catalog and loses some of what the start model knew; interpolating the
weights trades between the two, and scoring each alpha on validation shows the user that trade.
"""

from __future__ import annotations

import torch

from modaclip.core.errors import ModaclipError


def interpolate(
    start: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """(1 - alpha) * start + alpha * tuned for floating tensors; others (counters, ids) from `tuned`.

    torch.lerp is exact at both ends (it computes from the nearer end), so alpha 0 gives `start`
    and alpha 1 gives `tuned` bit for bit.
    """
    if start.keys() != tuned.keys():
        missing = sorted(set(start) ^ set(tuned))[:3]
        raise ModaclipError(f"WiSE-FT: the start and fine-tuned models have different weights ({missing} ...)")
    mixed = {}
    for name, end in tuned.items():
        begin = start[name].to(end.device)
        mixed[name] = torch.lerp(begin.to(end.dtype), end, alpha) if end.is_floating_point() else end.clone()
    return mixed
