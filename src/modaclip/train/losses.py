"""Contrastive losses chosen by name (`train.loss`), all called the same way.

Every loss takes (image_features, text_features, logit_scale, logit_bias, caption_keys) for the
local micro-batch and, when `world_size > 1`, gathers the other ranks' features itself, so the
effective batch is global. Adding a loss is one class here and one line in `LOSSES`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from open_clip.loss import ClipLoss, SigLipLoss, gather_features

from modaclip.core.errors import ModaclipError


class ContrastiveLoss(torch.nn.Module):
    """The common signature; `needs_logit_bias` says whether the model must carry a learned bias."""

    needs_logit_bias = False

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        self.rank, self.world_size = rank, world_size

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        logit_bias: torch.Tensor | None,
        caption_keys: torch.Tensor,
    ) -> torch.Tensor:
        raise NotImplementedError


class InfoNCE(ContrastiveLoss):
    """`clip`: bidirectional InfoNCE, open_clip's ClipLoss; each image's own caption is its only positive."""

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(rank, world_size)
        # local_loss + gather_with_grad: each rank scores its rows against the global batch and the
        # gradients of the gathered features flow back to their ranks (open_clip's recommended pair).
        self.clip = ClipLoss(local_loss=True, gather_with_grad=True, rank=rank, world_size=world_size)

    def forward(self, image_features, text_features, logit_scale, logit_bias, caption_keys):
        return self.clip(image_features, text_features, logit_scale)


class MultiPositive(ContrastiveLoss):
    """`multipos`: every pair in the batch whose captions are identical is a positive.

    Templated fashion captions repeat ("a photo of a men black tshirts"), and InfoNCE then asks the
    model to tell apart two images from one and the same caption, which it cannot. Here the target of
    each row is uniform over the items sharing its caption (soft cross-entropy, both directions);
    with all captions distinct the targets are the identity and this is exactly InfoNCE.
    """

    def forward(self, image_features, text_features, logit_scale, logit_bias, caption_keys):
        all_keys = gather_keys(caption_keys, self.world_size)
        if self.world_size > 1:
            all_images, all_texts = gather_features(
                image_features,
                text_features,
                local_loss=True,
                gather_with_grad=True,
                rank=self.rank,
                world_size=self.world_size,
            )
        else:
            all_images, all_texts = image_features, text_features
        targets = (caption_keys[:, None] == all_keys[None, :]).to(image_features.dtype)
        targets = targets / targets.sum(dim=1, keepdim=True)
        logits_per_image = logit_scale * image_features @ all_texts.T
        logits_per_text = logit_scale * text_features @ all_images.T
        return (F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_text, targets)) / 2


class Sigmoid(ContrastiveLoss):
    """`siglip`: open_clip's SigLipLoss, a binary decision per pair; needs the model's logit bias."""

    needs_logit_bias = True

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(rank, world_size)
        self.siglip = SigLipLoss(rank=rank, world_size=world_size)

    def forward(self, image_features, text_features, logit_scale, logit_bias, caption_keys):
        return self.siglip(image_features, text_features, logit_scale, logit_bias)


LOSSES: dict[str, Callable[[int, int], ContrastiveLoss]] = {
    "clip": InfoNCE,
    "multipos": MultiPositive,
    "siglip": Sigmoid,
}


def create_loss(name: str, rank: int = 0, world_size: int = 1) -> ContrastiveLoss:
    """The loss registered under `name` (train.loss)."""
    if name not in LOSSES:
        raise ModaclipError(f"train.loss: unknown loss {name!r} (known: {', '.join(LOSSES)})")
    return LOSSES[name](rank, world_size)


def caption_keys(captions: Sequence[str]) -> torch.Tensor:
    """A stable int64 per caption text: equal texts, equal keys, on every rank and in every process.

    The key is the caption the model is shown, not the product's attribute tuple: two items are
    indistinguishable to the text tower exactly when their texts are equal, and a display-name
    caption that differs keeps its item apart even when the attributes coincide.
    """
    digests = [hashlib.blake2b(text.encode(), digest_size=8).digest() for text in captions]
    return torch.tensor([int.from_bytes(d, "little", signed=True) for d in digests], dtype=torch.int64)


def gather_keys(keys: torch.Tensor, world_size: int) -> torch.Tensor:
    """All ranks' caption keys in rank order (the order gather_features uses for the features)."""
    if world_size == 1:
        return keys
    gathered = [torch.empty_like(keys) for _ in range(world_size)]
    dist.all_gather(gathered, keys)
    return torch.cat(gathered)
