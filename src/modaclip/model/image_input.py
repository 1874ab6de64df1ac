"""Images as the image tower sees them, with PIL and numpy only (onnxruntime needs no torch to embed a photo).

`pixels` does what open_clip's evaluation transform does for its default resize mode, step for
step: decode to RGB, scale the shorter side to the model's size (PIL resampling, as torchvision
uses for PIL images), crop the centre square, scale to [0, 1], normalise by mean and std.
tests/test_onnx_towers.py checks the arrays equal open_clip's tensors.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def decode_image(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def pixels(
    image: Image.Image, size: int, *, mean: Sequence[float], std: Sequence[float], interpolation: str = "bicubic"
) -> np.ndarray:
    """float32 [3, size, size]: shorter side scaled to `size`, centre crop, normalised."""
    width, height = image.size
    short, long = sorted((width, height))
    if short != size:
        scaled = (size, int(size * long / short))
        image = image.resize(scaled if width <= height else scaled[::-1], RESAMPLING[interpolation])
        width, height = image.size
    left, top = round((width - size) / 2.0), round((height - size) / 2.0)
    array = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32) / np.float32(255)
    normalised = (array - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))
