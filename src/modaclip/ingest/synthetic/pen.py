"""The drawing DSL of the synthetic catalog: shapes given in a unit square, drawn onto an item's layer masks."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

Point = tuple[float, float]
Box = tuple[float, float, float, float]

SUPERSAMPLE = 2  # masks are drawn this many times larger and averaged down: smooth edges


class Pen:
    """Draws shapes given in a unit square onto one item's layer masks, scaled and moved into place.

    Layers: "body" is filled with the (patterned) base colour, "trim" with a darker shade of it
    (seams, bezels, waistbands), "accent" with a neutral that contrasts with it (shoe soles,
    buckles, zips). "hole" cuts the body away again (a t-shirt's neck).
    """

    LAYERS = ("body", "trim", "accent")

    def __init__(self, size: int, origin: Point, span: Point, flip: bool) -> None:
        side = size * SUPERSAMPLE
        self.masks = {layer: Image.new("L", (side, side)) for layer in self.LAYERS}
        self._draws = {layer: ImageDraw.Draw(mask) for layer, mask in self.masks.items()}
        self._origin = (origin[0] * SUPERSAMPLE, origin[1] * SUPERSAMPLE)
        self._span = (span[0] * SUPERSAMPLE, span[1] * SUPERSAMPLE)
        self._flip = flip
        self.width = span[0]  # the item's width in output pixels, which sets the pattern's scale

    def _xy(self, points: Sequence[Point]) -> list[Point]:
        (x0, y0), (sx, sy) = self._origin, self._span
        return [(x0 + (1 - x if self._flip else x) * sx, y0 + y * sy) for x, y in points]

    def _box(self, box: Box) -> Box:
        (ax, ay), (bx, by) = self._xy([box[:2], box[2:]])
        return (min(ax, bx), ay, max(ax, bx), by)

    def _angles(self, start: float, end: float) -> tuple[float, float]:
        return (180 - end, 180 - start) if self._flip else (start, end)

    def _pixels(self, length: float) -> int:
        return max(1, round(length * self._span[0]))

    def _target(self, layer: str) -> tuple[ImageDraw.ImageDraw, int]:
        return (self._draws["body"], 0) if layer == "hole" else (self._draws[layer], 255)

    def polygon(self, points: Sequence[Point], layer: str = "body") -> None:
        draw, value = self._target(layer)
        draw.polygon(self._xy(points), fill=value)

    def ellipse(self, box: Box, layer: str = "body", width: float = 0.0) -> None:
        """A filled ellipse, or only its outline when `width` is given."""
        draw, value = self._target(layer)
        if width:
            draw.ellipse(self._box(box), outline=value, width=self._pixels(width))
        else:
            draw.ellipse(self._box(box), fill=value)

    def rect(self, box: Box, layer: str = "body", radius: float = 0.0, width: float = 0.0) -> None:
        """A filled rounded rectangle, or only its outline when `width` is given."""
        draw, value = self._target(layer)
        radius_px = round(radius * self._span[0])
        if width:
            draw.rounded_rectangle(self._box(box), radius_px, outline=value, width=self._pixels(width))
        else:
            draw.rounded_rectangle(self._box(box), radius_px, fill=value)

    def line(self, points: Sequence[Point], width: float, layer: str = "body") -> None:
        draw, value = self._target(layer)
        draw.line(self._xy(points), fill=value, width=self._pixels(width), joint="curve")

    def pieslice(self, box: Box, start: float, end: float, layer: str = "body") -> None:
        draw, value = self._target(layer)
        draw.pieslice(self._box(box), *self._angles(start, end), fill=value)

    def arc(self, box: Box, start: float, end: float, width: float, layer: str = "body") -> None:
        draw, value = self._target(layer)
        draw.arc(self._box(box), *self._angles(start, end), fill=value, width=self._pixels(width))


def symmetric(left_half: list[Point]) -> list[Point]:
    """A left-right symmetric outline from its left half, given from top centre to bottom centre."""
    return left_half + [(1 - x, y) for x, y in reversed(left_half)]


def _mirrored(points: Sequence[Point]) -> list[Point]:
    return [(1 - x, y) for x, y in points]


def line_pair(pen: Pen, points: list[Point], width: float, layer: str) -> None:
    """A line and its mirror image, for details that come in pairs (cuffs, pockets, pleats)."""
    pen.line(points, width, layer)
    pen.line(_mirrored(points), width, layer)


def polygon_pair(pen: Pen, points: list[Point], layer: str) -> None:
    """A polygon and its mirror image (collar points, lapels, side slits)."""
    pen.polygon(points, layer)
    pen.polygon(_mirrored(points), layer)
