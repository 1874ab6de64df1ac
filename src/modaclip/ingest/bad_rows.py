"""Source rows skipped and counted, too malformed to read or repeating an id: one broken line must not stop a
million rows.

A reader that meets a row it cannot parse (a styles.csv line with more fields than its header and
no free-text last column to absorb them, an id that is not a number) hands it to `BadRows.skip`
and goes on. Past `data.max_bad_rows` of the rows read, the file is not a catalog with a few broken
lines but a wrong file or a wrong mapping, and `check` stops the read naming the first bad lines.
Rows that repeat an earlier row's id are counted here too, as `duplicate_id` (ingest/unique_ids.py).
"""

from __future__ import annotations

import logging
from collections import Counter

from modaclip.core.errors import ModaclipError

log = logging.getLogger(__name__)
NAMED = 5  # bad lines named in the error and the log


class BadRows:
    """Skipped source rows by reason, with the first few located, and the share that stops a read."""

    def __init__(self, max_share: float) -> None:
        self.max_share = max_share
        self.counts: Counter[str] = Counter()
        self.first: list[str] = []

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def skip(self, reason: str, where: str) -> None:
        """Count a skipped row; `where` locates it for a person, e.g. "line 12"."""
        self.counts[reason] += 1
        if len(self.first) < NAMED:
            self.first.append(f"{where} ({reason})")

    def check(self, rows_read: int, source: str) -> None:
        """Stop when more than data.max_bad_rows of the `rows_read` rows of `source` were skipped."""
        if not self.total:
            return
        named = ", ".join(self.first) + (", ..." if self.total > len(self.first) else "")
        share = self.total / max(rows_read, 1)
        if share > self.max_share:
            raise ModaclipError(
                f"{source}: {self.total} of {rows_read} rows are malformed or repeat an id ({share:.2%}, more than "
                f"data.max_bad_rows {self.max_share:.2%}): {named}"
            )
        log.warning("%s: skipped %d malformed or repeated rows of %d: %s", source, self.total, rows_read, named)

    def summary(self) -> dict[str, object]:
        """For the download stage's metrics: how many rows were skipped, and why."""
        return {"rows_skipped": self.total, "skipped": dict(sorted(self.counts.items()))}
