"""Catalog tables on disk: a folder of parquet parts, written atomically and read back in chunks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modaclip.core.atomic import atomic_directory
from modaclip.core.errors import ModaclipError
from modaclip.core.fields import FIELD_COLUMNS, CatalogFields


def write_parts(
    chunks: Iterable[pd.DataFrame], out_dir: str | Path, finish: Callable[[Path], None] | None = None
) -> int:
    """Write each chunk as `part-NNNNN.parquet` into a folder that appears only when all are written.

    `finish`, when given, is called on the complete temporary folder before it takes `out_dir`'s place
    (ingest/unique_ids.py rewrites parts there). Returns the rows written by the chunks.
    """
    rows = 0
    with atomic_directory(out_dir) as tmp:
        for number, chunk in enumerate(chunks):
            table = pa.Table.from_pandas(chunk.reset_index(drop=True), preserve_index=False)
            pq.write_table(table, part_path(tmp, number))
            rows += len(chunk)
        if finish is not None:
            finish(tmp)
    return rows


def part_path(directory: Path, number: int) -> Path:
    return directory / f"part-{number:05d}.parquet"


def part_files(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    files = sorted(directory.glob("part-*.parquet"))
    if not files:
        raise ModaclipError(f"{directory}: no catalog parts (part-*.parquet) found; run the earlier stages first")
    return files


def count_rows(directory: str | Path) -> int:
    """Rows in a catalog folder, from the parts' footers (no data read)."""
    return sum(pq.read_metadata(path).num_rows for path in part_files(directory))


def iter_chunks(directory: str | Path, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """Yield the catalog one part at a time, so memory holds one part, not the whole catalog."""
    for path in part_files(directory):
        yield pq.read_table(path, columns=list(columns) if columns else None).to_pandas()


def read_catalog(
    directory: str | Path,
    columns: Sequence[str] | None = None,
    split: str | None = None,
    ids: Sequence[int] | None = None,
) -> pd.DataFrame:
    """The whole catalog, or the rows of one split or of some product ids, as one frame."""
    filters = []
    if split is not None:
        filters.append(("split", "=", split))
    if ids is not None:
        filters.append(("id", "in", [int(i) for i in ids]))
    tables = [
        pq.read_table(path, columns=list(columns) if columns else None, filters=filters or None)
        for path in part_files(directory)
    ]
    # A column all-missing in one part is typed null there; promotion lets it join its typed parts.
    return pa.concat_tables(tables, promote_options="default").to_pandas().reset_index(drop=True)


def read_catalog_fields(directory: str | Path) -> CatalogFields:
    """The fields a catalog folder fills, reading only its text columns (never its images)."""
    names = set(pq.read_schema(part_files(directory)[0]).names)
    columns = [column for column in FIELD_COLUMNS if column in names]
    return CatalogFields.union(CatalogFields.of(chunk) for chunk in iter_chunks(directory, columns))
