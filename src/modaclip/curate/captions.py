"""Turn a product's attributes into training captions, one per template in params.

Templates are `str.format` strings over catalog columns, such as
"a photo of a {gender} {baseColour} {articleType}". A product gets a caption from every template
whose fields it has, so a product without a display name still gets the attribute captions.
"""

from collections.abc import Mapping, Sequence

import pandas as pd

from modaclip.core.errors import ModaclipError
from modaclip.core.fields import AUTO, CatalogFields, check_renders, render_template, template_fields


def caption_templates(templates: Sequence[str] | str, fields: CatalogFields) -> list[str]:
    """caption.templates for this catalog: `auto` is the default sentences in the fields it has
    (`CatalogFields.caption_templates`); in a given list each {role} becomes the catalog's column,
    and a template needing a role the catalog lacks is left out."""
    if templates == AUTO:
        resolved = fields.caption_templates()
    elif isinstance(templates, str) or not templates:
        raise ModaclipError(f"caption.templates must be `auto` or a non-empty list of templates, got {templates!r}")
    else:
        resolved = [t for t in (fields.resolve_template(template) for template in templates) if t is not None]
    if not resolved:
        raise ModaclipError(
            f"caption.templates: no template can be written from this catalog's fields ({fields.describe()}); "
            "give templates over the columns it has"
        )
    return resolved


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
        check_renders(template, fields)


def render_captions(row: Mapping[str, object], templates: Sequence[str]) -> list[str]:
    """One caption per template whose fields the row has (see `render_template`)."""
    return [caption for caption in (render_template(template, row) for template in templates) if caption is not None]


def caption_column(frame: pd.DataFrame, templates: Sequence[str]) -> pd.Series:
    """The captions of every row (a list of str each, maybe empty), indexed like `frame`."""
    validate_templates(templates, list(frame.columns))
    captions = [render_captions(row, templates) for row in frame.to_dict("records")]
    return pd.Series(captions, index=frame.index, dtype=object, name="captions")
