"""`imagefolder:<dir>`: one sub-folder per class (`Tops/`, `Shoes/`, ...), the layout many teams start from.

The folder name is all that is known of a product, so it becomes both the label (articleType)
and the display name; caption templates then render whatever they can from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from modaclip.core.config import DataParams
from modaclip.core.errors import ModaclipError
from modaclip.ingest.bad_rows import BadRows
from modaclip.ingest.image_files import resolve_images
from modaclip.ingest.rows import to_catalog_rows
from modaclip.ingest.subset import take_subset

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def image_id(relative_path: str) -> int:
    """A stable id from the file's path in the folder: adding images never renumbers the others,
    so no product changes split."""
    return int.from_bytes(hashlib.sha1(relative_path.encode("utf-8")).digest()[:8], "big") >> 1


def list_image_folder(root: Path) -> pd.DataFrame:
    """One row per image file: id, articleType and productDisplayName (the class folder), image path."""
    classes = sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    if len(classes) < 2:
        raise ModaclipError(
            f"data.source 'imagefolder:{root}': needs at least two class sub-folders, found {len(classes)} "
            f"({[path.name for path in classes]})"
        )
    rows = []
    for folder in classes:
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                relative = path.relative_to(root).as_posix()
                rows.append({"id": image_id(relative), "articleType": folder.name,
                             "productDisplayName": folder.name, "image": relative})  # fmt: skip
    return pd.DataFrame(rows, columns=["id", "articleType", "productDisplayName", "image"])


def read_image_folder(location: str, params: DataParams, _bad_rows: BadRows) -> Iterator[pd.DataFrame]:
    root = Path(location).expanduser()
    if not root.is_dir():
        raise ModaclipError(f"data.source 'imagefolder:{location}': folder {root} does not exist")
    listing = list_image_folder(root)
    rows = to_catalog_rows(listing, str(root))
    rows["image"] = pd.Series(listing["image"].tolist(), dtype=object)
    rows = take_subset(rows, params.limit, params.seed)
    for start in range(0, len(rows), params.chunk_rows):
        yield resolve_images(rows.iloc[start : start + params.chunk_rows], root, params.fetch_timeout_s)
