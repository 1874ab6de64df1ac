"""The 22 item drawings of the synthetic catalog, one per articleType, each in a unit square.

The silhouette is what tells the model an item's type: a shirt has a collar, buttons and long
sleeves, a t-shirt a round neck and short ones.
"""

from __future__ import annotations

from modaclip.ingest.synthetic.pen import Pen, Point, line_pair, polygon_pair, symmetric


def _torso(pen: Pen, long_sleeves: bool, hem: float) -> None:
    """A flat-lay top: shoulders, sleeves spread at an angle, straight body down to `hem`."""
    sleeve = (
        [(0.08, 0.36), (0.03, 0.8), (0.14, 0.82), (0.25, 0.38)]
        if long_sleeves
        else [(0.02, 0.33), (0.13, 0.43), (0.25, 0.33)]
    )
    left_half = [(0.5, 0.04), (0.37, 0.04), (0.17, 0.1), *sleeve, (0.25, hem), (0.5, hem)]
    pen.polygon(symmetric(left_half))


def draw_tshirt(pen: Pen) -> None:
    _torso(pen, long_sleeves=False, hem=0.95)
    pen.ellipse((0.37, -0.05, 0.63, 0.13), "hole")
    pen.arc((0.37, -0.05, 0.63, 0.13), 0, 180, 0.025, "trim")


def draw_shirt(pen: Pen) -> None:
    _torso(pen, long_sleeves=True, hem=0.96)
    pen.ellipse((0.4, -0.04, 0.6, 0.1), "hole")
    polygon_pair(pen, [(0.37, 0.03), (0.5, 0.1), (0.42, 0.2)], "trim")
    pen.line([(0.5, 0.1), (0.5, 0.96)], 0.015, "trim")
    for y in (0.28, 0.44, 0.6, 0.76):
        pen.ellipse((0.485, y, 0.515, y + 0.03), "accent")
    line_pair(pen, [(0.03, 0.78), (0.14, 0.8)], 0.03, "trim")


def draw_sweatshirt(pen: Pen) -> None:
    _torso(pen, long_sleeves=True, hem=0.95)
    pen.ellipse((0.38, -0.05, 0.62, 0.12), "hole")
    pen.arc((0.38, -0.05, 0.62, 0.12), 0, 180, 0.035, "trim")
    pen.rect((0.25, 0.88, 0.75, 0.95), "trim")
    line_pair(pen, [(0.04, 0.74), (0.15, 0.76)], 0.06, "trim")
    pen.line([(0.34, 0.86), (0.38, 0.62), (0.62, 0.62), (0.66, 0.86)], 0.015, "trim")


def draw_jacket(pen: Pen) -> None:
    _torso(pen, long_sleeves=True, hem=0.95)
    pen.ellipse((0.4, -0.04, 0.6, 0.1), "hole")
    polygon_pair(pen, [(0.37, 0.03), (0.48, 0.3), (0.38, 0.22)], "trim")
    pen.line([(0.5, 0.08), (0.5, 0.95)], 0.02, "accent")
    line_pair(pen, [(0.3, 0.62), (0.42, 0.62)], 0.02, "trim")


def draw_top(pen: Pen) -> None:
    """A sleeveless tank top with thin straps and a scoop neck."""
    pen.polygon(
        symmetric(
            [(0.5, 0.22), (0.41, 0.16), (0.38, 0.0), (0.31, 0.0), (0.28, 0.2), (0.22, 0.36), (0.24, 0.95), (0.5, 0.95)]
        )
    )
    pen.line([(0.41, 0.16), (0.5, 0.22), (0.59, 0.16)], 0.02, "trim")


def draw_kurta(pen: Pen) -> None:
    """A long tunic with three-quarter sleeves, a buttoned slit at the neck and side slits."""
    pen.polygon(
        symmetric(
            [(0.5, 0.04), (0.38, 0.04), (0.2, 0.09), (0.06, 0.5), (0.16, 0.53), (0.27, 0.3), (0.24, 1.0), (0.5, 1.0)]
        )
    )
    pen.ellipse((0.41, -0.03, 0.59, 0.09), "hole")
    pen.line([(0.5, 0.09), (0.5, 0.34)], 0.02, "trim")
    for y in (0.15, 0.23):
        pen.ellipse((0.485, y, 0.515, y + 0.03), "accent")
    polygon_pair(pen, [(0.24, 0.82), (0.29, 1.0), (0.23, 1.0)], "hole")


def draw_dress(pen: Pen) -> None:
    pen.polygon(
        symmetric(
            [(0.5, 0.12), (0.41, 0.07), (0.37, 0.0), (0.31, 0.0), (0.3, 0.2), (0.34, 0.38), (0.1, 0.98), (0.5, 0.98)]
        )
    )
    pen.line([(0.34, 0.38), (0.66, 0.38)], 0.025, "trim")


def draw_skirt(pen: Pen) -> None:
    pen.polygon(symmetric([(0.5, 0.08), (0.3, 0.08), (0.12, 0.92), (0.5, 0.92)]))
    pen.rect((0.3, 0.08, 0.7, 0.16), "trim")
    line_pair(pen, [(0.42, 0.16), (0.36, 0.92)], 0.012, "trim")


def _legs(pen: Pen, left_half: list[Point]) -> None:
    """Two legs joined at the crotch, with a waistband along the top edge."""
    pen.polygon(symmetric(left_half))
    (_, top), (side, _) = left_half[0], left_half[1]
    pen.rect((side, top, 1 - side, top + 0.06), "trim")


def draw_trousers(pen: Pen) -> None:
    _legs(pen, [(0.5, 0.02), (0.27, 0.02), (0.21, 0.98), (0.46, 0.98), (0.5, 0.3)])
    line_pair(pen, [(0.36, 0.1), (0.335, 0.98)], 0.012, "trim")


def draw_jeans(pen: Pen) -> None:
    _legs(pen, [(0.5, 0.02), (0.26, 0.02), (0.22, 0.98), (0.46, 0.98), (0.5, 0.32)])
    line_pair(pen, [(0.29, 0.1), (0.35, 0.2), (0.42, 0.1)], 0.015, "accent")
    pen.line([(0.5, 0.09), (0.5, 0.24), (0.56, 0.2), (0.56, 0.09)], 0.012, "accent")


def draw_shorts(pen: Pen) -> None:
    _legs(pen, [(0.5, 0.08), (0.22, 0.08), (0.1, 0.82), (0.46, 0.86), (0.5, 0.42)])
    line_pair(pen, [(0.11, 0.76), (0.46, 0.8)], 0.04, "trim")


def _shoe_upper(pen: Pen) -> None:
    """A low shoe's upper seen from the side, toe to the right."""
    pen.polygon(
        [
            (0.05, 0.76),
            (0.04, 0.4),
            (0.19, 0.33),
            (0.36, 0.44),
            (0.58, 0.46),
            (0.8, 0.55),
            (0.94, 0.62),
            (0.99, 0.72),
            (0.97, 0.77),
        ]
    )
    for x in (0.42, 0.5, 0.58):
        pen.line([(x, 0.45), (x + 0.05, 0.53)], 0.02, "trim")


def draw_casual_shoe(pen: Pen) -> None:
    _shoe_upper(pen)
    pen.rect((0.02, 0.74, 0.99, 0.83), "accent", radius=0.04)
    pen.line([(0.75, 0.74), (0.8, 0.6), (0.97, 0.67)], 0.015, "trim")


def draw_sports_shoe(pen: Pen) -> None:
    """A casual shoe's upper on a thick two-tone sole, with a swoosh and a padded collar."""
    _shoe_upper(pen)
    pen.line([(0.22, 0.67), (0.5, 0.6), (0.76, 0.53)], 0.04, "accent")
    pen.rect((0.02, 0.74, 0.99, 0.86), "trim", radius=0.05)
    pen.rect((0.02, 0.74, 0.99, 0.8), "accent", radius=0.03)
    pen.line([(0.05, 0.42), (0.19, 0.36), (0.33, 0.46)], 0.04, "trim")


def draw_heel(pen: Pen) -> None:
    """A stiletto pump: heel cup, arched sole down to a pointed toe, and a thin spike."""
    pen.polygon(
        [
            (0.08, 0.3),
            (0.1, 0.52),
            (0.35, 0.62),
            (0.62, 0.8),
            (0.85, 0.88),
            (0.98, 0.9),
            (0.99, 0.85),
            (0.9, 0.74),
            (0.7, 0.64),
            (0.58, 0.6),
            (0.3, 0.44),
            (0.18, 0.33),
        ]
    )
    pen.polygon([(0.08, 0.48), (0.2, 0.53), (0.16, 0.98), (0.13, 0.98)])
    pen.line([(0.1, 0.52), (0.35, 0.62), (0.62, 0.8), (0.85, 0.88), (0.98, 0.9)], 0.02, "trim")


def draw_sandal(pen: Pen) -> None:
    """A flat sandal from the side: thick sole, a domed toe strap, an instep strap crossing to
    the ankle strap, and a heel strap."""
    pen.rect((0.02, 0.8, 0.98, 0.92), radius=0.04)
    pen.line([(0.03, 0.8), (0.97, 0.8)], 0.015, "trim")
    pen.pieslice((0.56, 0.6, 0.96, 1.0), 180, 360)
    pen.polygon([(0.3, 0.8), (0.44, 0.5), (0.53, 0.52), (0.42, 0.8)])
    pen.polygon([(0.05, 0.8), (0.06, 0.48), (0.15, 0.46), (0.16, 0.8)])
    pen.line([(0.06, 0.5), (0.3, 0.46), (0.5, 0.5)], 0.05)
    pen.rect((0.27, 0.42, 0.33, 0.5), "accent")


def draw_flip_flops(pen: Pen) -> None:
    """A pair seen from above: foot-shaped soles with a V strap from the toe post."""
    for x0, y0 in ((0.04, 0.02), (0.54, 0.06)):
        pen.ellipse((x0, y0, x0 + 0.42, y0 + 0.55))
        pen.ellipse((x0 + 0.05, y0 + 0.4, x0 + 0.37, y0 + 0.92))
        post = (x0 + 0.19, y0 + 0.16)
        pen.line([(x0 + 0.02, y0 + 0.5), post, (x0 + 0.4, y0 + 0.5)], 0.05, "accent")


def draw_handbag(pen: Pen) -> None:
    pen.ellipse((0.3, 0.05, 0.7, 0.62), width=0.06)
    pen.polygon([(0.18, 0.35), (0.82, 0.35), (0.94, 0.95), (0.06, 0.95)])
    pen.line([(0.18, 0.35), (0.22, 0.55), (0.5, 0.62), (0.78, 0.55), (0.82, 0.35)], 0.015, "trim")
    pen.rect((0.46, 0.56, 0.54, 0.66), "accent", radius=0.01)


def draw_backpack(pen: Pen) -> None:
    pen.ellipse((0.4, 0.02, 0.6, 0.2), width=0.04)
    pen.rect((0.15, 0.12, 0.85, 0.97), radius=0.15)
    pen.rect((0.25, 0.55, 0.75, 0.9), "trim", radius=0.06, width=0.025)
    pen.arc((0.2, 0.16, 0.8, 0.6), 200, 340, 0.02, "accent")
    pen.line([(0.3, 0.6), (0.7, 0.6)], 0.02, "accent")


def draw_watch(pen: Pen) -> None:
    """A strap top to bottom with a round case: bezel, dial, two hands and a crown."""
    pen.rect((0.36, 0.0, 0.64, 1.0), radius=0.04)
    pen.ellipse((0.2, 0.2, 0.8, 0.8))
    pen.ellipse((0.2, 0.2, 0.8, 0.8), "trim", width=0.06)
    pen.line([(0.5, 0.5), (0.5, 0.32)], 0.03, "accent")
    pen.line([(0.5, 0.5), (0.63, 0.56)], 0.03, "accent")
    pen.rect((0.8, 0.46, 0.86, 0.54), "trim")


def draw_cap(pen: Pen) -> None:
    """A baseball cap from the side: domed crown, brim to the right, button on top."""
    pen.pieslice((0.05, 0.15, 0.75, 1.05), 180, 360)
    pen.polygon([(0.6, 0.56), (0.98, 0.64), (0.96, 0.72), (0.55, 0.64)])
    pen.line([(0.06, 0.6), (0.72, 0.6)], 0.03, "trim")
    pen.line([(0.4, 0.16), (0.26, 0.6)], 0.012, "trim")
    pen.line([(0.4, 0.16), (0.54, 0.6)], 0.012, "trim")
    pen.ellipse((0.37, 0.12, 0.43, 0.18), "accent")


def draw_belt(pen: Pen) -> None:
    """A straight strap with a rounded tip, holes, and a buckle with its prong."""
    pen.rect((0.0, 0.39, 0.82, 0.61), radius=0.1)
    pen.rect((0.86, 0.39, 1.0, 0.61))
    for x in (0.3, 0.38, 0.46):
        pen.ellipse((x, 0.47, x + 0.04, 0.53), "trim")
    pen.rect((0.74, 0.33, 0.92, 0.67), "accent", radius=0.02, width=0.035)
    pen.line([(0.74, 0.5), (0.88, 0.5)], 0.02, "accent")


def draw_sunglasses(pen: Pen) -> None:
    """Tinted lenses in a thin frame, a bridge between them and the stubs of the temples."""
    for lens in ((0.04, 0.3, 0.46, 0.72), (0.54, 0.3, 0.96, 0.72)):
        pen.rect(lens, radius=0.14)
        pen.rect(lens, "trim", radius=0.14, width=0.03)
    pen.line([(0.45, 0.4), (0.5, 0.36), (0.55, 0.4)], 0.03, "trim")
    line_pair(pen, [(0.04, 0.36), (0.0, 0.33)], 0.03, "trim")
