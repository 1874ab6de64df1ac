"""The fields a catalog has, and the params that name fields by role so they fit any catalog.

Catalogs differ: the Kaggle table has gender, articleType, baseColour and a title; the copy most
CLIP fashion examples load from the Hub (ceyda/fashion-products-small) has only gender,
masterCategory and subCategory. Params that name fields (`caption.required_attributes`,
`train.fields`, `evaluate.zero_shot_fields`, ...) may therefore name a *role* instead of a column:

- `type`: the most specific product-type column the catalog fills: articleType, else subCategory,
  else masterCategory;
- `colour`: baseColour; `gender`: gender; `title`: productDisplayName.

A role is resolved to the catalog's own column; a role the catalog lacks is left out (and the
stage's log says so). Any other column named outright is taken as it is, present or not, so a
param can always override what a role would choose (`gender` is a role: left out where no row
has one).

The types keep the two apart: params hold field names (`str`: a role or a column named outright)
as written, and only `CatalogFields` turns them into a `Column`, what a frame's rows are read by.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NewType

import pandas as pd

from modaclip.core.errors import ModaclipError
from modaclip.core.schema import ATTRIBUTE_COLUMNS

Column = NewType("Column", str)  # a catalog column a field name resolved to (see the module docstring)

TITLE_COLUMN = "productDisplayName"
FIELD_COLUMNS: tuple[str, ...] = (*ATTRIBUTE_COLUMNS, TITLE_COLUMN)
ROLES: dict[str, tuple[str, ...]] = {
    "type": ("articleType", "subCategory", "masterCategory"),
    "colour": ("baseColour",),
    "gender": ("gender",),
    "title": (TITLE_COLUMN,),
}
AUTO = "auto"


@dataclass(frozen=True)
class CatalogFields:
    """The text columns a catalog fills (at least one row has a value), in schema order."""

    filled: tuple[Column, ...]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> CatalogFields:
        """The fields of a frame holding (some of) a catalog's rows."""
        filled = (column for column in FIELD_COLUMNS if column in frame.columns and _any_value(frame[column]))
        return cls(tuple(Column(column) for column in filled))

    @classmethod
    def union(cls, parts: Iterable[CatalogFields]) -> CatalogFields:
        """The fields of a catalog read in chunks: a column counts if any chunk fills it."""
        seen = {column for part in parts for column in part.filled}
        return cls(tuple(Column(column) for column in FIELD_COLUMNS if column in seen))

    def column(self, role: str) -> Column | None:
        """The column playing `role` in this catalog, or None when it has none."""
        return next((Column(column) for column in ROLES[role] if column in self.filled), None)

    def resolve(self, name: str) -> Column | None:
        """A role's column (None if the catalog lacks it); any other name is a column taken as given."""
        return self.column(name) if name in ROLES else Column(name)

    def resolve_all(self, names: Sequence[str]) -> list[Column]:
        """`names` with roles resolved and the roles this catalog lacks left out; each column once."""
        return list(dict.fromkeys(column for name in names if (column := self.resolve(name)) is not None))

    def resolve_template(self, template: str) -> str | None:
        """The template with each {role} replaced by its {column}; None when it needs a role the catalog lacks."""
        columns = {field: self.resolve(field) for field in template_fields(template)}
        if any(column is None for column in columns.values()):
            return None
        return template.format_map({field: f"{{{column}}}" for field, column in columns.items()})

    def caption_templates(self) -> list[str]:
        """`caption.templates: auto`: the default captions, in the words this catalog has.

        With gender, colour, type and title these are "a photo of a {gender} {baseColour}
        {articleType}", "{productDisplayName}" and "{baseColour} {articleType} for {gender}"; with
        fewer fields the same sentences leave out what is missing. The first is the query of the
        text->image benchmarks.
        """
        described = " ".join(f"{{{c}}}" for c in (self.column("colour"), self.column("type")) if c)
        gender = self.column("gender")
        templates = []
        if gender or described:
            templates.append(" ".join(word for word in ("a photo of a", gender and f"{{{gender}}}", described) if word))
        if self.column("title"):
            templates.append(f"{{{TITLE_COLUMN}}}")
        if gender and described:
            templates.append(f"{described} for {{{gender}}}")
        return templates

    def describe(self) -> str:
        """One line for a stage's log: which column plays each role, and what else the catalog has."""
        roles = ", ".join(f"{role}={self.column(role) or '(none)'}" for role in ROLES)
        return f"{roles}; filled columns: {', '.join(self.filled) or '(none)'}"


def template_fields(template: str) -> list[str]:
    """The field names a template uses, in order of first use, each once."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ModaclipError(f"template {template!r} is not a valid format string: {error}") from error
    return list(dict.fromkeys(field for _, field, _, _ in parsed if field is not None))


def render_template(template: str, row: Mapping[str, object]) -> str | None:
    """The template filled from a row, or None when the row lacks one of its fields.

    Attribute values are lowercased so texts read the same whatever a catalog's casing and
    whatever the tokenizer does with case; the title is kept as written, brand and all.
    """
    values = {field: _field_text(field, row.get(field)) for field in template_fields(template)}
    if any(value is None for value in values.values()):
        return None
    return " ".join(template.format_map(values).split())


def check_renders(template: str, fields: Sequence[str]) -> None:
    """Render with placeholder text, since parsing alone misses bad conversions and specs."""
    try:
        template.format_map(dict.fromkeys(fields, "text"))
    except (ValueError, KeyError, IndexError) as error:
        raise ModaclipError(f"template {template!r} is not a valid format string: {error!r}") from error


def check_names(key: str, names: Sequence[str], allowed: Sequence[str] = FIELD_COLUMNS) -> None:
    """Every name is a role or an allowed column, or the param `key` is named in the error."""
    unknown = [name for name in names if name not in ROLES and name not in allowed]
    if unknown:
        raise ModaclipError(f"{key}: unknown field(s) {unknown} (roles: {list(ROLES)}; columns: {list(allowed)})")


def _field_text(field: str, value: object) -> str | None:
    """The text a value puts into a template, or None when the value is missing or blank."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a year column holding NaN is float: 2012.0 should read 2012
    text = " ".join(str(value).split())
    if not text:
        return None
    return text if field == TITLE_COLUMN else text.lower()


def _any_value(values: pd.Series) -> bool:
    return bool(values.dropna().astype(str).str.strip().ne("").any())


CAPTIONS_FIELD = "{captions}"  # in train.fields: one of the product's captions, sampled anew each epoch
QUERIES_FIELD = "{queries}"  # a product's logged shopper queries (finetune --feedback, train/logged_queries.py)


def check_field_texts(fields: dict[str, float]) -> None:
    """train.fields: templates over roles and columns (or "{captions}" alone), with weights >= 0, one above 0."""
    for template, weight in fields.items():
        names = template_fields(template)
        if not names:
            raise ModaclipError(f"train.fields: {template!r} has no {{field}}; every product would get the same text")
        if "captions" in names and template != CAPTIONS_FIELD:
            raise ModaclipError(f"train.fields: {template!r}: {CAPTIONS_FIELD} must stand alone")
        if "queries" in names and template != QUERIES_FIELD:
            raise ModaclipError(f"train.fields: {template!r}: {QUERIES_FIELD} must stand alone")
        check_names(f"train.fields: {template!r}", [name for name in names if name not in ("captions", "queries")])
        check_renders(template, names)
        if weight < 0:
            raise ModaclipError(f"train.fields: {template!r} has weight {weight}; weights must be >= 0")
    if not any(weight > 0 for weight in fields.values()):
        raise ModaclipError(f"train.fields: give at least one text a weight above 0, got {fields}")
