"""Contrastive losses chosen by name (`train.loss`), all called the same way.

Every loss takes (image_features, text_features, logit_scale, *, logit_bias, caption_keys, fields)
for the local micro-batch and, when `world_size > 1`, gathers the other ranks' features itself, so
the effective batch is global. `fields` are the texts of `train.fields`, which only the field-aware
loss reads. Adding a loss is one class here and one line in `LOSSES`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from open_clip.loss import ClipLoss, SigLipLoss, gather_features

from modaclip.core.errors import ModaclipError

MISSING_KEY = 0  # the key of an item that has no text for a field; `caption_keys` never gives it to a text


@dataclass(frozen=True)
class FieldPart:
    """One text per item of the batch for one field (normalised [B, d]), their keys, and the part's weight."""

    weight: float
    text: torch.Tensor
    keys: torch.Tensor


class ContrastiveLoss(torch.nn.Module):
    """The common signature; `needs_logit_bias` says whether the model must carry a learned bias,
    `reads_fields` whether the loss reads the train.fields texts (which are only computed for it)."""

    needs_logit_bias = False
    reads_fields = False

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        self.rank, self.world_size = rank, world_size

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        *,
        logit_bias: torch.Tensor | None,
        caption_keys: torch.Tensor,
        fields: Sequence[FieldPart] = (),
    ) -> torch.Tensor:
        raise NotImplementedError


class InfoNCE(ContrastiveLoss):
    """`clip`: bidirectional InfoNCE, open_clip's ClipLoss; each image's own caption is its only positive."""

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(rank, world_size)
        # local_loss + gather_with_grad: each rank scores its rows against the global batch and the
        # gradients of the gathered features flow back to their ranks (open_clip's recommended pair).
        self.clip = ClipLoss(local_loss=True, gather_with_grad=True, rank=rank, world_size=world_size)

    def forward(self, image_features, text_features, logit_scale, *, logit_bias, caption_keys, fields=()):
        return self.clip(image_features, text_features, logit_scale)


class MultiPositive(ContrastiveLoss):
    """`multipos`: every pair in the batch whose captions are identical is a positive.

    Templated fashion captions repeat ("a photo of a men black tshirts"), and InfoNCE then asks the
    model to tell apart two images from one and the same caption, which it cannot. Here the target of
    each row is uniform over the items sharing its caption (soft cross-entropy, both directions);
    with all captions distinct the targets are the identity and this is exactly InfoNCE.
    """

    def forward(self, image_features, text_features, logit_scale, *, logit_bias, caption_keys, fields=()):
        return multi_positive(
            image_features, text_features, logit_scale, keys=caption_keys, rank=self.rank, world_size=self.world_size
        )


class FieldAware(ContrastiveLoss):
    """`fields`: a weighted sum of multi-positive losses, one per text a product contributes (`train.fields`).

    Product i contributes texts t_f(i) for the fields f of train.fields (its caption, "a photo of a
    {articleType}", "{baseColour}", ...). With x_i the image embeddings and y_{f,i} the text
    embeddings of a batch B, s = the logit scale, and P_f(i) = {j in B : t_f(j) = t_f(i)} the items
    sharing i's text for field f,

        L_f = 1/(2|B_f|) sum_{i in B_f} [ CE(softmax_j s x_i.y_{f,j}, u_{P_f(i)})
                                        + CE(softmax_j s y_{f,i}.x_j, u_{P_f(i)}) ]
        L   = sum_f w_f L_f

    where u_P is the uniform distribution over P, j runs over B_f, and B_f are the items that have
    a text for f (a product without a title takes no part in the title's term). Each L_f is the
    `multipos` loss on field f's texts: a shared text ("a photo of a dresses") is a positive of every
    image that has it, so the text is pulled to its images' mean and each image to its own texts.
    """

    reads_fields = True

    def forward(self, image_features, text_features, logit_scale, *, logit_bias, caption_keys, fields=()):
        if not fields:
            raise ModaclipError("train.loss fields: no field texts in the batch; give train.fields a text")
        return sum(
            part.weight
            * multi_positive(
                image_features, part.text, logit_scale, keys=part.keys, rank=self.rank, world_size=self.world_size
            )
            for part in fields
            if part.weight > 0
        )


class Sigmoid(ContrastiveLoss):
    """`siglip`: open_clip's SigLipLoss, a binary decision per pair; needs the model's logit bias."""

    needs_logit_bias = True

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(rank, world_size)
        self.siglip = SigLipLoss(rank=rank, world_size=world_size)

    def forward(self, image_features, text_features, logit_scale, *, logit_bias, caption_keys, fields=()):
        return self.siglip(image_features, text_features, logit_scale, logit_bias)


LOSSES: dict[str, Callable[[int, int], ContrastiveLoss]] = {
    "clip": InfoNCE,
    "multipos": MultiPositive,
    "siglip": Sigmoid,
    "fields": FieldAware,
}


def create_loss(name: str, rank: int = 0, world_size: int = 1) -> ContrastiveLoss:
    """The loss registered under `name` (train.loss)."""
    if name not in LOSSES:
        raise ModaclipError(f"train.loss: unknown loss {name!r} (known: {', '.join(LOSSES)})")
    return LOSSES[name](rank, world_size)


def multi_positive(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    keys: torch.Tensor,
    rank: int = 0,
    world_size: int = 1,
) -> torch.Tensor:
    """Soft-target InfoNCE, both directions, where items with equal keys are each other's positives.

    Items keyed MISSING_KEY (no text for this field) are left out as rows and as candidates. Over
    ranks, each rank scores its own rows against the gathered batch (open_clip's local loss).
    """
    all_keys = gather_keys(keys, world_size)
    if world_size > 1:
        all_images, all_texts = gather_features(
            image_features, text_features, local_loss=True, gather_with_grad=True, rank=rank, world_size=world_size
        )
    else:
        all_images, all_texts = image_features, text_features
    rows, columns = keys != MISSING_KEY, all_keys != MISSING_KEY
    if not rows.any():
        return (image_features.sum() + text_features.sum()) * 0.0  # keeps the graph whole for DDP
    targets = (keys[rows, None] == all_keys[None, columns]).to(image_features.dtype)
    targets = targets / targets.sum(dim=1, keepdim=True)
    logits_per_image = logit_scale * image_features[rows] @ all_texts[columns].T
    logits_per_text = logit_scale * text_features[rows] @ all_images[columns].T
    return (F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_text, targets)) / 2


def caption_keys(captions: Sequence[str]) -> torch.Tensor:
    """A stable int64 per caption text: equal texts, equal keys, on every rank and in every process.

    The key is the caption the model is shown, not the product's attribute tuple: two items are
    indistinguishable to the text tower exactly when their texts are equal, and a display-name
    caption that differs keeps its item apart even when the attributes coincide.
    """
    digests = [hashlib.blake2b(text.encode(), digest_size=8).digest() for text in captions]
    keys = [int.from_bytes(d, "little", signed=True) for d in digests]
    return torch.tensor([key if key != MISSING_KEY else 1 for key in keys], dtype=torch.int64)


def field_keys(texts: Sequence[str | None]) -> torch.Tensor:
    """`caption_keys` of the texts, MISSING_KEY where an item has none."""
    present = [text for text in texts if text is not None]
    keys = iter(caption_keys(present).tolist())
    return torch.tensor([next(keys) if text is not None else MISSING_KEY for text in texts], dtype=torch.int64)


def gather_keys(keys: torch.Tensor, world_size: int) -> torch.Tensor:
    """All ranks' caption keys in rank order (the order gather_features uses for the features)."""
    if world_size == 1:
        return keys
    gathered = [torch.empty_like(keys) for _ in range(world_size)]
    dist.all_gather(gathered, keys)
    return torch.cat(gathered)
