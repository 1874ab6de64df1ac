"""Lock a tower so fine-tuning keeps what the start model knows (LiT-style), with its top layers trainable."""

from __future__ import annotations

import torch

from modaclip.core.errors import ModaclipError


def apply_freezing(
    model: torch.nn.Module,
    *,
    lock_image: bool,
    image_unlocked_groups: int,
    lock_text: bool,
    text_unlocked_layers: int,
) -> None:
    """Freeze with open_clip's own lock methods, so the layer grouping is the one open_clip users know.

    The image tower's groups are open_clip's: stem, each residual block, the last block with the
    final norm, the projection; `image_unlocked_groups` of them from the top stay trainable.
    """
    if lock_image:
        if not hasattr(model, "lock_image_tower"):
            raise ModaclipError(f"train.lock_image: {type(model).__name__} has no image tower to lock")
        model.lock_image_tower(unlocked_groups=image_unlocked_groups)
    if lock_text:
        if not hasattr(model, "lock_text_tower"):
            raise ModaclipError(f"train.lock_text: {type(model).__name__} has no text tower to lock")
        model.lock_text_tower(unlocked_layers=text_unlocked_layers)
    if not any(p.requires_grad for p in model.parameters()):
        raise ModaclipError("train.lock_image and train.lock_text leave no parameter to train")


def trainable_share(model: torch.nn.Module) -> float:
    """Share of parameters (by count) that training updates; logged so a freeze is visible."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad) / max(1, total)
