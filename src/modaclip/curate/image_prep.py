"""Decode catalog images of any mode Pillow reads into RGB, and store them at the model's input size.

Real catalogs mix RGB JPEGs with transparent PNGs, palette GIFs, greyscale scans, CMYK print
files and 16-bit PNGs; some are truncated downloads or decompression bombs. Everything that can
be turned into a plain RGB picture is, so later stages decode one kind of small JPEG only; what
cannot is rejected with a reason the cleaner counts.
"""

from __future__ import annotations

import io
import warnings
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

BACKGROUND = (255, 255, 255)  # catalog photos sit on white; transparency and padding become white
JPEG_QUALITY = 90  # visually lossless at these sizes, about a third of PNG's bytes
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
# Pillow's ways of saying "these bytes are not an image it can decode"; SyntaxError comes from
# some corrupt PNG chunks.
_UNREADABLE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError)


class DecodedImage(NamedTuple):
    """An image turned into RGB, with what the source file was."""

    rgb: Image.Image
    mode: str  # the mode it was stored in, e.g. "CMYK"
    width: int  # size as stored, before any draft-mode downscaling
    height: int


def decode_rgb(data: bytes, draft_side: int | None = None) -> DecodedImage | str:
    """The image as RGB, or the reason it cannot be used: unreadable_image, decompression_bomb or
    unsupported_mode.

    The image is fully loaded, because truncated files only fail on load. `draft_side` lets JPEG
    decode at a reduced scale that still covers that many pixels a side, which makes large photos
    several times cheaper to read when they will be shrunk anyway.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                mode = image.mode
                if draft_side is not None:
                    image.draft("RGB", (draft_side, draft_side))
                image.load()
                rgb = to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "decompression_bomb"
    except _UnsupportedMode:
        return "unsupported_mode"
    except _UNREADABLE_ERRORS:
        return "unreadable_image"
    return DecodedImage(rgb, mode, width, height)


class _UnsupportedMode(Exception):
    """Pillow read the image but has no way to turn its mode into RGB."""


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels of an image of any mode: transparency composited on white, 16-bit scaled to 8."""
    if image.mode == "RGB":
        return image.copy()
    if image.mode in _WIDE_GREY_MODES:
        return _wide_grey_to_rgb(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(flat, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise _UnsupportedMode(image.mode) from error


def _wide_grey_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit (and 32-bit int/float) greyscale: 16-bit range mapped onto 8 bits.

    Values above 255 mean a 16-bit image; an image whose values all fit in 8 bits is kept as is,
    so an 8-bit picture stored in a wide mode does not turn black.
    """
    pixels = np.asarray(image, dtype=np.float64)
    if pixels.max(initial=0.0) > 255:
        pixels = pixels / 257.0
    grey = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def fit_on_white(image: Image.Image, side: int) -> Image.Image:
    """The image scaled so its longer side is `side`, centred on a white square: aspect kept."""
    return ImageOps.pad(image, (side, side), method=Image.Resampling.LANCZOS, color=BACKGROUND)


def encode_jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
