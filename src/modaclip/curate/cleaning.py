"""Drop catalog rows that cannot train a model, and normalise the text and images of the rest.

Catalogs may be larger than memory, so `CatalogCleaner` is fed one chunk at a time, in two steps.
`assess` judges each row on its own (attributes, then decode, check and resize its image): the
costly per-image work, with no state, so chunks can be assessed in parallel (the Ray engine does).
`admit` then takes assessed chunks in catalog order and keeps what must outlive a chunk: the counts
for the summary and the hashes of kept images, so an image repeated in a later chunk is still
caught as a duplicate. Identical bytes always get the same verdict, so a row is a duplicate exactly
when an earlier row kept the same image, however the chunks were assessed.
"""

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass

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


VERDICT_COLUMN = "image_verdict"  # in assessed chunks: "" for a row whose image passed, else why it is dropped
MODE_COLUMN = "image_mode"  # in assessed chunks: the mode a passing image came in (e.g. "CMYK")


@dataclass(frozen=True)
class Judgement:
    """What `CatalogCleaner.assess` found about one row; the image fields stay empty unless it passed."""

    verdict: str  # "" when the row passed, else its drop reason
    _: KW_ONLY
    width: int = 0
    height: int = 0
    sha1: str = ""
    mode: str = ""
    stored: bytes | None = None  # the image bytes to keep


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
    bytes are kept as they came. Their limits are `CaptionParams`'; `required` is checked here, as
    it holds the columns the roles of `caption.required_attributes` resolved to in this catalog.
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
        """Rows returned by `clean` or `admit` so far, over all chunks."""
        return self.rows_in - sum(self.dropped.values())

    def clean(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """The chunk's kept rows, normalised, with image_width, image_height and image_sha1 added.

        Call once per chunk, in catalog order: duplicates are judged against every row kept so far.
        """
        return self.admit(self.assess(chunk))

    def assess(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """Every row of the chunk, normalised and judged on its own; changes no state.

        Each row gets VERDICT_COLUMN, the image facts (zero and empty where its image failed or was
        never read) and MODE_COLUMN; `image` holds the bytes to store, or None. Duplicates are left
        to `admit`; bytes repeated within the chunk are decoded once.
        """
        self._check_columns(chunk)
        frame = normalise_text_columns(chunk)
        missing = frame[list(self.required)].map(is_blank).any(axis=1)
        seen: dict[str, Judgement] = {}
        judgements = [
            Judgement("missing_attribute") if row_missing else Judgement(error) if error else self._judge(data, seen)
            for row_missing, error, data in zip(missing, _source_errors(frame), frame["image"])
        ]
        frame = frame.drop(columns=[IMAGE_ERROR_COLUMN], errors="ignore")
        index = frame.index
        frame["image"] = pd.Series([j.stored for j in judgements], index=index, dtype=object)
        frame["image_width"] = pd.Series([j.width for j in judgements], index=index, dtype="int64")
        frame["image_height"] = pd.Series([j.height for j in judgements], index=index, dtype="int64")
        frame["image_sha1"] = pd.Series([j.sha1 for j in judgements], index=index, dtype=str)
        frame[VERDICT_COLUMN] = pd.Series([j.verdict for j in judgements], index=index, dtype=str)
        frame[MODE_COLUMN] = pd.Series([j.mode for j in judgements], index=index, dtype=str)
        return frame

    def admit(self, assessed: pd.DataFrame) -> pd.DataFrame:
        """The kept rows of an assessed chunk, counting the others; call with chunks in catalog order.

        A row that passed is a duplicate_image when an earlier row kept the same image.
        """
        blank = assessed[list(self.required)].map(is_blank)
        for column in self.required:
            self.filled[column] += int((~blank[column]).sum())
        positions: list[int] = []
        judged = zip(assessed[VERDICT_COLUMN], assessed["image_sha1"], assessed[MODE_COLUMN])
        for position, (verdict, sha1, mode) in enumerate(judged):
            if not verdict and sha1 in self._kept_sha1:
                verdict = "duplicate_image"
            if verdict:
                self.dropped[verdict] += 1
                continue
            self._kept_sha1.add(sha1)
            if mode != "RGB":
                self.converted[mode] += 1
            positions.append(position)
        self.rows_in += len(assessed)
        return assessed.iloc[positions].drop(columns=[VERDICT_COLUMN, MODE_COLUMN])

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

    def _judge(self, data: object, seen: dict[str, Judgement]) -> Judgement:
        """The verdict on a row's image; `seen` holds the chunk's verdicts by image hash, since
        identical bytes would pass or fail every check identically."""
        if not isinstance(data, (bytes, bytearray)) or not data:
            return Judgement("unreadable_image")
        data = bytes(data)
        sha1 = hashlib.sha1(data).hexdigest()
        if sha1 not in seen:
            seen[sha1] = self._judge_image(data, sha1)
        return seen[sha1]

    def _judge_image(self, data: bytes, sha1: str) -> Judgement:
        decoded = decode_rgb(data, draft_side=self.image_size)
        if isinstance(decoded, str):
            return Judgement(decoded)
        if min(decoded.width, decoded.height) < self.min_image_side:
            return Judgement("tiny_image")
        return Judgement(
            "",
            width=decoded.width,
            height=decoded.height,
            sha1=sha1,
            mode=decoded.mode,
            stored=self._stored_bytes(data, decoded),
        )

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
