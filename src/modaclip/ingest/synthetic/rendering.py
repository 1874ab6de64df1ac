"""One product shot of the synthetic catalog: a placed, patterned, trimmed silhouette on a studio background."""

from __future__ import annotations

import colorsys
import io
from collections.abc import Mapping

import numpy as np
from PIL import Image

from modaclip.ingest.synthetic.pen import SUPERSAMPLE, Pen
from modaclip.ingest.synthetic.taxonomy import COLOUR_RGB, CONTRASTING, RGB, ArticleType, luminance


def _pattern_mask(pattern: str, rng: np.random.Generator, size: int, scale: float) -> Image.Image:
    """Where the second colour goes; lines are thinner than the gaps so the base colour dominates.

    `scale` is the item's width in pixels, so a pattern shrinks and grows with its item.
    """
    period = max(4.0, scale * rng.uniform(0.09, 0.15))
    pixels = np.arange(size, dtype=np.float32)
    rows = ((pixels + rng.uniform(0, period)) % period)[:, None]
    columns = ((pixels + rng.uniform(0, period)) % period)[None, :]
    if pattern == "striped":
        across = rng.random() < 0.5
        mask = (rows if across else columns) < period * rng.uniform(0.2, 0.3)
    elif pattern == "checked":
        width = period * rng.uniform(0.15, 0.22)
        mask = (rows < width) | (columns < width)
    else:
        radius = period * rng.uniform(0.2, 0.25)
        mask = (rows - period / 2) ** 2 + (columns - period / 2) ** 2 < radius**2
    return Image.fromarray(np.broadcast_to(mask, (size, size)).copy())


def _jitter(rgb: RGB, rng: np.random.Generator) -> RGB:
    """This item's shade of its base colour: a little lighter or darker, a touch off in hue."""
    hue, saturation, value = colorsys.rgb_to_hsv(*(channel / 255 for channel in rgb))
    hue = (hue + rng.uniform(-0.015, 0.015)) % 1.0
    saturation = min(1.0, saturation * rng.uniform(0.92, 1.08))
    value = min(1.0, value * rng.uniform(0.92, 1.08))
    return tuple(255 * channel for channel in colorsys.hsv_to_rgb(hue, saturation, value))


def _trim_colour(rgb: RGB) -> RGB:
    """A darker shade for seams and outlines; near-black colours get a lighter one instead."""
    if luminance(rgb) < 60:
        return tuple(channel + 0.3 * (255 - channel) for channel in rgb)
    return tuple(0.62 * channel for channel in rgb)


def _accent_colour(rgb: RGB) -> RGB:
    return (236, 234, 228) if luminance(rgb) < 140 else (44, 44, 48)


def _solid(rgb: RGB, size: int) -> Image.Image:
    return Image.new("RGB", (size, size), tuple(round(channel) for channel in rgb))


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """Near-white with a slight tint, a touch brighter at the top, like a studio sweep."""
    level = rng.uniform(236, 250) + rng.uniform(-4, 4, 3)
    gradient = np.linspace(4, -4, size)[:, None, None]
    column = np.clip(level + gradient, 0, 255).round().astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(np.broadcast_to(column, (size, size, 3))))


def _place(rng: np.random.Generator, size: int) -> Pen:
    """A pen for an item that fills most of the canvas (78-95%), a little stretched, off-centre and mirrored.

    Catalog photos centre the product and fill the frame with it. Items drawn at 55-90% anywhere on
    the canvas left a shirt 35 px wide at the tiny model's 64 px, and the model did not learn article
    type from them: modaclip-micro reached 0.09 zero-shot type accuracy (22 types) after 352 steps
    on 1,000 such products, 0.58 on the same products drawn like this.
    """
    span = size * rng.uniform(0.78, 0.95) * rng.uniform(0.95, 1.05, 2)
    origin = (size - span) * rng.uniform(0.3, 0.7, 2)
    return Pen(size, tuple(origin), tuple(span), flip=bool(rng.random() < 0.5))


def _outline(masks: Mapping[str, Image.Image]) -> Image.Image:
    """A one-pixel ring just outside the item, so a white item shows on a white background."""
    union = np.maximum.reduce([np.asarray(mask) for mask in masks.values()])
    padded = np.pad(union, 1)
    grown = np.maximum.reduce([padded[1:-1, :-2], padded[1:-1, 2:], padded[:-2, 1:-1], padded[2:, 1:-1], union])
    return Image.fromarray(grown - union)


def render(article: ArticleType, *, colour: str, pattern: str, rng: np.random.Generator, size: int) -> Image.Image:
    """Compose one product shot: background, patterned silhouette, trim, accents, outline."""
    pen = _place(rng, size)
    article.draw(pen)
    masks = {layer: mask.reduce(SUPERSAMPLE) for layer, mask in pen.masks.items()}
    base = _jitter(COLOUR_RGB[colour], rng)
    fill = _solid(base, size)
    if pattern != "solid":
        contrasting = CONTRASTING[colour]
        second = COLOUR_RGB[contrasting[rng.integers(len(contrasting))]]
        fill.paste(_solid(second, size), mask=_pattern_mask(pattern, rng, size, pen.width))
    canvas = _background(rng, size)
    canvas.paste(fill, mask=masks["body"])
    canvas.paste(_solid(_trim_colour(base), size), mask=masks["trim"])
    canvas.paste(_solid(_accent_colour(base), size), mask=masks["accent"])
    if rng.random() < 0.15 or luminance(base) > 200:
        canvas.paste(_solid(_trim_colour(base), size), mask=_outline(masks))
    return canvas


def encode(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
