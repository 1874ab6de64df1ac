"""The example grid's precision: hits judged right or wrong by the catalog's attributes."""

from __future__ import annotations

import pytest

from modaclip.core.config import EvaluateParams
from modaclip.core.errors import ModaclipError
from modaclip.core.fields import CatalogFields
from modaclip.evaluate.grid_precision import grid_precision, resolve_answers, right_hits
from modaclip.search.engine import SearchHit

KAGGLE = CatalogFields(("gender", "articleType", "baseColour"))
RELEVANT = {
    "white sneakers": {"articleType": ["Casual Shoes", "Sports Shoes"], "colour": ["White"]},
    "red dress": {"type": ["Dresses"], "baseColour": ["Red"]},
}


def hit(article_type: str, colour: str | None) -> SearchHit:
    return SearchHit(1, 0.5, "name", {"gender": "Men", "articleType": article_type, "baseColour": colour})


def test_a_hit_is_right_when_every_listed_attribute_has_a_listed_value() -> None:
    queries = ["white sneakers", "red dress", "blue jeans"]
    results = [
        [
            hit("Sports Shoes", "White"),
            hit("casual shoes", "WHITE"),
            hit("Casual Shoes", "Black"),
            hit("Watches", None),
        ],
        [hit("Dresses", "Red"), hit("Skirts", "Red"), hit("Dresses", "Red"), hit("Dresses", "Maroon")],
        [hit("Jeans", "Blue")] * 4,
    ]
    answers = resolve_answers(queries, RELEVANT, KAGGLE)

    assert answers["red dress"] == {"articleType": {"dresses"}, "baseColour": {"red"}}, "roles resolve to columns"
    assert right_hits(queries, results, answers) == [
        [True, True, False, False],
        [True, False, True, False],
        [False] * 4,
    ]
    assert grid_precision(queries, results, answers) == {
        "precision@4": {"white sneakers": 0.5, "red dress": 0.5},
        "mean_precision@4": 0.5,
        "queries_judged": 2,
    }


def test_a_query_whose_attributes_the_catalog_lacks_is_not_judged() -> None:
    ceyda = CatalogFields(("gender", "masterCategory", "subCategory"))
    answers = resolve_answers(["red dress"], {"red dress": {"articleType": ["Dresses"]}}, ceyda)
    assert answers == {"red dress": None}
    report = grid_precision(["red dress"], [[hit("Dresses", "Red")]], answers)
    assert report == {"precision@1": {}, "mean_precision@1": None, "queries_judged": 0}


def test_unknown_attribute_in_grid_relevant_is_named() -> None:
    with pytest.raises(ModaclipError, match=r"evaluate\.grid_relevant\['q'\].*colour_name"):
        EvaluateParams(grid_relevant={"q": {"colour_name": ["Red"]}})
