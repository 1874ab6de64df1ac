"""Turn a table read from any source into raw catalog rows: our column names, our types.

Sources differ in names (`data.columns` maps ours to theirs), in types (ids stored as text, years
as floats) and in what they have at all (no productDisplayName); every reader ends with
`to_catalog_rows`, so the rest of the pipeline sees one shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from modaclip.core.errors import ModaclipError
from modaclip.core.schema import CATALOG_COLUMNS, IMAGE_ERROR_COLUMN

RAW_COLUMNS: tuple[str, ...] = (*CATALOG_COLUMNS, IMAGE_ERROR_COLUMN)
_TEXT_COLUMNS = tuple(c for c in CATALOG_COLUMNS if c not in ("id", "year", "image"))


def check_mapping(mapping: Mapping[str, str]) -> None:
    """`data.columns` may only map our own columns."""
    unknown = [ours for ours in mapping if ours not in CATALOG_COLUMNS]
    if unknown:
        raise ModaclipError(f"data.columns maps unknown columns {unknown}; keys must be ours: {list(CATALOG_COLUMNS)}")


def source_column_names(mapping: Mapping[str, str], available: Sequence[str], where: str) -> dict[str, str]:
    """{their column: our column} for every column of ours the source has.

    A column named in `data.columns` must exist, since a typo there would otherwise silently
    empty that column; unmapped columns of ours are taken when the source has them by our name.
    """
    check_mapping(mapping)
    missing = [theirs for theirs in mapping.values() if theirs not in available]
    if missing:
        raise ModaclipError(
            f"{where}: data.columns names columns {missing} that it does not have (it has {list(available)})"
        )
    renames = {theirs: ours for ours, theirs in mapping.items()}
    for ours in CATALOG_COLUMNS:
        if ours not in mapping and ours in available and ours not in renames:
            renames[ours] = ours
    return renames


def select_columns(frame: pd.DataFrame, mapping: Mapping[str, str], where: str) -> pd.DataFrame:
    """The frame's columns that map to ours, renamed to ours; the others are dropped."""
    renames = source_column_names(mapping, list(frame.columns), where)
    return frame[list(renames)].rename(columns=renames)


def parse_ids(values: pd.Series, where: str) -> pd.Series:
    """Product ids as int64; ids stored as text ("15970") or floats (15970.0) are accepted.

    Ids pick a product's split and name it in search results, so a row without a whole-number id
    is an error naming the row, not a row quietly dropped.
    """
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers % 1 != 0)
    if bad.any():
        position = int(bad.to_numpy().nonzero()[0][0])
        raise ModaclipError(
            f"{where}: row {position + 1} has id {values.iloc[position]!r}, not a whole number; "
            "map data.columns.id to a numeric product id column"
        )
    return numbers.astype("int64")


def to_catalog_rows(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """A frame with exactly RAW_COLUMNS: text as str or None, id int64, year Int64 (missing allowed).

    `frame` holds some of our columns already named ours; absent ones become missing values.
    """
    size = len(frame)
    rows: dict[str, pd.Series] = {"id": parse_ids(frame["id"], where).reset_index(drop=True)}
    for column in _TEXT_COLUMNS:
        values = frame[column].tolist() if column in frame.columns else [None] * size
        rows[column] = pd.Series([_text(value) for value in values], dtype=object)
    years = frame["year"] if "year" in frame.columns else pd.Series([None] * size, dtype=object)
    rows["year"] = pd.to_numeric(years, errors="coerce").round().astype("Int64").reset_index(drop=True)
    images = frame["image"].tolist() if "image" in frame.columns else [None] * size
    rows["image"] = pd.Series([_image_bytes(value) for value in images], dtype=object)
    errors = frame[IMAGE_ERROR_COLUMN].tolist() if IMAGE_ERROR_COLUMN in frame.columns else [None] * size
    rows[IMAGE_ERROR_COLUMN] = pd.Series(errors, dtype=object)
    return pd.DataFrame({column: rows[column] for column in RAW_COLUMNS})


def _text(value: object) -> str | None:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _image_bytes(value: object) -> bytes | None:
    """Encoded bytes from bytes, or from a Hugging Face Image cell ({"bytes": ..., "path": ...})."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value) or None
    if isinstance(value, Mapping):
        return _image_bytes(value.get("bytes"))
    return None
