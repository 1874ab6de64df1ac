"""One row per product id from `download` on: a source that repeats an id keeps the id's last row.

A live shop's export lists a re-listed product or a variant again under an id it already used, while
search results, `similar ID` and the gate's per-product join all name a product by its id. The rule:
**the last row of an id wins** (an export appends its newest rows last); each earlier row is dropped
and counted as `duplicate_id` in metrics/download.json beside the source's malformed rows, and past
data.max_bad_rows of the rows the download stops, naming the first repeated ids.

Rows stream in chunks (a catalog may be larger than memory), so which row of an id is its last is
known only at the end: the parts are written as the chunks come, their ids recorded, and then the
parts holding an earlier row of a repeated id are rewritten without it, before the folder appears.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modaclip.core.catalog_io import part_path, write_parts
from modaclip.ingest.bad_rows import BadRows

REASON = "duplicate_id"


def superseded(ids: np.ndarray) -> np.ndarray:
    """Per row, whether a later row has the same id (so this one is dropped)."""
    last_from_end = np.unique(ids[::-1], return_index=True)[1]
    kept = np.zeros(len(ids), dtype=bool)
    kept[len(ids) - 1 - last_from_end] = True
    return ~kept


class UniqueIdParts:
    """Writes a raw catalog's chunks as parts keeping each id's last row, counting the others in `bad_rows`."""

    def __init__(self, bad_rows: BadRows, source: str) -> None:
        self.bad_rows, self.source = bad_rows, source
        self.part_ids: list[np.ndarray] = []

    def write(self, chunks: Iterable[pd.DataFrame], out_dir: str | Path) -> int:
        """Write the parts to `out_dir`; returns the rows kept."""
        written = write_parts(self._recorded(chunks), out_dir, finish=self._drop_superseded)
        return written - self.bad_rows.counts[REASON]

    def _recorded(self, chunks: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for chunk in chunks:
            self.part_ids.append(chunk["id"].to_numpy(dtype=np.int64))
            yield chunk

    def _drop_superseded(self, folder: Path) -> None:
        ids = np.concatenate(self.part_ids) if self.part_ids else np.empty(0, np.int64)
        dropped = superseded(ids)
        malformed = self.bad_rows.total
        if not dropped.any():
            return
        for row in np.flatnonzero(dropped):
            self.bad_rows.skip(REASON, f"id {ids[row]} at row {row + 1}, repeated later")
        self.bad_rows.check(len(ids) + malformed, self.source)
        start = 0
        for number, part in enumerate(self.part_ids):
            drop = dropped[start : start + len(part)]
            start += len(part)
            if drop.any():
                path = part_path(folder, number)
                pq.write_table(pq.read_table(path).filter(pa.array(~drop)), path)
