"""Attribute filters for search: `gender=Women`, `baseColour=Red,Blue`, `price=10..50`.

A filter turns into a boolean mask over the catalog rows; search then ranks only the rows the
mask allows, so a filtered query still returns k hits whenever k products match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from modaclip.core.errors import ModaclipError
from modaclip.core.schema import ATTRIBUTE_COLUMNS

# Columns a filter may name when the catalog has them; numeric ones take `low..high` ranges.
FILTERABLE_COLUMNS: tuple[str, ...] = (*ATTRIBUTE_COLUMNS, "year", "price")


@dataclass(frozen=True)
class AttributeFilter:
    """column equals one of `values` (case-insensitive), or lies in [low, high] for a numeric range."""

    column: str
    values: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None

    @classmethod
    def parse(cls, text: str) -> AttributeFilter:
        column, sep, value = text.partition("=")
        column, value = column.strip(), value.strip()
        if not sep or not column or not value:
            raise ModaclipError(f"filter {text!r}: expected ATTRIBUTE=VALUE such as gender=Women or price=10..50")
        if ".." in value:
            return cls(column, low=_bound(text, value.split("..")[0]), high=_bound(text, value.split("..")[1]))
        return cls(column, values=tuple(v.strip() for v in value.split(",") if v.strip()))

    def describe(self) -> str:
        if self.values:
            return f"{self.column}={','.join(self.values)}"
        return f"{self.column}={'' if self.low is None else self.low}..{'' if self.high is None else self.high}"

    def mask(self, info: pd.DataFrame) -> np.ndarray:
        column = info[self.column]
        if self.values:
            wanted = {value.lower() for value in self.values}
            return column.astype("string").str.lower().isin(wanted).fillna(False).to_numpy(bool)
        numbers = pd.to_numeric(column, errors="coerce")
        if numbers.isna().all():
            raise ModaclipError(
                f"filter {self.describe()}: {self.column} is not numeric, so it takes values, not a range"
            )
        low = -np.inf if self.low is None else self.low
        high = np.inf if self.high is None else self.high
        return numbers.between(low, high).fillna(False).to_numpy(bool)


def _bound(text: str, value: str) -> float | None:
    if not value.strip():
        return None
    try:
        return float(value)
    except ValueError as err:
        raise ModaclipError(f"filter {text!r}: range bound {value!r} is not a number") from err


def parse_filters(texts: Sequence[str] | None) -> list[AttributeFilter]:
    return [AttributeFilter.parse(text) for text in texts or ()]


def filter_mask(info: pd.DataFrame, filters: Sequence[AttributeFilter]) -> np.ndarray | None:
    """Rows allowed by all filters (None when there are none); unknown or empty-matching filters are errors."""
    if not filters:
        return None
    known = [column for column in FILTERABLE_COLUMNS if column in info.columns]
    allowed = np.ones(len(info), dtype=bool)
    for item in filters:
        if item.column not in known:
            raise ModaclipError(
                f"filter {item.describe()}: unknown attribute {item.column!r} (filterable: {', '.join(known)})"
            )
        matches = item.mask(info)
        if not matches.any():
            raise ModaclipError(f"filter {item.describe()}: no product matches{_values_hint(info[item.column], item)}")
        allowed &= matches
    return allowed


def _values_hint(column: pd.Series, item: AttributeFilter) -> str:
    if not item.values:
        return ""
    values = sorted(column.dropna().astype(str).unique())
    return f" (values: {', '.join(values[:20])}{', ...' if len(values) > 20 else ''})"
