"""Fetch the image bytes a catalog row points to: a file path or a URL.

Exports name images by path (relative to the export) or by URL; a file that is not there is
`missing_image`, a URL that fails or times out is `unreadable_image`. Neither stops the run: the
reason travels with the row to the cleaner, which counts it in metrics/clean.json.
"""

from __future__ import annotations

import http.client
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from modaclip.core.schema import IMAGE_ERROR_COLUMN

_URL_PREFIXES = ("http://", "https://", "file://")
_FETCH_THREADS = 8  # waiting on disks and servers, not on the CPU


class FetchedImage(NamedTuple):
    data: bytes | None
    error: str | None  # "missing_image" or "unreadable_image" when data is None


def fetch_image(reference: object, base_dir: Path, timeout_s: float) -> FetchedImage:
    """Bytes of the image a path (relative to `base_dir`) or URL names, or why there are none.

    Encoded bytes, and Hugging Face image cells ({"bytes": ..., "path": ...}), pass through.
    """
    if isinstance(reference, Mapping):
        reference = reference.get("bytes") or reference.get("path")
    if isinstance(reference, (bytes, bytearray)) and reference:
        return FetchedImage(bytes(reference), None)
    if not isinstance(reference, str) or not reference.strip():
        return FetchedImage(None, "missing_image")
    reference = reference.strip()
    if reference.lower().startswith(_URL_PREFIXES):
        return _fetch_url(reference, timeout_s)
    path = Path(reference)
    path = path if path.is_absolute() else base_dir / path
    try:
        return FetchedImage(path.read_bytes(), None)
    except FileNotFoundError:
        return FetchedImage(None, "missing_image")
    except OSError:
        return FetchedImage(None, "unreadable_image")


def fetch_images(references: Sequence[object], base_dir: Path, timeout_s: float) -> list[FetchedImage]:
    """`fetch_image` for each reference, several at a time, in the order given."""
    with ThreadPoolExecutor(_FETCH_THREADS) as pool:
        return list(pool.map(lambda ref: fetch_image(ref, base_dir, timeout_s), references))


def resolve_images(chunk: pd.DataFrame, base_dir: Path, timeout_s: float) -> pd.DataFrame:
    """The chunk with its `image` references replaced by bytes, and why any are missing."""
    fetched = fetch_images(chunk["image"].tolist(), base_dir, timeout_s)
    chunk = chunk.reset_index(drop=True)
    chunk["image"] = pd.Series([image.data for image in fetched], dtype=object)
    chunk[IMAGE_ERROR_COLUMN] = pd.Series([image.error for image in fetched], dtype=object)
    return chunk


def _fetch_url(url: str, timeout_s: float) -> FetchedImage:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return FetchedImage(response.read(), None)
    except (OSError, ValueError, http.client.HTTPException):  # URLError and timeouts are OSErrors
        return FetchedImage(None, "unreadable_image")
