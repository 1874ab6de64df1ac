"""Fields are a property of the catalog: roles resolve to the columns a catalog fills."""

from __future__ import annotations

import pandas as pd
import pytest

from modaclip.core.config import TrainParams
from modaclip.core.errors import ModaclipError
from modaclip.core.fields import CatalogFields, render_template
from modaclip.curate.captions import caption_templates
from modaclip.train.field_texts import FieldTexts

KAGGLE = CatalogFields(("gender", "masterCategory", "subCategory", "articleType", "baseColour", "productDisplayName"))
CEYDA = CatalogFields(("gender", "masterCategory", "subCategory"))  # ceyda/fashion-products-small
FOLDERS = CatalogFields(("articleType", "productDisplayName"))  # imagefolder: the folder name only


def test_filled_columns_are_those_with_a_value() -> None:
    frame = pd.DataFrame(
        {"gender": ["Men", None], "articleType": [None, " "], "baseColour": [None, None], "masterCategory": ["A", "B"]}
    )
    assert CatalogFields.of(frame).filled == ("gender", "masterCategory")
    parts = [CatalogFields(("gender",)), CatalogFields(("baseColour", "gender"))]
    assert CatalogFields.union(parts).filled == ("gender", "baseColour")


@pytest.mark.parametrize(
    "catalog, type_column, resolved",
    [
        (KAGGLE, "articleType", ["gender", "articleType", "baseColour"]),
        (CEYDA, "subCategory", ["gender", "subCategory"]),
        (FOLDERS, "articleType", ["articleType"]),
    ],
)
def test_roles_resolve_to_the_catalog_columns(catalog: CatalogFields, type_column: str, resolved: list[str]) -> None:
    assert catalog.column("type") == type_column
    assert catalog.resolve_all(["gender", "type", "colour"]) == resolved
    assert catalog.resolve_all(["baseColour", "type"]) == ["baseColour", type_column], "a column is taken as given"


def test_default_captions_say_what_the_catalog_has() -> None:
    assert caption_templates("auto", KAGGLE) == [
        "a photo of a {gender} {baseColour} {articleType}",
        "{productDisplayName}",
        "{baseColour} {articleType} for {gender}",
    ]
    assert caption_templates("auto", CEYDA) == ["a photo of a {gender} {subCategory}", "{subCategory} for {gender}"]
    assert caption_templates("auto", FOLDERS) == ["a photo of a {articleType}", "{productDisplayName}"]


def test_given_templates_resolve_roles_and_leave_out_what_cannot_be_written() -> None:
    templates = ["a photo of a {colour} {type}", "{type} for {gender}", "{articleType} in {season}"]
    assert caption_templates(templates, CEYDA) == ["{subCategory} for {gender}", "{articleType} in {season}"]
    with pytest.raises(ModaclipError, match=r"caption\.templates: no template can be written"):
        caption_templates(["a photo of a {colour}"], CEYDA)


def test_field_texts_fit_the_catalog() -> None:
    fields = {"{captions}": 1.0, "a photo of a {type}": 2.0, "{colour}": 1.0, "{title}": 0.0}
    texts = FieldTexts.resolve(fields, CEYDA)
    assert (texts.caption_weight, texts.templates, texts.weights) == (1.0, ("a photo of a {subCategory}",), (2.0,))
    row = {"subCategory": "Topwear", "gender": "Men"}
    assert texts.render(pd.DataFrame([row, {"gender": "Women"}])) == [("a photo of a topwear",), (None,)]
    assert (
        render_template("{productDisplayName}", {"productDisplayName": "Nike Men Red Tshirt"}) == "Nike Men Red Tshirt"
    )


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"a photo": 1.0}, "has no {field}"),
        ({"{captions} of {type}": 1.0}, "must stand alone"),
        ({"{colour_name}": 1.0}, "unknown field"),
        ({"{type}": -1.0}, "weights must be >= 0"),
        ({"{type}": 0.0}, "at least one text a weight above 0"),
    ],
)
def test_bad_train_fields_are_named(fields: dict[str, float], named: str) -> None:
    with pytest.raises(ModaclipError, match=rf"train\.fields.*{named}"):
        TrainParams(fields=fields)
