"""The synthetic catalog generator: row i drawn from (seed, i), its product shot rendered, a share broken on purpose."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from modaclip.core.config import parse_params
from modaclip.core.schema import CATALOG_COLUMNS
from modaclip.ingest.synthetic.defects import DEFECTS, Row, defect_kind
from modaclip.ingest.synthetic.rendering import encode, render
from modaclip.ingest.synthetic.taxonomy import (
    ALL_TYPES,
    BRANDS,
    NOUN_VARIANTS,
    PATTERN_WORDS,
    PATTERNS,
    SEASONS,
    TYPE_BY_NAME,
    YEARS,
)

_FIRST_ID = 10000


def _display_name(*, brand: str, gender: str, pattern: str, colour: str, noun: str) -> str:
    return " ".join(word for word in (brand, gender, PATTERN_WORDS[pattern], colour, noun) if word)


def _clean_row(index: int, rng: np.random.Generator, image_size: int) -> tuple[Row, Image.Image]:
    """Row `index` as it should be, and its image before encoding (a defect may shrink it)."""
    article = TYPE_BY_NAME[ALL_TYPES.draw(rng)]
    gender = article.genders.draw(rng)
    colour = article.colours.draw(rng)
    pattern = PATTERNS[article.master].draw(rng)
    season = SEASONS[article.climate].draw(rng)
    usage = article.usages.draw(rng)
    year = int(YEARS.draw(rng))
    brands = BRANDS["Sports" if usage == "Sports" else article.master]
    brand = brands[rng.integers(len(brands))]
    noun = NOUN_VARIANTS[article.name].draw(rng) if article.name in NOUN_VARIANTS else article.noun
    image = render(article, colour=colour, pattern=pattern, rng=rng, size=image_size)
    row = {
        "id": _FIRST_ID + index,
        "gender": gender,
        "masterCategory": article.master,
        "subCategory": article.sub,
        "articleType": article.name,
        "baseColour": colour,
        "season": season,
        "year": year,
        "usage": usage,
        "productDisplayName": _display_name(brand=brand, gender=gender, pattern=pattern, colour=colour, noun=noun),
        "image": encode(image, quality=int(rng.integers(60, 96))),
    }
    return row, image


# Text and bytes stay Python objects (None where missing) under pandas 2 and 3 alike.
_DTYPES = {"id": "int64", "year": "int64"}


def generate_catalog(num_items: int, seed: int, image_size: int = 128, defect_rate: float = 0.01) -> pd.DataFrame:
    """A catalog with the columns of `CATALOG_COLUMNS`, one JPEG product shot per row.

    Byte-identical for the same arguments, and its first n rows are `generate_catalog(n, seed)`.
    The arguments are held to the limits of params.yaml's `data` section (`DataParams`), which
    the download stage has checked already; tests and benchmarks call this directly.
    """
    limits = {"num_items": num_items, "seed": seed, "image_size": image_size, "defect_rate": defect_rate}
    parse_params({"data": limits}, source="generate_catalog")
    rows: list[Row] = []
    clean: list[Row] = []
    for index in range(num_items):
        rng = np.random.default_rng([seed, index])
        row, image = _clean_row(index, rng, image_size)
        kind = defect_kind(index, rng, defect_rate)
        if kind is None:
            clean.append(row)
        else:
            row = DEFECTS[kind](row, image, rng, clean)
        rows.append(row)
    return pd.DataFrame(
        {name: pd.Series([row[name] for row in rows], dtype=_DTYPES.get(name, object)) for name in CATALOG_COLUMNS}
    )
