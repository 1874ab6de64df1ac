"""Turn a product's attributes into training captions, one per template in params.

Templates are `str.format` strings over catalog columns, such as
"a photo of a {gender} {baseColour} {articleType}". A product gets a caption from every template
whose fields it has, so a product without a display name still gets the attribute captions.
"""

import string
from collections.abc import Mapping, Sequence

import pandas as pd

from modaclip.core.errors import ModaclipError

DISPLAY_NAME_COLUMN = "productDisplayName"


def template_fields(template: str) -> list[str]:
    """The field names a template uses, in order of first use, each once."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ModaclipError(f"caption template {template!r} is not a valid format string: {error}") from error
    fields = [field for _, field, _, _ in parsed if field is not None]
    return list(dict.fromkeys(fields))


def validate_templates(templates: Sequence[str], columns: Sequence[str]) -> None:
    """Fail early, naming the template, on anything that would render wrongly or not at all."""
    if isinstance(templates, str) or not templates:
        raise ModaclipError(f"caption.templates must be a non-empty list of templates, got {templates!r}")
    for template in templates:
        fields = template_fields(template)
        if not fields:
            raise ModaclipError(
                f"caption template {template!r} has no {{field}}; it would give every product the same caption"
            )
        unknown = [field for field in fields if field not in columns]
        if unknown:
            raise ModaclipError(
                f"caption template {template!r} uses unknown fields {unknown}; known fields are {list(columns)}"
            )
        _check_renders(template, fields)


def render_captions(row: Mapping[str, object], templates: Sequence[str]) -> list[str]:
    """One caption per template whose fields the row has, attribute values lowercased.

    Attribute values are lowercased so captions read the same whatever a catalog's casing and
    whatever the tokenizer does with case; the display name is kept as written, brand and all.
    """
    captions = []
    for template in templates:
        values = {field: _field_text(field, row.get(field)) for field in template_fields(template)}
        if all(value is not None for value in values.values()):
            captions.append(" ".join(template.format_map(values).split()))
    return captions


def caption_column(frame: pd.DataFrame, templates: Sequence[str]) -> pd.Series:
    """The captions of every row (a list of str each, maybe empty), indexed like `frame`."""
    validate_templates(templates, list(frame.columns))
    captions = [render_captions(row, templates) for row in frame.to_dict("records")]
    return pd.Series(captions, index=frame.index, dtype=object, name="captions")


def _check_renders(template: str, fields: Sequence[str]) -> None:
    """Render with placeholder text, since parsing alone misses bad conversions and specs."""
    try:
        template.format_map(dict.fromkeys(fields, "text"))
    except (ValueError, KeyError, IndexError) as error:
        raise ModaclipError(f"caption template {template!r} is not a valid format string: {error!r}") from error


def _field_text(field: str, value: object) -> str | None:
    """The text a value puts into a caption, or None when the value is missing or blank."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a year column holding NaN is float: 2012.0 should read 2012
    text = " ".join(str(value).split())
    if not text:
        return None
    return text if field == DISPLAY_NAME_COLUMN else text.lower()
