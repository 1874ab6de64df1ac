import pandas as pd
import pytest

from modaclip.core.errors import ModaclipError
from modaclip.core.schema import CATALOG_COLUMNS
from modaclip.curate.captions import caption_column, render_captions, template_fields, validate_templates

TEMPLATES = (
    "a photo of a {gender} {baseColour} {articleType}",
    "{productDisplayName}",
    "{baseColour} {articleType} for {gender}",
)
ROW = {
    "id": 15970,
    "gender": "Men",
    "articleType": "Tshirts",
    "baseColour": "Navy Blue",
    "year": 2011.0,
    "productDisplayName": "Turtle Check Men Navy Blue Shirt",
}


def test_template_fields_in_order_of_first_use() -> None:
    template = "{baseColour} {articleType} for {gender}, {baseColour}"

    assert template_fields(template) == ["baseColour", "articleType", "gender"]


def test_template_fields_ignores_escaped_braces() -> None:
    assert template_fields("{{sale}} {gender}") == ["gender"]


def test_render_lowercases_attributes_but_not_display_name() -> None:
    assert render_captions(ROW, TEMPLATES) == [
        "a photo of a men navy blue tshirts",
        "Turtle Check Men Navy Blue Shirt",
        "navy blue tshirts for men",
    ]


@pytest.mark.parametrize("absent", [None, float("nan"), "", "   "])
def test_missing_display_name_skips_only_its_template(absent: object) -> None:
    row = {**ROW, "productDisplayName": absent}

    assert render_captions(row, TEMPLATES) == [
        "a photo of a men navy blue tshirts",
        "navy blue tshirts for men",
    ]


def test_field_absent_from_row_skips_template() -> None:
    row = {key: value for key, value in ROW.items() if key != "gender"}

    assert render_captions(row, TEMPLATES) == ["Turtle Check Men Navy Blue Shirt"]


def test_row_with_nothing_to_render_gets_no_captions() -> None:
    assert render_captions({"id": 1, "gender": None}, TEMPLATES) == []


def test_render_collapses_whitespace() -> None:
    row = {**ROW, "baseColour": " Navy   Blue ", "productDisplayName": " Turtle\tShirt "}

    assert render_captions(row, ["a  {baseColour} {articleType}", "{productDisplayName}"]) == [
        "a navy blue tshirts",
        "Turtle Shirt",
    ]


def test_integral_float_renders_as_integer() -> None:
    assert render_captions(ROW, ["{articleType} from {year}"]) == ["tshirts from 2011"]


def test_caption_column_keeps_index() -> None:
    frame = pd.DataFrame([ROW, {**ROW, "gender": None, "productDisplayName": None}], index=[10, 20])

    captions = caption_column(frame, TEMPLATES)

    assert captions.index.tolist() == [10, 20]
    assert captions[10] == render_captions(ROW, TEMPLATES)
    assert captions[20] == []


def test_caption_column_of_empty_frame() -> None:
    frame = pd.DataFrame(columns=list(CATALOG_COLUMNS))

    assert caption_column(frame, TEMPLATES).empty


def test_caption_column_rejects_template_for_absent_column() -> None:
    frame = pd.DataFrame([ROW]).drop(columns=["productDisplayName"])

    with pytest.raises(ModaclipError, match="productDisplayName"):
        caption_column(frame, TEMPLATES)


def test_validate_accepts_known_fields() -> None:
    validate_templates(TEMPLATES, CATALOG_COLUMNS)


def test_validate_names_template_and_unknown_field() -> None:
    with pytest.raises(ModaclipError) as raised:
        validate_templates([TEMPLATES[0], "a {colour} {articleType}"], CATALOG_COLUMNS)

    assert "a {colour} {articleType}" in str(raised.value)
    assert "colour" in str(raised.value)


@pytest.mark.parametrize("templates", [[], (), "a photo of a {gender}"])
def test_validate_rejects_missing_list(templates: object) -> None:
    with pytest.raises(ModaclipError, match=r"caption\.templates"):
        validate_templates(templates, CATALOG_COLUMNS)  # type: ignore[arg-type]


def test_validate_rejects_template_without_field() -> None:
    with pytest.raises(ModaclipError, match="'a photo of clothes'"):
        validate_templates(["a photo of clothes"], CATALOG_COLUMNS)


@pytest.mark.parametrize("template", ["a {gender", "a gender}", "a {gender!x}", "a {gender:d}", "a {gender:{width}}"])
def test_validate_rejects_bad_format_syntax(template: str) -> None:
    with pytest.raises(ModaclipError, match="not a valid format string"):
        validate_templates([template], CATALOG_COLUMNS)


@pytest.mark.parametrize("template", ["a {} shirt", "a {0} shirt", "a {gender.upper} shirt"])
def test_validate_rejects_positional_and_attribute_fields(template: str) -> None:
    with pytest.raises(ModaclipError, match="unknown fields"):
        validate_templates([template], CATALOG_COLUMNS)
