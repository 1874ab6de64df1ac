"""The texts each product contributes to the field-aware loss (`train.fields`), rendered once before training.

`train.fields` maps text templates to weights. Templates name roles (`{type}`, `{colour}`,
`{gender}`, `{title}`) or columns; a template whose role this catalog lacks is left out.
`{captions}` is the product's caption, sampled among its captions each epoch like the plain losses'.
`{queries}` is one of the product's logged shopper queries (train/logged_queries.py), drawn each epoch;
a run without feedback pairs leaves it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from modaclip.core.errors import ModaclipError
from modaclip.core.fields import CAPTIONS_FIELD, QUERIES_FIELD, CatalogFields, render_template


@dataclass(frozen=True)
class FieldTexts:
    """The resolved train.fields: the caption's weight, the other templates with their weights, and the logged
    queries' weight (0: no `{queries}` field)."""

    caption_weight: float
    templates: tuple[str, ...]
    weights: tuple[float, ...]
    queries_weight: float = 0.0

    @classmethod
    def resolve(cls, fields: Mapping[str, float], catalog: CatalogFields, has_queries: bool = False) -> FieldTexts:
        """Roles replaced by this catalog's columns; templates it cannot fill, zero weights and, without logged
        queries (`has_queries`), `{queries}` left out."""
        templates, weights = [], []
        for template, weight in fields.items():
            special = template in (CAPTIONS_FIELD, QUERIES_FIELD)
            resolved = catalog.resolve_template(template) if not special else None
            if resolved is not None and weight > 0:
                templates.append(resolved)
                weights.append(weight)
        caption_weight = fields.get(CAPTIONS_FIELD, 0.0)
        queries_weight = fields.get(QUERIES_FIELD, 0.0) if has_queries else 0.0
        if caption_weight <= 0 and queries_weight <= 0 and not templates:
            raise ModaclipError(
                f"train.fields: none of {list(fields)} can be written from this catalog's fields ({catalog.describe()})"
            )
        return cls(caption_weight, tuple(templates), tuple(weights), queries_weight)

    def part_weights(self) -> tuple[float, ...]:
        """The loss parts' weights: the caption's, each template's, then (when on) the logged queries'."""
        queries = (self.queries_weight,) if self.queries_weight > 0 else ()
        return (self.caption_weight, *self.weights, *queries)

    def render(self, frame: pd.DataFrame) -> list[tuple[str | None, ...]]:
        """Each row's text per template (None where the row lacks a field), in template order."""
        return [
            tuple(render_template(template, row) for template in self.templates) for row in frame.to_dict("records")
        ]

    def describe(self) -> str:
        parts = ([f"{CAPTIONS_FIELD} {self.caption_weight:g}"] if self.caption_weight > 0 else []) + [
            f"{template!r} {weight:g}" for template, weight in zip(self.templates, self.weights)
        ]
        parts += [f"{QUERIES_FIELD} {self.queries_weight:g}"] if self.queries_weight > 0 else []
        return ", ".join(parts)
