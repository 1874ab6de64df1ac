"""Drop catalog rows that cannot train a model, and normalise the text of the rest.

Catalogs may be larger than memory, so `CatalogCleaner` is fed one chunk at a time and keeps
what must outlive a chunk: the counts for the summary and the hashes of kept images, so an
image repeated in a later chunk is still caught as a duplicate.
"""

import hashlib
import io
from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd
from PIL import Image, UnidentifiedImageError

from modaclip.errors import ModaclipError
from modaclip.schema import ATTRIBUTE_COLUMNS, CATALOG_COLUMNS

# Checked in this order, cheap checks first; a row is counted under the first reason it fails.
DROP_REASONS: tuple[str, ...] = (
    "missing_attribute",
    "unreadable_image",
    "tiny_image",
    "duplicate_image",
)
DISPLAY_NAME_COLUMN = "productDisplayName"
# Pillow's ways of saying "these bytes are not an image it can decode".
_UNREADABLE_ERRORS = (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError)


class ImageFacts(NamedTuple):
    """What the cleaner learns about a kept image and adds to its row."""

    width: int
    height: int
    sha1: str


def clean_text(value: object) -> str | None:
    """Strip and collapse whitespace; missing or blank values become None."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return " ".join(str(value).split()) or None


def clean_attribute(value: object) -> str | None:
    """Like `clean_text`, and capitalise each word so "MEN", "men" and "Men" are one value."""
    text = clean_text(value)
    return None if text is None else " ".join(word.capitalize() for word in text.split(" "))


def is_blank(value: object) -> bool:
    """True for None, NaN/NA and empty strings or bytes."""
    if isinstance(value, (str, bytes)):
        return not value
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of encoded image bytes, or None when Pillow cannot decode them.

    The image is fully loaded, not just opened, because truncated files only fail on load.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.size
    except _UNREADABLE_ERRORS:
        return None


def normalise_text_columns(chunk: pd.DataFrame) -> pd.DataFrame:
    """A copy of `chunk` with its attribute and display-name columns cleaned."""
    frame = chunk.copy()
    for column in ATTRIBUTE_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].map(clean_attribute)
    if DISPLAY_NAME_COLUMN in frame.columns:
        frame[DISPLAY_NAME_COLUMN] = frame[DISPLAY_NAME_COLUMN].map(clean_text)
    return frame


class CatalogCleaner:
    """Cleans a catalog chunk by chunk, counting every dropped row under one reason."""

    def __init__(self, required: Sequence[str], min_image_side: int) -> None:
        if isinstance(required, str):
            raise ModaclipError(
                f"caption.required_attributes must be a list of column names, got {required!r}"
            )
        unknown = [column for column in required if column not in CATALOG_COLUMNS]
        if unknown:
            raise ModaclipError(
                f"caption.required_attributes names unknown columns {unknown}; "
                f"known columns are {list(CATALOG_COLUMNS)}"
            )
        if min_image_side < 1:
            raise ModaclipError(f"caption.min_image_side must be at least 1, got {min_image_side}")
        self.required = tuple(required)
        self.min_image_side = min_image_side
        self.rows_in = 0
        self.dropped = {reason: 0 for reason in DROP_REASONS}
        self._kept_sha1: set[str] = set()

    @property
    def rows_kept(self) -> int:
        """Rows returned by `clean` so far, over all chunks."""
        return self.rows_in - sum(self.dropped.values())

    def clean(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """The chunk's kept rows, normalised, with image_width, image_height and image_sha1 added.

        Call once per chunk: duplicates are judged against every row kept so far.
        """
        self._check_columns(chunk)
        frame = normalise_text_columns(chunk)
        missing = frame[list(self.required)].map(is_blank).any(axis=1)
        positions: list[int] = []
        facts: list[ImageFacts] = []
        for position, (row_missing, data) in enumerate(zip(missing, frame["image"])):
            verdict = "missing_attribute" if row_missing else self._admit(data)
            if isinstance(verdict, ImageFacts):
                positions.append(position)
                facts.append(verdict)
            else:
                self.dropped[verdict] += 1
        self.rows_in += len(frame)
        return _with_image_facts(frame.iloc[positions], facts)

    def summary(self) -> dict[str, object]:
        """Counts for a JSON metrics file."""
        return {"rows_in": self.rows_in, "rows_kept": self.rows_kept, "dropped": dict(self.dropped)}

    def _check_columns(self, chunk: pd.DataFrame) -> None:
        needed = dict.fromkeys(("id", "image", *self.required))
        absent = [column for column in needed if column not in chunk.columns]
        if absent:
            raise ModaclipError(f"catalog chunk lacks required columns {absent}")

    def _admit(self, data: object) -> ImageFacts | str:
        """Record an image as kept and return its facts, or return the reason to drop it.

        A row with the bytes of an already-kept image is a duplicate without being decoded:
        identical bytes would pass the readability and size checks again.
        """
        if not isinstance(data, (bytes, bytearray)) or not data:
            return "unreadable_image"
        sha1 = hashlib.sha1(data).hexdigest()
        if sha1 in self._kept_sha1:
            return "duplicate_image"
        size = image_size(bytes(data))
        if size is None:
            return "unreadable_image"
        if min(size) < self.min_image_side:
            return "tiny_image"
        self._kept_sha1.add(sha1)
        return ImageFacts(width=size[0], height=size[1], sha1=sha1)


def _with_image_facts(kept: pd.DataFrame, facts: Sequence[ImageFacts]) -> pd.DataFrame:
    kept = kept.copy()
    kept["image_width"] = pd.Series([f.width for f in facts], index=kept.index, dtype="int64")
    kept["image_height"] = pd.Series([f.height for f in facts], index=kept.index, dtype="int64")
    kept["image_sha1"] = pd.Series([f.sha1 for f in facts], index=kept.index, dtype=str)
    return kept
