"""Rows broken on purpose, so the cleaning stage has real work: the four kinds it must catch and count."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from modaclip.ingest.synthetic.rendering import encode

Row = dict[str, object]

_TINY_IMAGE_SIDE = 12
_KEY_ATTRIBUTES = ("gender", "articleType", "baseColour")


def _missing_attribute(row: Row, image: Image.Image, rng: np.random.Generator, clean: list[Row]) -> Row:
    return {**row, _KEY_ATTRIBUTES[rng.integers(len(_KEY_ATTRIBUTES))]: None}


def _unreadable_image(row: Row, image: Image.Image, rng: np.random.Generator, clean: list[Row]) -> Row:
    """A download cut off inside the JPEG header (always over 200 bytes): nothing can decode it."""
    return {**row, "image": row["image"][: rng.integers(16, 200)]}


def _duplicate_image(row: Row, image: Image.Image, rng: np.random.Generator, clean: list[Row]) -> Row:
    """An earlier clean product listed again under a new id; the first row cannot be one."""
    if not clean:
        return row
    return {**clean[rng.integers(len(clean))], "id": row["id"]}


def _tiny_image(row: Row, image: Image.Image, rng: np.random.Generator, clean: list[Row]) -> Row:
    thumbnail = image.resize((_TINY_IMAGE_SIDE, _TINY_IMAGE_SIDE), Image.Resampling.BOX)
    return {**row, "image": encode(thumbnail, quality=75)}


Defect = Callable[[Row, Image.Image, np.random.Generator, list[Row]], Row]
DEFECTS: dict[str, Defect] = {
    "missing_attribute": _missing_attribute,
    "unreadable_image": _unreadable_image,
    "duplicate_image": _duplicate_image,
    "tiny_image": _tiny_image,
}
# One of each kind at fixed rows whenever defect_rate > 0: a catalog of 200+ rows has all four.
_FORCED_DEFECTS = {50: "missing_attribute", 100: "unreadable_image", 150: "duplicate_image",
                   199: "tiny_image"}  # fmt: skip


def defect_kind(index: int, rng: np.random.Generator, defect_rate: float) -> str | None:
    roll = rng.random()  # drawn even when unused, so rows do not depend on defect_rate otherwise
    if defect_rate == 0:
        return None
    if index in _FORCED_DEFECTS:
        return _FORCED_DEFECTS[index]
    if roll >= defect_rate:
        return None
    return tuple(DEFECTS)[rng.integers(len(DEFECTS))]
