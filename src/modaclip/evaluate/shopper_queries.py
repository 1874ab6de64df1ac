"""The shoppers'-words query set (`shoppers:<count>` in `evaluate.query_sets`): what shoppers type, judged
by the catalog's own attributes.

Caption queries ("a photo of a men black tshirts") are the model's training texts; shoppers type
"men's black tee", "white sneakers", "something red for a party". This set is generated from the
clean catalog, deterministically (a fixed seed), at evaluation time, so it exists wherever the
catalog does and never reaches training:

- each query starts from a product drawn at random (so it has at least one right answer) and a kind:
  type + colour + gender, type + colour, type + gender, a group + colour ("black shoes", from
  subCategory/masterCategory), colour + occasion ("something red for a party", from usage), type +
  occasion ("party dress"); casual, most products' usage, is no occasion;
- the product's values are said in everyday words (`TYPE_WORDS`, `COLOUR_WORDS`, `GENDER_WORDS`,
  `OCCASION_WORDS`: "tee", "denim", "purse", "wristwatch", "navy", "gray", "men's"), in word orders
  the caption templates do not use; a type without everyday words is said by its own name;
- every catalog product is judged against what the query names: grade 2 when it has every named
  value (a word like "sneakers" names both Casual and Sports Shoes), grade 1 when it has the named
  type or group and each other value or a near one (navy for blue, maroon for red, unisex for men's
  or women's), not judged (not relevant) otherwise;
- a query whose text equals any training text (a product's caption or a `train.fields` text) is
  dropped and counted, as is a repeat of an earlier query.

The roles type, colour and gender resolve to the catalog's own columns (core/fields.py), so the set
works on any catalog that fills them; kinds needing a column the catalog lacks are not drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from modaclip.core.errors import ModaclipError
from modaclip.core.fields import CAPTIONS_FIELD, CatalogFields, render_template
from modaclip.evaluate.judged_queries import JudgedQueries

NAME = "shoppers"
SEED = 0
MAX_DRAWS_PER_QUERY = 50  # a small catalog runs out of distinct queries; stop drawing rather than loop

# Everyday words for Kaggle articleType values; a word may name several types (`WORD_TYPES`).
TYPE_WORDS: dict[str, tuple[str, ...]] = {
    "Tshirts": ("tee", "t-shirt", "tee shirt"),
    "Shirts": ("button-down shirt", "button up shirt", "collared shirt"),
    "Tops": ("blouse", "top"),
    "Kurtas": ("kurti", "ethnic kurta"),
    "Sweatshirts": ("hoodie", "pullover"),
    "Jackets": ("windcheater", "bomber jacket", "coat"),
    "Dresses": ("frock", "dress"),
    "Jeans": ("denim", "denims"),
    "Trousers": ("pants", "chinos", "slacks"),
    "Shorts": ("bermudas", "half pants"),
    "Skirts": ("skirt", "midi skirt"),
    "Casual Shoes": ("sneakers", "trainers", "canvas shoes"),
    "Sports Shoes": ("sneakers", "trainers", "running shoes", "gym shoes"),
    "Heels": ("pumps", "stilettos", "high heels"),
    "Sandals": ("strappy sandals", "sandal"),
    "Flip Flops": ("slippers", "chappals", "beach slippers"),
    "Handbags": ("purse", "shoulder bag", "tote"),
    "Backpacks": ("rucksack", "school bag", "backpack"),
    "Watches": ("wristwatch", "analog watch", "timepiece"),
    "Caps": ("baseball cap", "hat"),
    "Belts": ("leather belt", "waist belt"),
    "Sunglasses": ("shades", "sunnies", "aviators"),
    "Sweaters": ("jumper", "knit sweater"),
    "Wallets": ("wallet", "billfold"),
    "Formal Shoes": ("dress shoes", "oxfords"),
    "Flats": ("ballerinas", "flat shoes"),
    "Track Pants": ("joggers", "trackies"),
}
WORD_TYPES: dict[str, frozenset[str]] = {
    word: frozenset(kind for kind, words in TYPE_WORDS.items() if word in words)
    for words in TYPE_WORDS.values()
    for word in words
}
COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "Navy Blue": ("navy", "navy blue"),
    "Grey": ("grey", "gray"),
    "Maroon": ("maroon", "burgundy", "wine"),
    "Olive": ("olive", "olive green"),
    "Off White": ("off-white", "ivory"),
}
# A colour close enough to another that a product in it half answers a query for the other.
NEAR_COLOURS: dict[str, frozenset[str]] = {
    "Blue": frozenset({"Navy Blue", "Teal"}),
    "Navy Blue": frozenset({"Blue"}),
    "Red": frozenset({"Maroon"}),
    "Maroon": frozenset({"Red"}),
    "Green": frozenset({"Olive", "Teal"}),
    "Olive": frozenset({"Green"}),
    "Teal": frozenset({"Blue", "Green"}),
    "Brown": frozenset({"Beige"}),
    "Beige": frozenset({"Brown", "Cream"}),
    "White": frozenset({"Off White", "Cream"}),
    "Grey": frozenset({"Charcoal", "Grey Melange"}),
}
# gender -> (possessive, plain, "for ...") words
GENDER_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "Men": (("men's", "mens"), ("men", "male", "guys"), ("him", "guys")),
    "Women": (("women's", "ladies"), ("women", "ladies", "female"), ("her", "ladies")),
    "Boys": (("boys'",), ("boys", "kids"), ("a boy",)),
    "Girls": (("girls'",), ("girls", "kids"), ("a girl",)),
    "Unisex": (("unisex",), ("unisex",), ("anyone", "everyone")),
}
NEAR_GENDERS: dict[str, frozenset[str]] = {"Men": frozenset({"Unisex"}), "Women": frozenset({"Unisex"})}
# usage -> (before a noun, "for ...") words; casual, most products' usage, makes no query ("everyday tee" is any tee)
OCCASION_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Party": (("party", "evening"), ("a party", "a night out")),
    "Formal": (("office", "formal"), ("the office", "work")),
    "Sports": (("gym", "workout"), ("the gym", "running")),
    "Ethnic": (("festive", "traditional"), ("a festival", "a wedding")),
}
# (column, value) -> words naming a group of types
GROUP_WORDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("subCategory", "Shoes"): ("shoes",),
    ("subCategory", "Bags"): ("bag", "bags"),
    ("subCategory", "Bottomwear"): ("bottoms",),
    ("masterCategory", "Footwear"): ("footwear",),
    ("masterCategory", "Accessories"): ("accessories",),
}
USAGE = "usage"  # the Kaggle column of occasions; not a role, used where the catalog fills it


@dataclass(frozen=True)
class Query:
    """A query's text, the values it names (column -> allowed values), the column whose value a partial answer
    must still have (its type or group; None: no partial answers), and the near values per column."""

    text: str
    exact: dict[str, frozenset[str]]
    anchor: str | None
    near: dict[str, frozenset[str]]


@dataclass(frozen=True)
class Columns:
    """The catalog's columns for each role this set uses; None where it has none."""

    type: str | None
    colour: str | None
    gender: str | None
    usage: str | None

    @classmethod
    def of(cls, fields: CatalogFields, catalog: pd.DataFrame) -> Columns:
        usage = USAGE if USAGE in catalog.columns and catalog[USAGE].notna().any() else None
        return cls(fields.column("type"), fields.column("colour"), fields.column("gender"), usage)


def _pick(rng: np.random.Generator, words: Sequence[str]) -> str:
    return words[int(rng.integers(len(words)))]


def type_word(rng: np.random.Generator, value: str) -> tuple[str, frozenset[str]]:
    """An everyday word for the type, and every type that word names."""
    word = _pick(rng, TYPE_WORDS.get(value, (value.lower(),)))
    return word, WORD_TYPES.get(word, frozenset({value}))


def colour_word(rng: np.random.Generator, value: str) -> str:
    return _pick(rng, COLOUR_WORDS.get(value, (value.lower(),)))


def gender_words(rng: np.random.Generator, value: str) -> tuple[str, str, str]:
    possessive, plain, audience = GENDER_WORDS.get(value, ((value.lower(),),) * 3)
    return _pick(rng, possessive), _pick(rng, plain), _pick(rng, audience)


def occasion_words(rng: np.random.Generator, value: str) -> tuple[str, str] | None:
    if value not in OCCASION_WORDS:
        return None
    adjective, occasion = OCCASION_WORDS[value]
    return _pick(rng, adjective), _pick(rng, occasion)


def _near(column: str | None, value: str, table: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    return {column: table[value]} if column and value in table else {}


def full_query(rng: np.random.Generator, row: pd.Series, c: Columns) -> Query:
    word, types = type_word(rng, row[c.type])
    colour = colour_word(rng, row[c.colour])
    possessive, plain, audience = gender_words(rng, row[c.gender])
    text = _pick(
        rng,
        (
            f"{possessive} {colour} {word}",
            f"{colour} {word} {plain}",
            f"{word} in {colour} for {audience}",
            f"{word} {colour} {plain}",
        ),
    )
    exact = {c.type: types, c.colour: frozenset({row[c.colour]}), c.gender: frozenset({row[c.gender]})}
    near = _near(c.colour, row[c.colour], NEAR_COLOURS) | _near(c.gender, row[c.gender], NEAR_GENDERS)
    return Query(text, exact, c.type, near)


def type_colour_query(rng: np.random.Generator, row: pd.Series, c: Columns) -> Query:
    word, types = type_word(rng, row[c.type])
    colour = colour_word(rng, row[c.colour])
    text = _pick(rng, (f"{colour} {word}", f"{word} in {colour}", f"{word} {colour}"))
    exact = {c.type: types, c.colour: frozenset({row[c.colour]})}
    return Query(text, exact, c.type, _near(c.colour, row[c.colour], NEAR_COLOURS))


def type_gender_query(rng: np.random.Generator, row: pd.Series, c: Columns) -> Query:
    word, types = type_word(rng, row[c.type])
    possessive, plain, audience = gender_words(rng, row[c.gender])
    text = _pick(rng, (f"{possessive} {word}", f"{word} {plain}", f"{word} for {audience}"))
    exact = {c.type: types, c.gender: frozenset({row[c.gender]})}
    return Query(text, exact, c.type, _near(c.gender, row[c.gender], NEAR_GENDERS))


def group_colour_query(rng: np.random.Generator, row: pd.Series, c: Columns) -> Query | None:
    groups = [(column, value) for column, value in GROUP_WORDS if column in row.index and row[column] == value]
    if not groups:
        return None
    column, value = groups[int(rng.integers(len(groups)))]
    group, colour = _pick(rng, GROUP_WORDS[(column, value)]), colour_word(rng, row[c.colour])
    text = _pick(rng, (f"{colour} {group}", f"{group} in {colour}"))
    exact = {column: frozenset({value}), c.colour: frozenset({row[c.colour]})}
    return Query(text, exact, column, _near(c.colour, row[c.colour], NEAR_COLOURS))


def colour_occasion_query(rng: np.random.Generator, row: pd.Series, c: Columns) -> Query | None:
    words = occasion_words(rng, row[c.usage])
    if words is None:
        return None
    text = f"something {colour_word(rng, row[c.colour])} for {words[1]}"
    return Query(text, {c.colour: frozenset({row[c.colour]}), c.usage: frozenset({row[c.usage]})}, None, {})


def type_occasion_query(rng: np.random.Generator, row: pd.Series, c: Columns) -> Query | None:
    words = occasion_words(rng, row[c.usage])
    if words is None:
        return None
    word, types = type_word(rng, row[c.type])
    text = _pick(rng, (f"{words[0]} {word}", f"{word} for {words[1]}"))
    return Query(text, {c.type: types, c.usage: frozenset({row[c.usage]})}, None, {})


Kind = Callable[[np.random.Generator, pd.Series, Columns], "Query | None"]
# kind -> (roles it needs, relative weight)
KINDS: dict[Kind, tuple[tuple[str, ...], float]] = {
    full_query: (("type", "colour", "gender"), 3.0),
    type_colour_query: (("type", "colour"), 2.0),
    type_gender_query: (("type", "gender"), 1.0),
    group_colour_query: (("colour",), 1.5),
    colour_occasion_query: (("colour", "usage"), 1.0),
    type_occasion_query: (("type", "usage"), 1.5),
}


def grades(catalog: pd.DataFrame, query: Query) -> np.ndarray:
    """Each product's grade for the query: 2 every named value, 1 the anchor's and each other value or a near one."""
    named = [catalog[column].isin(values).to_numpy() for column, values in query.exact.items()]
    exact = np.logical_and.reduce(named)
    graded = np.where(exact, 2, 0)
    if query.anchor is not None:
        close = [
            catalog[column].isin(values | query.near.get(column, frozenset())).to_numpy()
            for column, values in query.exact.items()
            if column != query.anchor
        ]
        partial = catalog[query.anchor].isin(query.exact[query.anchor]).to_numpy() & np.logical_and.reduce(close)
        graded = np.where(~exact & partial, 1, graded)
    return graded


def training_texts(catalog: pd.DataFrame, fields: CatalogFields, train_fields: Sequence[str]) -> set[str]:
    """Every text the model trains on, lowercased: each product's captions and its `train.fields` texts."""
    texts = {caption.lower() for captions in catalog["captions"] for caption in captions}
    templates = [fields.resolve_template(t) for t in train_fields if t != CAPTIONS_FIELD]
    for row in catalog.to_dict("records"):
        rendered = (render_template(template, row) for template in templates if template)
        texts.update(text.lower() for text in rendered if text)
    return texts


def shopper_queries(
    catalog: pd.DataFrame,
    fields: CatalogFields,
    count: int,
    *,
    train_fields: Sequence[str],
    source: str,
    seed: int = SEED,
) -> JudgedQueries:
    """`count` distinct shoppers' queries judged over `catalog` (id, captions and attribute columns); another
    `seed` draws another set (the simulated shoppers of feedback/simulate.py use their own)."""
    columns = Columns.of(fields, catalog)
    kinds = [kind for kind, (roles, _) in KINDS.items() if all(getattr(columns, role) for role in roles)]
    if not kinds:
        raise ModaclipError(
            f"{source}: the catalog fills too few of the type, colour and gender roles and the usage column "
            f"({columns}) to make a query"
        )
    weights = np.array([KINDS[kind][1] for kind in kinds])
    trained = training_texts(catalog, fields, train_fields)
    rng = np.random.default_rng(seed)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    dropped = 0
    ids = catalog["id"].astype(str).to_numpy()
    for _ in range(count * MAX_DRAWS_PER_QUERY):
        if len(queries) == count:
            break
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        roles = KINDS[kind][0]
        row = catalog.iloc[int(rng.integers(len(catalog)))]
        if any(pd.isna(row[getattr(columns, role)]) for role in roles):
            continue
        query = kind(rng, row, columns)
        if query is None or query.text in queries.values():
            continue
        if query.text in trained:
            dropped += 1
            continue
        graded = grades(catalog, query)
        query_id = f"s{len(queries) + 1:04d}"
        queries[query_id] = query.text
        qrels[query_id] = {ids[i]: int(graded[i]) for i in np.flatnonzero(graded)}
    return JudgedQueries(
        name=NAME, source=source, queries=queries, qrels=qrels, notes={"dropped_as_training_text": dropped}
    )
