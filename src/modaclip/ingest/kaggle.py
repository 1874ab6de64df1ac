"""`dir:<path>`: the Kaggle "Fashion Product Images" layout, styles.csv plus images/<id>.jpg.

The original styles.csv is not valid CSV: about twenty rows have unquoted commas inside
productDisplayName, the last column, so they have more fields than the header. Those rows are
repaired by joining the overflow back into the name; a CSV parser would drop or reject them.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from modaclip.core.config import DataParams
from modaclip.core.errors import ModaclipError
from modaclip.ingest.image_files import resolve_images
from modaclip.ingest.rows import select_columns, to_catalog_rows
from modaclip.ingest.subset import take_subset

STYLES_FILE = "styles.csv"
IMAGES_DIR = "images"
NEEDED_COLUMNS = ("id", "articleType")  # a product and its label; the cleaner judges the rest
_FREE_TEXT_LAST = "productDisplayName"
log = logging.getLogger(__name__)


def read_styles(path: Path) -> pd.DataFrame:
    """styles.csv as text columns, rows with unquoted commas in the last column repaired."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if not header:
                raise ModaclipError(f"{path}: empty file, expected a header row")
            rows = list(_repaired_rows(reader, header, path))
    except UnicodeDecodeError as error:
        raise ModaclipError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    return pd.DataFrame(rows, columns=header, dtype=object)


def _repaired_rows(reader: Iterator[list[str]], header: list[str], path: Path) -> Iterator[list[str | None]]:
    width = len(header)
    repaired = 0
    for line, fields in enumerate(reader, start=2):
        if not fields:
            continue
        if len(fields) > width:
            if header[-1] != _FREE_TEXT_LAST:
                raise ModaclipError(
                    f"{path}: line {line} has {len(fields)} fields but the header has {width}, "
                    f"and its last column is {header[-1]!r}, not {_FREE_TEXT_LAST}, so it cannot be repaired"
                )
            fields = [*fields[: width - 1], ",".join(fields[width - 1 :])]
            repaired += 1
        yield [value if value != "" else None for value in fields] + [None] * (width - len(fields))
    if repaired:
        log.info("%s: repaired %d rows with unquoted commas in %s", path, repaired, _FREE_TEXT_LAST)


def read_kaggle_dir(location: str, params: DataParams) -> Iterator[pd.DataFrame]:
    """Chunks of the catalog in a Kaggle-layout folder; an image not on disk is a missing_image row."""
    root = Path(location).expanduser()
    if not root.is_dir():
        raise ModaclipError(f"data.source 'dir:{location}': folder {root} does not exist")
    styles_path = root / STYLES_FILE
    if not styles_path.is_file():
        raise ModaclipError(f"data.source 'dir:{location}': {styles_path} not found (expected styles.csv and images/)")
    styles = select_columns(read_styles(styles_path), params.columns, str(styles_path))
    absent = [column for column in NEEDED_COLUMNS if column not in styles.columns]
    if absent:
        raise ModaclipError(f"{styles_path}: lacks needed columns {absent} (has {list(styles.columns)})")
    styles = take_subset(to_catalog_rows(styles, str(styles_path)), params.limit, params.seed)
    for start in range(0, len(styles), params.chunk_rows):
        chunk = styles.iloc[start : start + params.chunk_rows].copy()
        chunk["image"] = [f"{IMAGES_DIR}/{product_id}.jpg" for product_id in chunk["id"]]
        yield resolve_images(chunk, root, params.fetch_timeout_s)
