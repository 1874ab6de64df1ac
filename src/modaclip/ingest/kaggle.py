"""`dir:<path>`: the Kaggle "Fashion Product Images" layout, styles.csv plus images/<id>.jpg.

The original styles.csv is not valid CSV: about twenty rows have unquoted commas inside
productDisplayName, the last column, so they have more fields than the header. Those rows are
repaired by joining the overflow back into the name; a CSV parser would drop or reject them. A
line that cannot be repaired (its header ends in another column) or whose id is not a number is
skipped and counted (`BadRows`), up to data.max_bad_rows of the lines.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from modaclip.core.config import DataParams
from modaclip.core.errors import ModaclipError
from modaclip.ingest.bad_rows import BadRows
from modaclip.ingest.image_files import resolve_images
from modaclip.ingest.rows import select_columns, to_catalog_rows
from modaclip.ingest.subset import take_subset

STYLES_FILE = "styles.csv"
IMAGES_DIR = "images"
NEEDED_COLUMNS = ("id", "articleType")  # a product and its label; the cleaner judges the rest
_FREE_TEXT_LAST = "productDisplayName"
log = logging.getLogger(__name__)


def read_styles(path: Path, bad_rows: BadRows, id_column: str = "id") -> pd.DataFrame:
    """styles.csv as text columns: rows with unquoted commas in the last column repaired, rows that
    cannot be read (too many fields, an id column not holding a whole number) skipped into `bad_rows`."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if not header:
                raise ModaclipError(f"{path}: empty file, expected a header row")
            rows = list(_readable_rows(reader, header, path=path, bad_rows=bad_rows, id_column=id_column))
    except UnicodeDecodeError as error:
        raise ModaclipError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error
    bad_rows.check(len(rows) + bad_rows.total, str(path))
    return pd.DataFrame(rows, columns=header, dtype=object)


def _readable_rows(
    reader: Iterator[list[str]], header: list[str], *, path: Path, bad_rows: BadRows, id_column: str
) -> Iterator[list[str | None]]:
    width = len(header)
    id_at = header.index(id_column) if id_column in header else None
    repaired = 0
    for line, fields in enumerate(reader, start=2):
        if not fields:
            continue
        if len(fields) > width:
            if header[-1] != _FREE_TEXT_LAST:
                bad_rows.skip("too_many_fields", f"line {line}: {len(fields)} fields under {width} columns")
                continue
            fields = [*fields[: width - 1], ",".join(fields[width - 1 :])]
            repaired += 1
        product_id = fields[id_at] if id_at is not None and id_at < len(fields) else ""
        if id_at is not None and not _is_whole_number(product_id):
            bad_rows.skip("bad_id", f"line {line}: id {product_id!r}")
            continue
        yield [value if value != "" else None for value in fields] + [None] * (width - len(fields))
    if repaired:
        log.info("%s: repaired %d rows with unquoted commas in %s", path, repaired, _FREE_TEXT_LAST)


def _is_whole_number(text: str) -> bool:
    try:
        return float(text).is_integer()
    except ValueError:
        return False


def read_kaggle_dir(location: str, params: DataParams, bad_rows: BadRows) -> Iterator[pd.DataFrame]:
    """Chunks of the catalog in a Kaggle-layout folder; an image not on disk is a missing_image row."""
    root = Path(location).expanduser()
    if not root.is_dir():
        raise ModaclipError(f"data.source 'dir:{location}': folder {root} does not exist")
    styles_path = root / STYLES_FILE
    if not styles_path.is_file():
        raise ModaclipError(f"data.source 'dir:{location}': {styles_path} not found (expected styles.csv and images/)")
    styles = read_styles(styles_path, bad_rows, params.columns.get("id", "id"))
    styles = select_columns(styles, params.columns, str(styles_path))
    absent = [column for column in NEEDED_COLUMNS if column not in styles.columns]
    if absent:
        raise ModaclipError(f"{styles_path}: lacks needed columns {absent} (has {list(styles.columns)})")
    styles = take_subset(to_catalog_rows(styles, str(styles_path)), params.limit, params.seed)
    for start in range(0, len(styles), params.chunk_rows):
        chunk = styles.iloc[start : start + params.chunk_rows].copy()
        chunk["image"] = [f"{IMAGES_DIR}/{product_id}.jpg" for product_id in chunk["id"]]
        yield resolve_images(chunk, root, params.fetch_timeout_s)
