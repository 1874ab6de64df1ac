"""Where a raw catalog comes from: `data.source` names a reader in SOURCES."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pandas as pd

from modaclip.config import DataParams
from modaclip.errors import ModaclipError
from modaclip.synthetic import generate_catalog

SourceReader = Callable[[str, DataParams], Iterator[pd.DataFrame]]


def _synthetic(_location: str, params: DataParams) -> Iterator[pd.DataFrame]:
    yield generate_catalog(params.num_items, params.seed, params.image_size, params.defect_rate)


SOURCES: dict[str, SourceReader] = {"synthetic": _synthetic}


def read_source(params: DataParams) -> Iterator[pd.DataFrame]:
    """Chunks of the raw catalog named by `data.source` ('scheme' or 'scheme:location')."""
    scheme, _, location = params.source.partition(":")
    reader = SOURCES.get(scheme)
    if reader is None:
        known = ", ".join(sorted(SOURCES))
        raise ModaclipError(f"data.source: unknown source scheme {scheme!r} (known: {known})")
    return reader(location, params)
