"""A stand-in CLIP whose embeddings are rows of tables the test writes, for figures worked out by hand.

It is a real `ClipBundle`, so evaluation, zero-shot classification and search run their own code on
it: `encode_texts` tokenizes through it and `encode_images` decodes and preprocesses through it. Only
the towers are replaced: a text's embedding is its row in `texts`, an image's is the row of `images`
named by its one pixel's red value (`image_bytes(row)`). A text the test did not list is a KeyError
naming it, so a prompt built differently from what the test expects fails loudly.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from modaclip.model.clip_model import ClipBundle


class LookupClip(torch.nn.Module):
    def __init__(self, texts: Mapping[str, Sequence[float]], images: Sequence[Sequence[float]], logit_scale: float):
        super().__init__()
        self.rows = {text: row for row, text in enumerate(texts)}
        self.register_buffer("text_table", torch.tensor([list(v) for v in texts.values()], dtype=torch.float32))
        self.register_buffer("image_table", torch.tensor([list(v) for v in images], dtype=torch.float32))
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(logit_scale)))

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        missing = [text for text in texts if text not in self.rows]
        if missing:
            raise KeyError(f"texts the test gave no embedding for: {missing}")
        return torch.tensor([self.rows[text] for text in texts])

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        vectors = self.text_table[tokens]
        return F.normalize(vectors, dim=-1) if normalize else vectors

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        vectors = self.image_table[images.long()]
        return F.normalize(vectors, dim=-1) if normalize else vectors


def red_value(image: Image.Image) -> torch.Tensor:
    return torch.tensor(image.getpixel((0, 0))[0])


def lookup_bundle(
    texts: Mapping[str, Sequence[float]], images: Sequence[Sequence[float]] = (), logit_scale: float = 100.0
) -> ClipBundle:
    model = LookupClip(texts, images or [[0.0] * len(next(iter(texts.values())))], logit_scale)
    dim = model.text_table.shape[1]
    return ClipBundle(
        model, preprocess_train=red_value, preprocess=red_value, tokenizer=model.tokenize, model_cfg={"embed_dim": dim}
    )


def image_bytes(row: int) -> bytes:
    """A 1x1 PNG that `lookup_bundle` embeds as `images[row]`."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (row, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()
