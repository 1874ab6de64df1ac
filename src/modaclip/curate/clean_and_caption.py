"""The clean-and-caption step: raw catalog parts in, clean captioned and split parts out.

Per raw part, `assess_part` does the per-image work (decode, check, convert, resize), Arrow table in
and out, with no state; a `Curator` then takes the assessed parts in catalog order to drop
duplicates, caption and split. This module's `clean_and_caption` (the `local` engine) runs both in
this process, part after part; the `ray` engine (curate/ray_engine.py) runs `assess_part` as Ray
tasks and the Curator on the driver, and so writes the same parts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from modaclip.core.catalog_io import count_rows, part_files, read_catalog_fields, write_parts
from modaclip.core.config import CaptionParams
from modaclip.core.errors import ModaclipError
from modaclip.core.fields import Column
from modaclip.core.schema import CATALOG_COLUMNS
from modaclip.curate.captions import caption_column, caption_templates, validate_templates
from modaclip.curate.cleaning import CatalogCleaner
from modaclip.curate.splits import SPLITS, assign_splits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogCaptioning:
    """The caption params fitted to one catalog: the roles (`type`, `colour`, ...) of the required attributes
    and templates resolved to the columns it fills, so every engine's workers and Curator see column names."""

    params: CaptionParams  # as written: required_attributes and templates still name roles
    required: list[Column]
    templates: list[str]  # over columns: "a photo of a {gender} {articleType}"


def for_catalog(params: CaptionParams, raw_dir: str | Path) -> CatalogCaptioning:
    """`params` fitted to the fields the whole raw catalog fills."""
    fields = read_catalog_fields(raw_dir)
    fitted = CatalogCaptioning(
        params, fields.resolve_all(params.required_attributes), caption_templates(params.templates, fields)
    )
    log.info("catalog fields: %s", fields.describe())
    log.info("required attributes: %s; caption templates: %s", fitted.required, fitted.templates)
    return fitted


def catalog_cleaner(captioning: CatalogCaptioning) -> CatalogCleaner:
    params = captioning.params
    return CatalogCleaner(captioning.required, params.min_image_side, params.image_size)


def assess_part(raw: pa.Table, captioning: CatalogCaptioning) -> pa.Table:
    """Every row of a raw part (or any block of raw rows), judged on its own: the work engines spread."""
    return pa.Table.from_pandas(catalog_cleaner(captioning).assess(raw.to_pandas()), preserve_index=False)


class Curator:
    """Cleans, captions and splits assessed parts in catalog order, and counts what it did for metrics/clean.json."""

    def __init__(self, captioning: CatalogCaptioning) -> None:
        validate_templates(captioning.templates, CATALOG_COLUMNS)
        self.templates = captioning.templates
        self.params = captioning.params
        self.cleaner = catalog_cleaner(captioning)
        self.no_caption = 0
        self.split_counts = dict.fromkeys(SPLITS, 0)

    def process(self, assessed: pa.Table) -> pd.DataFrame:
        kept = self.cleaner.admit(assessed.to_pandas())
        kept["captions"] = caption_column(kept, self.templates)
        has_caption = kept["captions"].map(len) > 0
        self.no_caption += int((~has_caption).sum())
        kept = kept[has_caption].copy()
        p = self.params
        kept["split"] = assign_splits(kept["id"], p.val_fraction, p.test_fraction, p.split_salt)
        for split, count in kept["split"].value_counts().items():
            self.split_counts[split] += int(count)
        return kept

    def process_all(self, assessed_parts: Iterable[pa.Table], total_rows: int) -> Iterator[pd.DataFrame]:
        """Yield processed parts; raising after the last one keeps an empty catalog from being written."""
        with tqdm(total=total_rows, desc="caption", unit="rows") as progress:
            for assessed in assessed_parts:
                yield self.process(assessed)
                progress.update(len(assessed))
        summary = self.summary()
        if summary["rows_kept"] == 0:
            reasons = ", ".join(f"{reason}: {n}" for reason, n in summary["dropped"].items() if n)
            raise ModaclipError(
                f"the catalog is empty after cleaning: all {summary['rows_in']} rows were dropped "
                f"({reasons or 'no rows in'}){self._empty_column_hint()}"
            )

    def _empty_column_hint(self) -> str:
        """Name required columns the catalog never fills (an image folder has no gender, say)."""
        empty = self.cleaner.never_filled()
        if not empty or self.cleaner.rows_in == 0:
            return ""
        return f"; no row has {empty}: remove them from caption.required_attributes"

    def summary(self) -> dict[str, Any]:
        cleaned = self.cleaner.summary()
        dropped = {**cleaned["dropped"], "no_caption": self.no_caption}
        return {
            "rows_in": cleaned["rows_in"],
            "rows_kept": sum(self.split_counts.values()),
            "rows_dropped": sum(dropped.values()),
            "dropped": dropped,
            "converted": cleaned["converted"],
            "splits": dict(self.split_counts),
        }


def clean_and_caption(raw_dir: str | Path, out_dir: str | Path, params: CaptionParams) -> dict[str, Any]:
    """Write the clean catalog to `out_dir`, one part per raw part, and return the counts for metrics/clean.json."""
    captioning = for_catalog(params, raw_dir)
    curator = Curator(captioning)
    assessed = (assess_part(pq.read_table(path), captioning) for path in part_files(raw_dir))
    write_parts(curator.process_all(assessed, count_rows(raw_dir)), out_dir)
    return curator.summary()
