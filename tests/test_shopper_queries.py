"""The shoppers'-words set: judged by the catalog's attributes with grades 2 and 1, in words and orders the
captions do not use, deterministic, and never equal to a text the model trains on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modaclip.core.catalog_io import read_catalog, read_catalog_fields
from modaclip.core.config import Params
from modaclip.core.errors import ModaclipError
from modaclip.core.fields import CatalogFields
from modaclip.evaluate.query_sets import judged_sets
from modaclip.evaluate.shopper_queries import TYPE_WORDS, Query, grades, shopper_queries

# id, gender, subCategory, articleType, baseColour, usage
ROWS = [
    (1, "Men", "Topwear", "Tshirts", "Blue", "Casual"),
    (2, "Men", "Topwear", "Tshirts", "Navy Blue", "Casual"),  # near colour
    (3, "Unisex", "Topwear", "Tshirts", "Blue", "Sports"),  # near gender
    (4, "Women", "Topwear", "Tshirts", "Blue", "Casual"),  # other gender
    (5, "Men", "Topwear", "Shirts", "Blue", "Formal"),  # other type
    (6, "Men", "Shoes", "Casual Shoes", "White", "Casual"),
    (7, "Women", "Shoes", "Sports Shoes", "White", "Sports"),
    (8, "Women", "Dress", "Dresses", "Red", "Party"),
    (9, "Women", "Shoes", "Heels", "Maroon", "Party"),
    (10, "Men", "Topwear", "Tshirts", "Navy Blue", "Casual"),
]
COLUMNS = ["id", "gender", "subCategory", "articleType", "baseColour", "usage"]


def catalog(rows: list[tuple] = ROWS) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["masterCategory"] = np.where(frame["subCategory"] == "Shoes", "Footwear", "Apparel")
    frame["captions"] = [
        [f"a photo of a {g} {c} {t}".lower(), f"{c} {t} for {g}".lower()]
        for g, c, t in zip(frame["gender"], frame["baseColour"], frame["articleType"])
    ]
    return frame


def test_grades_exact_two_partial_one_unjudged_zero() -> None:
    query = Query(
        "men's blue tee",
        {"articleType": frozenset({"Tshirts"}), "baseColour": frozenset({"Blue"}), "gender": frozenset({"Men"})},
        "articleType",
        {"baseColour": frozenset({"Navy Blue"}), "gender": frozenset({"Unisex"})},
    )
    # 1 exact; 2 navy, 3 unisex, 10 navy: partial; 4 a women's tee and 5 a shirt: not relevant
    assert grades(catalog(), query).tolist() == [2, 1, 1, 0, 0, 0, 0, 0, 0, 1]


def test_a_word_naming_two_types_makes_both_exact_and_a_query_without_a_type_has_no_partials() -> None:
    sneakers = Query("white sneakers", {"articleType": frozenset({"Casual Shoes", "Sports Shoes"}),
                                        "baseColour": frozenset({"White"})}, "articleType", {})  # fmt: skip
    assert grades(catalog(), sneakers).tolist() == [0, 0, 0, 0, 0, 2, 2, 0, 0, 0]
    party = Query(
        "something red for a party",
        {"baseColour": frozenset({"Red"}), "usage": frozenset({"Party"})},
        None,
        {"baseColour": frozenset({"Maroon"})},
    )
    assert grades(catalog(), party).tolist() == [0, 0, 0, 0, 0, 0, 0, 2, 0, 0]  # the maroon heels do not count


def generated(frame: pd.DataFrame, count: int = 30, train_fields: tuple[str, ...] = ()):
    return shopper_queries(frame, CatalogFields.of(frame), count, train_fields=list(train_fields), source="shoppers:30")


def test_generated_set_is_deterministic_judged_and_in_shoppers_words() -> None:
    frame = catalog()
    first, again = generated(frame), generated(frame)
    assert first == again and len(first.queries) >= 20
    ids = set(frame["id"].astype(str))
    for query_id, text in first.queries.items():
        judged = first.qrels[query_id]
        assert 2 in judged.values() and set(judged) <= ids and set(judged.values()) <= {1, 2}
        # a type is never said by its catalog name: "tshirts", "casual shoes" are the captions' words
        assert not any(kind.lower() in text for kind in ("Tshirts", "Casual Shoes", "Sports Shoes", "Dresses"))
    texts = " ".join(first.queries.values())
    assert any(word in texts for word in ("tee", "t-shirt", "sneakers", "trainers", "frock"))


def test_no_query_equals_a_training_text() -> None:
    frame = catalog()
    first = generated(frame)
    trained = frame.copy()
    trained.loc[0, "captions"] = list(first.queries.values())[:5]  # five of its queries become captions
    second = generated(trained, train_fields=("a photo of a {type}", "{type} for {gender}"))
    assert second.notes["dropped_as_training_text"] >= 5
    captions = {c for captions in trained["captions"] for c in captions}
    assert not captions & set(second.queries.values())
    assert "tshirts for men" not in second.queries.values()


def test_kinds_that_need_a_missing_role_are_not_drawn() -> None:
    frame = catalog().drop(columns=["gender", "usage"])
    judged = generated(frame, count=10)
    assert judged.queries
    assert not any(word in text for text in judged.queries.values() for word in ("men", "women", "party", "him"))


def test_every_type_word_is_lower_case_and_not_the_type_itself() -> None:
    for kind, words in TYPE_WORDS.items():
        assert all(word == word.lower() and word != kind.lower() for word in words), kind


def test_the_default_params_make_a_set_from_a_clean_catalog(clean_dir: Path) -> None:
    (judged,), summaries = judged_sets(Params(), clean_dir)
    products = read_catalog(clean_dir, columns=["id"])
    assert judged.name == "shoppers" and summaries["shoppers"]["source"] == "shoppers:200"
    assert summaries["shoppers"]["judgments_not_in_catalog"] == 0
    assert summaries["shoppers"]["scored_queries"] == len(judged.queries) >= 50
    assert read_catalog_fields(clean_dir).column("type") == "articleType"
    assert {p for q in judged.qrels.values() for p in q} <= set(products["id"].astype(str))


def test_a_catalog_without_the_roles_stops_with_one_line() -> None:
    frame = pd.DataFrame({"id": [1], "season": ["Summer"], "captions": [["a photo of a summer"]]})
    with pytest.raises(ModaclipError, match=r"shoppers:30: the catalog fills too few of the type, colour and gender"):
        generated(frame)
