"""`csv:<file>` and `parquet:<glob>`: a shop's own export, one row per product.

The export names its columns its own way (`data.columns` maps ours to theirs) and points to each
image by a path (relative to the export's folder) or a URL; parquet may also hold the bytes.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modaclip.core.config import DataParams
from modaclip.core.errors import ModaclipError
from modaclip.ingest.bad_rows import BadRows
from modaclip.ingest.image_files import resolve_images
from modaclip.ingest.rows import source_column_names, to_catalog_rows
from modaclip.ingest.subset import take_subset


def _catalog_rows(frame: pd.DataFrame, params: DataParams, where: str) -> pd.DataFrame:
    """Our columns and types, the image column still holding the export's paths, URLs or bytes."""
    renames = source_column_names(params.columns, list(frame.columns), where)
    frame = frame[list(renames)].rename(columns=renames)
    if "image" not in frame.columns:
        raise ModaclipError(f"{where}: no image column; name yours with data.columns.image (it has {list(renames)})")
    if "id" not in frame.columns:
        raise ModaclipError(f"{where}: no id column; name yours with data.columns.id")
    rows = to_catalog_rows(frame, where)
    rows["image"] = pd.Series(frame["image"].tolist(), dtype=object)
    return rows


def read_csv_export(location: str, params: DataParams, _bad_rows: BadRows) -> Iterator[pd.DataFrame]:
    path = Path(location).expanduser()
    if not path.is_file():
        raise ModaclipError(f"data.source 'csv:{location}': file {path} does not exist")
    try:
        frame = pd.read_csv(path, dtype=object, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise ModaclipError(f"{path}: not a readable CSV file: {str(error).strip()}") from error
    rows = take_subset(_catalog_rows(frame, params, str(path)), params.limit, params.seed)
    for start in range(0, len(rows), params.chunk_rows):
        yield resolve_images(rows.iloc[start : start + params.chunk_rows], path.parent, params.fetch_timeout_s)


def read_parquet_export(location: str, params: DataParams, _bad_rows: BadRows) -> Iterator[pd.DataFrame]:
    """Stream the files a glob matches in batches; with data.limit, ids are read first to choose rows."""
    files = sorted(Path(name) for name in glob.glob(str(Path(location).expanduser()), recursive=True))
    if not files:
        raise ModaclipError(f"data.source 'parquet:{location}': no files match {location!r}")
    chosen = _chosen_ids(files, params) if params.limit else None
    for path in files:
        for batch in _open_parquet(path).iter_batches(batch_size=params.chunk_rows):
            rows = _catalog_rows(batch.to_pandas(), params, str(path))
            if chosen is not None:
                rows = rows[rows["id"].isin(chosen)]
            if len(rows):
                yield resolve_images(rows, path.parent, params.fetch_timeout_s)


def _open_parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise ModaclipError(f"{path}: not a readable parquet file: {error}") from error


def _chosen_ids(files: list[Path], params: DataParams) -> set[int]:
    """The ids of the data.limit subset, from the id columns alone (images are not read)."""
    id_column = params.columns.get("id", "id")
    frames = []
    for path in files:
        names = _open_parquet(path).schema_arrow.names
        if id_column not in names:
            raise ModaclipError(f"{path}: no id column {id_column!r}; name yours with data.columns.id (it has {names})")
        table = pq.read_table(path, columns=[id_column])
        frames.append(to_catalog_rows(table.to_pandas().rename(columns={id_column: "id"}), str(path))[["id"]])
    ids = pd.concat(frames, ignore_index=True)
    return set(take_subset(ids, params.limit, params.seed)["id"].tolist())
