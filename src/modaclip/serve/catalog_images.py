"""Product images held in memory for serving, looked up by product id.

A result page shows a few dozen images; reading each one from the catalog's parquet parts costs a
scan of a whole row group (about 40 ms on the default catalog), so the service reads the image
column once at start-up instead. The clean stage stores resized images (128 px by default, a few
KB each), so 100k products hold a few hundred MB.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from modaclip.core.catalog_io import iter_chunks


class CatalogImages:
    """Encoded image bytes by product id; ids are dictionary keys, never parts of a file path."""

    def __init__(self, images: dict[int, bytes]) -> None:
        self._images = images

    @classmethod
    def load(cls, catalog_dir: str | Path, ids: Iterable[int]) -> CatalogImages:
        """The images of `ids` (the searchable products), read one catalog part at a time."""
        wanted = {int(i) for i in ids}
        images: dict[int, bytes] = {}
        for chunk in iter_chunks(catalog_dir, columns=["id", "image"]):
            for product_id, data in zip(chunk["id"].tolist(), chunk["image"].tolist()):
                if product_id in wanted and data:
                    images.setdefault(product_id, data)
        return cls(images)

    def get(self, product_id: int) -> bytes | None:
        return self._images.get(product_id)

    @property
    def nbytes(self) -> int:
        return sum(len(data) for data in self._images.values())


def image_media_type(data: bytes) -> str:
    """The MIME type of encoded image bytes, read from the header only (no decoding)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format or "", "application/octet-stream")
    except OSError:
        return "application/octet-stream"
