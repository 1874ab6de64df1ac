"""Drop catalog rows that cannot train a model, and normalise the text and images of the rest.

Catalogs may be larger than memory, so `CatalogCleaner` is fed one chunk at a time and keeps
what must outlive a chunk: the counts for the summary and the hashes of kept images, so an
image repeated in a later chunk is still caught as a duplicate.
"""

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd

from modaclip.core.errors import ModaclipError
from modaclip.core.schema import ATTRIBUTE_COLUMNS, CATALOG_COLUMNS, IMAGE_ERROR_COLUMN
from modaclip.curate.image_prep import DecodedImage, decode_rgb, encode_jpeg, fit_on_white

# Checked in this order, cheap checks first; a row is counted under the first reason it fails.
# missing_image comes from the source (a file named by the catalog is not on disk).
DROP_REASONS: tuple[str, ...] = (
    "missing_attribute",
    "missing_image",
    "unreadable_image",
    "decompression_bomb",
    "unsupported_mode",
    "tiny_image",
    "duplicate_image",
)
DISPLAY_NAME_COLUMN = "productDisplayName"


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
    """Cleans a catalog chunk by chunk, counting every dropped row under one reason.

    With `image_size`, kept images are stored as RGB JPEGs of that side (aspect kept, padded on
    white), so later stages never decode a full-size or odd-mode file again; without it their
    bytes are kept as they came.
    """

    def __init__(self, required: Sequence[str], min_image_side: int, image_size: int | None = None) -> None:
        if isinstance(required, str):
            raise ModaclipError(f"caption.required_attributes must be a list of column names, got {required!r}")
        unknown = [column for column in required if column not in CATALOG_COLUMNS]
        if unknown:
            raise ModaclipError(
                f"caption.required_attributes names unknown columns {unknown}; "
                f"known columns are {list(CATALOG_COLUMNS)}"
            )
        if min_image_side < 1:
            raise ModaclipError(f"caption.min_image_side must be at least 1, got {min_image_side}")
        if image_size is not None and image_size < 1:
            raise ModaclipError(f"caption.image_size must be at least 1, got {image_size}")
        self.required = tuple(required)
        self.min_image_side = min_image_side
        self.image_size = image_size
        self.rows_in = 0
        self.dropped = {reason: 0 for reason in DROP_REASONS}
        self.converted: Counter[str] = Counter()
        self.filled = dict.fromkeys(self.required, 0)
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
        blank = frame[list(self.required)].map(is_blank)
        for column in self.required:
            self.filled[column] += int((~blank[column]).sum())
        missing = blank.any(axis=1)
        source_errors = _source_errors(frame)
        positions: list[int] = []
        facts: list[ImageFacts] = []
        images: list[object] = []
        for position, (row_missing, error, data) in enumerate(zip(missing, source_errors, frame["image"])):
            verdict = "missing_attribute" if row_missing else error or self._admit(data)
            if isinstance(verdict, str):
                self.dropped[verdict] += 1
                continue
            fact, image = verdict
            positions.append(position)
            facts.append(fact)
            images.append(image)
        self.rows_in += len(frame)
        kept = _with_image_facts(frame.iloc[positions], facts)
        kept["image"] = pd.Series(images, index=kept.index, dtype=object)
        return kept.drop(columns=[IMAGE_ERROR_COLUMN], errors="ignore")

    def summary(self) -> dict[str, object]:
        """Counts for a JSON metrics file; `converted` counts kept images by the mode they came in."""
        return {
            "rows_in": self.rows_in,
            "rows_kept": self.rows_kept,
            "dropped": dict(self.dropped),
            "converted": dict(sorted(self.converted.items())),
        }

    def never_filled(self) -> list[str]:
        """Required columns no row had a value in: a catalog that lacks them, not rows that do."""
        return [column for column, count in self.filled.items() if count == 0]

    def _check_columns(self, chunk: pd.DataFrame) -> None:
        needed = dict.fromkeys(("id", "image", *self.required))
        absent = [column for column in needed if column not in chunk.columns]
        if absent:
            raise ModaclipError(f"catalog chunk lacks required columns {absent}")

    def _admit(self, data: object) -> tuple[ImageFacts, object] | str:
        """Record an image as kept and return its facts and stored bytes, or the reason to drop it.

        A row with the bytes of an already-kept image is a duplicate without being decoded:
        identical bytes would pass every image check again.
        """
        if not isinstance(data, (bytes, bytearray)) or not data:
            return "unreadable_image"
        data = bytes(data)
        sha1 = hashlib.sha1(data).hexdigest()
        if sha1 in self._kept_sha1:
            return "duplicate_image"
        decoded = decode_rgb(data, draft_side=self.image_size)
        if isinstance(decoded, str):
            return decoded
        if min(decoded.width, decoded.height) < self.min_image_side:
            return "tiny_image"
        self._kept_sha1.add(sha1)
        if decoded.mode != "RGB":
            self.converted[decoded.mode] += 1
        return ImageFacts(decoded.width, decoded.height, sha1), self._stored_bytes(data, decoded)

    def _stored_bytes(self, data: bytes, decoded: DecodedImage) -> bytes:
        if self.image_size is None:
            return data
        return encode_jpeg(fit_on_white(decoded.rgb, self.image_size))


def _source_errors(frame: pd.DataFrame) -> list[str | None]:
    """Per row, the reason the source already found its image unusable (None when it did not)."""
    if IMAGE_ERROR_COLUMN not in frame.columns:
        return [None] * len(frame)
    errors = [None if is_blank(value) else str(value) for value in frame[IMAGE_ERROR_COLUMN]]
    unknown = sorted({error for error in errors if error is not None and error not in DROP_REASONS})
    if unknown:
        raise ModaclipError(f"catalog column {IMAGE_ERROR_COLUMN!r} holds unknown reasons {unknown}")
    return errors


def _with_image_facts(kept: pd.DataFrame, facts: Sequence[ImageFacts]) -> pd.DataFrame:
    kept = kept.copy()
    kept["image_width"] = pd.Series([f.width for f in facts], index=kept.index, dtype="int64")
    kept["image_height"] = pd.Series([f.height for f in facts], index=kept.index, dtype="int64")
    kept["image_sha1"] = pd.Series([f.sha1 for f in facts], index=kept.index, dtype=str)
    return kept
