"""Where a raw catalog comes from: `data.source` ('scheme:location') names a reader in SOURCES.

Each reader yields chunks of at most data.chunk_rows rows with the columns of
`source_rows.RAW_COLUMNS` (the synthetic one: `CATALOG_COLUMNS`) and applies data.limit itself,
since only it knows whether ids can be read before the images. A reader that meets rows it cannot
parse skips them into the `BadRows` it is given (styles.csv does). Adding a format is one module and
one line here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import pandas as pd
from tqdm import tqdm

from modaclip.core.config import DataParams
from modaclip.core.errors import ModaclipError
from modaclip.ingest.bad_rows import BadRows
from modaclip.ingest.hf import read_hf
from modaclip.ingest.imagefolder import read_image_folder
from modaclip.ingest.kaggle import read_kaggle_dir
from modaclip.ingest.subset import take_subset
from modaclip.ingest.synthetic import generate_catalog
from modaclip.ingest.table import read_csv_export, read_parquet_export

SourceReader = Callable[[str, DataParams, BadRows], Iterator[pd.DataFrame]]


def _synthetic(_location: str, params: DataParams, _bad_rows: BadRows) -> Iterator[pd.DataFrame]:
    catalog = generate_catalog(params.num_items, params.seed, params.image_size, params.defect_rate)
    subset = take_subset(catalog, params.limit, params.seed).reset_index(drop=True)
    for start in range(0, len(subset), params.chunk_rows):
        yield subset.iloc[start : start + params.chunk_rows]


SOURCES: dict[str, SourceReader] = {
    "synthetic": _synthetic,
    "dir": read_kaggle_dir,
    "hf": read_hf,
    "csv": read_csv_export,
    "parquet": read_parquet_export,
    "imagefolder": read_image_folder,
}


def read_source(params: DataParams, bad_rows: BadRows | None = None) -> Iterator[pd.DataFrame]:
    """Chunks of the raw catalog named by `data.source` ('scheme' or 'scheme:location').

    Rows too malformed to read are skipped into `bad_rows` (up to data.max_bad_rows of them). Raises
    after the last chunk when no row had an image, so `write_parts` leaves no output.
    """
    scheme, _, location = params.source.partition(":")
    reader = SOURCES.get(scheme)
    if reader is None:
        known = ", ".join(sorted(SOURCES))
        raise ModaclipError(f"data.source: unknown source scheme {scheme!r} in {params.source!r} (known: {known})")
    if scheme != "synthetic" and not location:
        raise ModaclipError(f"data.source {params.source!r}: name a location after '{scheme}:'")
    skipped = BadRows(params.max_bad_rows) if bad_rows is None else bad_rows
    return _require_usable_rows(reader(location, params, skipped), params.source)


def _require_usable_rows(chunks: Iterable[pd.DataFrame], source: str) -> Iterator[pd.DataFrame]:
    rows = with_image = 0
    with tqdm(desc="download", unit="rows") as progress:
        for chunk in chunks:
            rows += len(chunk)
            with_image += int(chunk["image"].map(lambda data: isinstance(data, bytes) and len(data) > 0).sum())
            progress.update(len(chunk))
            yield chunk
    if with_image == 0:
        raise ModaclipError(f"data.source {source!r}: no usable rows ({rows} rows read, none with an image)")
