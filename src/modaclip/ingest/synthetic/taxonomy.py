"""The synthetic catalog's vocabulary: Kaggle colours, articleTypes, seasons, years, brands and patterns, with weights.

Names and how common each is follow the Kaggle "Fashion Product Images" dataset; each articleType
also names the drawing (`shapes`) that shows it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from modaclip.ingest.synthetic.pen import Pen
from modaclip.ingest.synthetic.shapes import (
    draw_backpack,
    draw_belt,
    draw_cap,
    draw_casual_shoe,
    draw_dress,
    draw_flip_flops,
    draw_handbag,
    draw_heel,
    draw_jacket,
    draw_jeans,
    draw_kurta,
    draw_sandal,
    draw_shirt,
    draw_shorts,
    draw_skirt,
    draw_sports_shoe,
    draw_sunglasses,
    draw_sweatshirt,
    draw_top,
    draw_trousers,
    draw_tshirt,
    draw_watch,
)

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Weighted:
    """Names with relative weights; one uniform draw picks a name, so draws stay cheap."""

    names: tuple[str, ...]
    cumulative: tuple[float, ...]

    @classmethod
    def of(cls, weights: Mapping[str, float]) -> Weighted:
        total = sum(weights.values())
        cumulative = tuple(running / total for running in accumulate(weights.values()))
        return cls(tuple(weights), cumulative)

    def draw(self, rng: np.random.Generator) -> str:
        index = bisect_right(self.cumulative, rng.random())
        return self.names[min(index, len(self.names) - 1)]


def _w(**weights: float) -> Weighted:
    return Weighted.of(weights)


# ---------------------------------------------------------------- colours
# Kaggle baseColour names, a typical studio RGB for each, and how common the colour is.
_COLOURS: dict[str, tuple[RGB, float]] = {
    "Black": ((30, 30, 32), 4.0),
    "White": ((244, 244, 240), 3.0),
    "Blue": ((40, 90, 190), 3.0),
    "Navy Blue": ((28, 38, 92), 2.0),
    "Grey": ((128, 128, 130), 2.0),
    "Red": ((196, 32, 38), 1.8),
    "Green": ((46, 130, 64), 1.4),
    "Brown": ((112, 72, 42), 1.4),
    "Pink": ((236, 134, 170), 1.3),
    "Purple": ((112, 54, 146), 1.0),
    "Yellow": ((232, 196, 40), 1.0),
    "Orange": ((234, 124, 36), 1.0),
    "Beige": ((214, 194, 156), 1.0),
    "Maroon": ((118, 26, 44), 1.0),
    "Olive": ((106, 110, 46), 0.7),
    "Teal": ((28, 128, 128), 0.7),
}
COLOUR_RGB: dict[str, RGB] = {name: rgb for name, (rgb, _) in _COLOURS.items()}
_ALL_COLOURS = Weighted.of({name: weight for name, (_, weight) in _COLOURS.items()})


def luminance(rgb: RGB) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


# A pattern's second colour must stand out from the base colour, or the pattern is invisible.
CONTRASTING: dict[str, tuple[str, ...]] = {
    name: tuple(other for other, other_rgb in COLOUR_RGB.items() if abs(luminance(other_rgb) - luminance(rgb)) >= 80)
    for name, rgb in COLOUR_RGB.items()
}


# ---------------------------------------------------------------- articleTypes
@dataclass(frozen=True)
class ArticleType:
    """One Kaggle articleType: where it sits in the taxonomy, who buys it, and how it looks."""

    name: str
    master: str
    sub: str
    noun: str  # what productDisplayName calls one item (some types also use NOUN_VARIANTS)
    weight: float  # relative frequency; the most common type is about 4x the rarest
    genders: Weighted
    usages: Weighted
    climate: str  # key of SEASONS
    draw: Callable[[Pen], None]
    colours: Weighted = _ALL_COLOURS


_CASUAL = _w(Casual=1)
_TYPES: tuple[ArticleType, ...] = (
    ArticleType("Tshirts", "Apparel", "Topwear", "Tshirt", 5.0,
                 _w(Men=6, Women=3, Unisex=0.3, Boys=0.4, Girls=0.3), _w(Casual=8, Sports=2),
                 "any", draw_tshirt),
    ArticleType("Shirts", "Apparel", "Topwear", "Shirt", 4.0,
                 _w(Men=8, Women=1.5, Boys=0.4), _w(Casual=6, Formal=4), "any", draw_shirt),
    ArticleType("Tops", "Apparel", "Topwear", "Top", 3.0,
                 _w(Women=9, Girls=0.5), _w(Casual=8, Party=2), "warm", draw_top),
    ArticleType("Kurtas", "Apparel", "Topwear", "Kurta", 2.5,
                 _w(Women=6, Men=4), _w(Ethnic=1), "any", draw_kurta),
    ArticleType("Sweatshirts", "Apparel", "Topwear", "Sweatshirt", 1.5,
                 _w(Men=6, Women=3.5, Boys=0.3), _w(Casual=7, Sports=3), "cold", draw_sweatshirt),
    ArticleType("Jackets", "Apparel", "Topwear", "Jacket", 1.5,
                 _w(Men=6.5, Women=3.5), _w(Casual=7, Sports=3), "cold", draw_jacket),
    ArticleType("Dresses", "Apparel", "Dress", "Dress", 2.5,
                 _w(Women=19, Girls=1), _w(Casual=6, Party=4), "warm", draw_dress),
    ArticleType("Jeans", "Apparel", "Bottomwear", "Jeans", 2.5, _w(Men=6, Women=4), _CASUAL,
                 "any", draw_jeans,
                 _w(Blue=5, **{"Navy Blue": 3}, Black=2, Grey=1, White=0.5)),
    ArticleType("Trousers", "Apparel", "Bottomwear", "Trousers", 2.0,
                 _w(Men=7, Women=3), _w(Formal=5, Casual=5), "any", draw_trousers),
    ArticleType("Shorts", "Apparel", "Bottomwear", "Shorts", 1.5,
                 _w(Men=6, Women=3, Boys=1), _w(Casual=7, Sports=3), "warm", draw_shorts),
    ArticleType("Skirts", "Apparel", "Bottomwear", "Skirt", 1.2,
                 _w(Women=19, Girls=1), _w(Casual=7, Party=3), "warm", draw_skirt),
    ArticleType("Casual Shoes", "Footwear", "Shoes", "Casual Shoes", 3.0,
                 _w(Men=6, Women=3.5, Unisex=0.5), _CASUAL, "any", draw_casual_shoe),
    ArticleType("Sports Shoes", "Footwear", "Shoes", "Sports Shoes", 2.5,
                 _w(Men=6, Women=3.5, Unisex=0.5), _w(Sports=1), "any", draw_sports_shoe),
    ArticleType("Heels", "Footwear", "Shoes", "Heels", 2.0,
                 _w(Women=1), _w(Casual=5, Party=3, Formal=2), "any", draw_heel),
    ArticleType("Sandals", "Footwear", "Sandal", "Sandals", 1.5,
                 _w(Men=5, Women=5), _w(Casual=8, Ethnic=2), "warm", draw_sandal),
    ArticleType("Flip Flops", "Footwear", "Flip Flops", "Flip Flops", 1.5,
                 _w(Men=5, Women=4, Unisex=1), _CASUAL, "warm", draw_flip_flops),
    ArticleType("Handbags", "Accessories", "Bags", "Handbag", 2.5,
                 _w(Women=19, Unisex=1), _w(Casual=6, Party=2, Formal=2), "any", draw_handbag),
    ArticleType("Backpacks", "Accessories", "Bags", "Backpack", 1.5,
                 _w(Unisex=6, Men=3, Women=1), _w(Casual=7, Sports=3), "any", draw_backpack),
    ArticleType("Watches", "Accessories", "Watches", "Watch", 3.0,
                 _w(Men=6, Women=3.5, Unisex=0.5), _w(Casual=6, Formal=4), "any", draw_watch),
    ArticleType("Caps", "Accessories", "Headwear", "Cap", 1.2,
                 _w(Men=6, Unisex=3.5, Women=0.5), _w(Casual=7, Sports=3), "warm", draw_cap),
    ArticleType("Belts", "Accessories", "Belts", "Belt", 1.2,
                 _w(Men=8.5, Women=1.5), _w(Casual=5, Formal=5), "any", draw_belt,
                 _w(Black=4, Brown=4, **{"Navy Blue": 1}, Beige=1, Maroon=0.5, Grey=0.5)),
    ArticleType("Sunglasses", "Accessories", "Eyewear", "Sunglasses", 1.5,
                 _w(Men=5.5, Women=3.5, Unisex=1), _CASUAL, "warm", draw_sunglasses,
                 _w(Black=4, Brown=2, Grey=2, Blue=1, Green=0.5, Purple=0.3, Maroon=0.3)),
)  # fmt: skip
TYPE_BY_NAME = {article.name: article for article in _TYPES}
# Other words real titles use for some types ("Puma Men White Sneakers", "Baggit Men Brown Leather
# Belt"), drawn per product, so a shopper's word for a thing reaches the model through the titles.
NOUN_VARIANTS: dict[str, Weighted] = {
    "Casual Shoes": Weighted.of({"Casual Shoes": 3, "Sneakers": 2}),
    "Sports Shoes": Weighted.of({"Sports Shoes": 3, "Sneakers": 1}),
    "Belts": Weighted.of({"Belt": 1, "Leather Belt": 1}),
    "Handbags": Weighted.of({"Handbag": 2, "Leather Handbag": 1}),
}
ALL_TYPES = Weighted.of({article.name: article.weight for article in _TYPES})

SEASONS = {
    "any": _w(Summer=3.5, Fall=3, Winter=2, Spring=1.5),
    "warm": _w(Summer=5, Spring=3, Fall=1.5, Winter=0.5),
    "cold": _w(Winter=5, Fall=4, Spring=1, Summer=0.5),
}
YEARS = Weighted.of({"2010": 0.5, "2011": 3, "2012": 3, "2013": 1, "2014": 0.8, "2015": 1.2,
                       "2016": 2, "2017": 2.5, "2018": 0.3})  # fmt: skip
BRANDS = {
    "Apparel": ("Roadster", "Peter England", "Allen Solly", "United Colors of Benetton",
                "Wrangler", "Jealous 21", "Fabindia", "Levis"),
    "Footwear": ("Catwalk", "Red Tape", "Woodland", "Bata", "Mochi", "Clarks"),
    "Accessories": ("Fastrack", "Titan", "Baggit", "Lavie", "Wildcraft", "Tommy Hilfiger"),
    "Sports": ("Nike", "Puma", "Adidas", "Reebok"),
}  # fmt: skip

# Pattern -> the word productDisplayName uses for it ("" for solid: Kaggle names rarely say so).
PATTERN_WORDS = {"solid": "", "striped": "Striped", "checked": "Checked", "dotted": "Dotted"}
PATTERNS = {
    "Apparel": _w(solid=5, striped=2, checked=1.6, dotted=1.2),
    "Footwear": _w(solid=8, striped=1, checked=0.5, dotted=0.5),
    "Accessories": _w(solid=7, striped=1, checked=1, dotted=1),
}
