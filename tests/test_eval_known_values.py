"""Every eval.json figure the README and the promotion gate read, on 12 hand-built products.

The embeddings are written out block by block so each score is a small whole number and every
ranking can be read off by hand; the comments give the rankings and the arithmetic, and the
expected values are literals or formulas over them, never the code's own output.

An image vector is the sum of four blocks (23 dimensions):
  ID      e_i              - which product (12 dims)
  TYPE    2 * e_type       - its true article type (Tshirts, Jeans, Casual Shoes)
  LOOK    e_look           - the type it *looks* like (Tshirts, Jeans, Casual Shoes, Dresses)
  COLOUR  s * e_colour     - the colour it looks like (Black, Blue, Red, White); s = 1, 1.5 for product 10
so image.image = [same product] + 4 [same type] + [same look] + s s' [same look colour]: every
product of the same type (>= 4) ranks above every other (<= 2.5).
"""

from __future__ import annotations

from math import log2

import numpy as np
import pandas as pd
import pytest
from lookup_clip import image_bytes, lookup_bundle

from modaclip.core.config import EvaluateParams
from modaclip.core.fields import CatalogFields
from modaclip.evaluate import evaluation
from modaclip.evaluate.labelled_sets import LabelledImages
from modaclip.train.trainer import validation_scores

TYPES = ["Tshirts", "Jeans", "Casual Shoes"]
LOOKS = [*TYPES, "Dresses"]
COLOURS = ["Black", "Blue", "Red", "White"]
ID, TYPE, LOOK, COLOUR = 0, 12, 15, 19
DIM = 23
CATEGORY = {
    "Tshirts": ("Apparel", "Topwear"),
    "Jeans": ("Apparel", "Bottomwear"),
    "Casual Shoes": ("Footwear", "Shoes"),
}

# row: gender, articleType, baseColour | looks like: type, colour, colour strength
PRODUCTS = [
    ("Men", "Tshirts", "Red", "Tshirts", "Red", 1.0),  # 0
    ("Men", "Tshirts", "Red", "Tshirts", "Red", 1.0),  # 1
    ("Women", "Tshirts", "Red", "Jeans", "Red", 1.0),  # 2  looks like jeans
    ("Men", "Tshirts", "Blue", "Tshirts", "Blue", 1.0),  # 3
    ("Men", "Tshirts", "Red", "Tshirts", "White", 1.0),  # 4  looks white
    ("Men", "Jeans", "Blue", "Jeans", "Blue", 1.0),  # 5
    ("Men", "Jeans", "Blue", "Jeans", "Blue", 1.0),  # 6
    ("Women", "Jeans", "Blue", "Jeans", "Blue", 1.0),  # 7
    ("Women", "Jeans", "Black", "Tshirts", "Black", 1.0),  # 8  looks like a tshirt
    ("Men", "Casual Shoes", "Black", "Casual Shoes", "Black", 1.0),  # 9
    ("Men", "Casual Shoes", "Black", "Casual Shoes", "Blue", 1.5),  # 10 looks strongly blue
    ("Women", "Casual Shoes", "White", "Jeans", "White", 1.0),  # 11 looks like jeans
]

# Each caption query names one product (+4) and one article type (+2 for each product of it):
# query.image = 4 [image is the target] + 2 [image has the type], ties by row.
QUERIES = [(0, "Tshirts"), (1, "Tshirts"), (0, "Tshirts"), (3, "Tshirts"), (4, "Tshirts"), (5, "Jeans")]
QUERIES += [(5, "Jeans"), (7, "Jeans"), (1, "Tshirts"), (9, "Casual Shoes"), (0, "Tshirts"), (9, "Casual Shoes")]

# KAGL titles (the other rows have none): the title of row r names a target and a type like a query;
# 11's title also says "white" twice as strongly as an image shows a colour.
TITLES = {
    0: ("Roadster Men Red Tshirt", 0, "Tshirts", None),
    3: ("Puma Men Blue Tshirt", 4, "Tshirts", None),
    5: ("Levis Men Blue Jeans", 5, "Jeans", None),
    8: ("Flying Machine Women Black Jeans", 9, "Casual Shoes", None),
    9: ("Nike Men Black Shoes", 10, "Casual Shoes", None),
    11: ("Converse Women White Sneakers", 11, "Casual Shoes", "White"),
}


def unit(dim: int) -> np.ndarray:
    return np.eye(DIM, dtype=np.float32)[dim]


def image_vector(row: int) -> np.ndarray:
    _, article_type, _, look, colour, strength = PRODUCTS[row]
    return (
        unit(ID + row)
        + 2 * unit(TYPE + TYPES.index(article_type))
        + unit(LOOK + LOOKS.index(look))
        + strength * unit(COLOUR + COLOURS.index(colour))
    )


def named(target: int, article_type: str) -> np.ndarray:
    return 4 * unit(ID + target) + unit(TYPE + TYPES.index(article_type))


def texts() -> dict[str, np.ndarray]:
    """Every text the model is asked to embed: zero-shot prompts, KAGL titles and KAGL label queries."""
    table = {f"a photo of a {look.lower()}": unit(LOOK + i) for i, look in enumerate(LOOKS)}
    table |= {f"a photo of a {colour.lower()}": unit(COLOUR + i) for i, colour in enumerate(COLOURS)}
    for title, target, article_type, colour in TITLES.values():
        table[title] = named(target, article_type) + (2 * unit(COLOUR + COLOURS.index(colour)) if colour else 0)
    table |= {colour: unit(COLOUR + i) for i, colour in enumerate(COLOURS)}
    table |= {
        "Apparel": unit(TYPE) + unit(TYPE + 1),
        "Footwear": unit(TYPE + 2),
        "Topwear": unit(TYPE),
        "Bottomwear": unit(TYPE + 1),
        "Shoes": unit(TYPE + 2),
    }
    return table


# The zero-shot set's four images look like Tshirts, Tshirts, Jeans, Tshirts; their labels are T, T, J, J.
SET_IMAGES = [unit(LOOK), unit(LOOK), unit(LOOK + 1), unit(LOOK)]


def items() -> pd.DataFrame:
    rows = []
    for row, (gender, article_type, colour, *_) in enumerate(PRODUCTS):
        master, sub = CATEGORY[article_type]
        title = TITLES.get(row, (None,))[0]
        rows.append((100 + row, gender, master, sub, article_type, colour, title))
    columns = ["id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "productDisplayName"]
    return pd.DataFrame(rows, columns=columns)


@pytest.fixture(scope="module")
def evaluated() -> evaluation.ModelEvaluation:
    bundle = lookup_bundle(texts(), SET_IMAGES)
    test = evaluation.EmbeddedSplit(
        items(),
        np.stack([image_vector(row) for row in range(len(PRODUCTS))]),
        np.stack([named(target, article_type) for target, article_type in QUERIES]),
    )
    labels = {"articleType": [*TYPES, "Dresses"], "baseColour": COLOURS}
    toy = LabelledImages(
        name="toy",
        source="test",
        class_names=["Tshirts", "Jeans"],
        images=[image_bytes(i) for i in range(4)],
        labels=np.array([0, 0, 1, 1]),
    )
    catalog = CatalogFields.of(test.items)
    return evaluation.evaluate_model(
        bundle,
        test,
        labels_by_field=labels,
        params=EvaluateParams(recall_ks=[1, 5, 10]),
        catalog=catalog,
        labelled_sets=[toy],
    )


def dcg(rank: int) -> float:
    return 1 / log2(rank + 1)


# Each query's ranking: its target, then the rest of its type, then everything else, each by row.
#   q0  0 1 2 3 4 5 6 7 8 9 | 10 11    own rank 1      q6  5 6 7 8 0 1 2 3 4 9 | 10 11   own rank 2
#   q1  1 0 2 3 4 5 6 7 8 9 | 10 11    own rank 1      q7  7 5 6 8 0 1 2 3 4 9 | 10 11   own rank 1
#   q2  0 1 2 3 4 5 6 7 8 9 | 10 11    own rank 3      q8  1 0 2 3 4 5 6 7 8 9 | 10 11   own rank 9
#   q3  3 0 1 2 4 5 6 7 8 9 | 10 11    own rank 1      q9  9 10 11 0 1 2 3 4 5 6 | 7 8   own rank 1
#   q4  4 0 1 2 3 5 6 7 8 9 | 10 11    own rank 1      q10 0 1 2 3 4 5 6 7 8 9 | 10 11   own rank 11
#   q5  5 6 7 8 0 1 2 3 4 9 | 10 11    own rank 1      q11 9 10 11 0 1 2 3 4 5 6 | 7 8   own rank 3
OWN_RANKS = [1, 1, 3, 1, 1, 1, 2, 1, 9, 1, 11, 3]


def test_text_to_image_recall_and_ndcg_of_the_own_product(evaluated: evaluation.ModelEvaluation) -> None:
    t2i, curve = evaluated.metrics["text_to_image"], evaluated.curve
    # ranks 1: q0 q1 q3 q4 q5 q7 q9 (7); 2: q6; 3: q2 q11; 9: q8; 11: q10 (missed at 10)
    assert t2i["recall@1"] == pytest.approx(7 / 12)
    assert t2i["recall@5"] == pytest.approx(10 / 12)
    assert t2i["recall@10"] == pytest.approx(11 / 12)
    assert curve == pytest.approx(np.array([7, 8, 10, 10, 10, 10, 10, 10, 11, 11]) / 12)
    # one relevant item per query, so NDCG@10 = mean of 1/log2(rank + 1), 0 beyond rank 10
    assert t2i["ndcg@10"] == pytest.approx((7 + dcg(2) + 2 * dcg(3) + dcg(9)) / 12)
    assert [OWN_RANKS.count(r) for r in (1, 2, 3, 9, 11)] == [7, 1, 2, 1, 1]


def test_text_to_image_attribute_precision_and_ndcg(evaluated: evaluation.ModelEvaluation) -> None:
    """Relevant: every product with the query product's (gender, baseColour, articleType)."""
    t2i = evaluated.metrics["text_to_image"]
    # keys: (Men, Red, Tshirts) = {0, 1, 4}; (Men, Blue, Jeans) = {5, 6}; (Men, Black, Casual Shoes) = {9, 10};
    # every other product is alone with its key. Positions of those products in each top 10 above:
    #   q0 1 2 5 | q1 1 2 5 | q2 3 | q3 1 | q4 1 2 3 | q5 1 2 | q6 1 2 | q7 1 | q8 9 | q9 1 2 | q10 10 | q11 3
    # hits 3+3+1+1+3+2+2+1+1+2+1+1 = 21 of 12 x 10 slots
    assert t2i["attribute_precision@10"] == pytest.approx(21 / 120)
    three = (1 + dcg(2) + dcg(5)) / (1 + dcg(2) + dcg(3))
    per_query = [three, three, dcg(3), 1, 1, 1, 1, 1, dcg(9), 1, dcg(10) / (1 + dcg(2)), dcg(3)]
    assert t2i["attribute_ndcg@10"] == pytest.approx(sum(per_query) / 12)


def test_image_to_image_precision_at_10(evaluated: evaluation.ModelEvaluation) -> None:
    i2i = evaluated.metrics["image_to_image"]
    # the rest of a product's type ranks first, and 11 others leave room for all of it in the top 10:
    # Tshirts 5 products x 4, Jeans 4 x 3, Casual Shoes 3 x 2 = 38 hits of 120
    assert i2i["precision@10_articleType"] == pytest.approx(38 / 120)
    # same type and true colour: Red Tshirts {0, 1, 2, 4} 4 x 3, Blue Jeans {5, 6, 7} 3 x 2, Black Shoes {9, 10} 2 x 1
    assert i2i["precision@10_articleType_baseColour"] == pytest.approx(20 / 120)


def test_zero_shot_accuracy_and_weighted_f1(evaluated: evaluation.ModelEvaluation) -> None:
    """Each image is classified as what it looks like (its prompt's score is 1, every other prompt's 0)."""
    zero_shot = evaluated.metrics["zero_shot"]
    # articleType truth T T T T T J J J J S S S, predicted T T J T T J J J T S S J: 9 of 12 right
    # F1 = 2 TP / (true + predicted): T 2*4/(5+5) = 4/5, J 2*3/(4+5) = 2/3, S 2*2/(3+2) = 4/5
    # weighted by support 5, 4, 3: (5 * 4/5 + 4 * 2/3 + 3 * 4/5) / 12 = 34/45; Dresses is never true nor predicted
    assert zero_shot["articleType"] == pytest.approx({"accuracy": 9 / 12, "weighted_f1": 34 / 45, "classes": 4})
    # baseColour truth R R R Bl R Bl Bl Bl Bk Bk Bk W, predicted R R R Bl W Bl Bl Bl Bk Bk Bl W: 10 of 12
    # Red 2*3/(4+3) = 6/7, Blue 2*4/(4+5) = 8/9, Black 2*2/(3+2) = 4/5, White 2*1/(1+2) = 2/3
    f1 = (4 * 6 / 7 + 4 * 8 / 9 + 3 * 4 / 5 + 1 * 2 / 3) / 12
    assert zero_shot["baseColour"] == pytest.approx({"accuracy": 10 / 12, "weighted_f1": f1, "classes": 4})


def test_zero_shot_on_a_labelled_set(evaluated: evaluation.ModelEvaluation) -> None:
    # truth T T J J, predicted T T J T: 3 of 4; F1 T 2*2/(2+3) = 4/5, J 2*1/(2+1) = 2/3; (2 * 4/5 + 2 * 2/3) / 4
    assert evaluated.metrics["zero_shot_sets"]["toy"] == pytest.approx({"accuracy": 3 / 4, "weighted_f1": 11 / 15})


def test_per_product_values_the_promotion_gate_resamples(evaluated: evaluation.ModelEvaluation) -> None:
    """The gate's paired bootstrap draws test products with these values; each figure above is their mean."""
    values = evaluated.per_product
    assert values["text_to_image.recall@1"] == pytest.approx([float(rank == 1) for rank in OWN_RANKS])
    assert values["text_to_image.recall@10"] == pytest.approx([float(rank <= 10) for rank in OWN_RANKS])
    assert values["text_to_image.ndcg@10"] == pytest.approx([dcg(rank) if rank <= 10 else 0.0 for rank in OWN_RANKS])
    # the rest of a product's type in its top 10: Tshirts 4, Jeans 3, Casual Shoes 2
    assert values["image_to_image.precision@10_articleType"] == pytest.approx([0.4] * 5 + [0.3] * 4 + [0.2] * 3)
    # wrong: articleType at 2, 8 and 11 (each looks like another type), baseColour at 4 and 10 (another colour)
    assert values["zero_shot.articleType.accuracy"] == pytest.approx(
        [float(row not in (2, 8, 11)) for row in range(12)]
    )
    assert values["zero_shot.baseColour.accuracy"] == pytest.approx([float(row not in (4, 10)) for row in range(12)])


def test_kagl_title_to_product(evaluated: evaluation.ModelEvaluation) -> None:
    # title.image = 4 [target] + 2 [type] (+ 2 [looks white] for 11's): own rank of each titled product
    #   0: 0 first -> 1;  3: 4 0 1 2 3 -> 5;  5: 5 first -> 1;  8: 9 10 11 0 .. 7 8 -> 12 (past 10, RR 0)
    #   9: 10 9 11 -> 2;  11: 11 (score 8) first -> 1
    kagl = evaluated.metrics["kagl"]["text_to_image"]
    assert kagl == pytest.approx({"recall@1": 3 / 6, "recall@10": 5 / 6, "mrr": (1 + 1 / 5 + 1 + 0 + 1 / 2 + 1) / 6})


def test_kagl_label_to_product(evaluated: evaluation.ModelEvaluation) -> None:
    """Documents are unit(0.9 image + 0.1 unit(title)) for titled products, unit(image) for the others."""
    kagl = evaluated.metrics["kagl"]["label_to_product"]
    # Category labels score every product of their types above 0 and the rest (bar a title's small share) 0:
    # top 1 always relevant; P@10 = relevant products / 10. Apparel 9, Footwear 3; Topwear 5, Bottomwear 4, Shoes 3.
    assert kagl["masterCategory"] == pytest.approx({"p@1": 1.0, "p@10": (9 + 3) / 20, "mrr": 1.0})
    assert kagl["subCategory"] == pytest.approx({"p@1": 1.0, "p@10": (5 + 4 + 3) / 30, "mrr": 1.0})
    # Colour labels score a product by the colour it looks like; ties by row.
    #   Black: 8, 9 (both Black), then 0 .. 7                         -> P@1 1, P@10 2/10, RR 1
    #   Blue:  10 (1.5/sqrt(8.25) = 0.52, but Black) first, then 6 7 3 5 (all Blue), then 0 1 2 4 8
    #                                                                   -> P@1 0, P@10 4/10, RR 1/2
    #   Red:   0 1 2, then 3 4 5 6 7 8 9 (4 is Red too)                -> P@1 1, P@10 4/10, RR 1
    #   White: 11 (White) above 4 (Red) only through its title's "white", then 0 1 2 3 5 6 7 8
    #                                                                   -> P@1 1, P@10 1/10, RR 1
    #     4: no title, 1 / sqrt(7) = 0.378
    #     11: title (4, 1, 2) / sqrt(21), doc = 0.9 image + 0.1 title, |doc|^2 = 0.81 * 7 + 0.18 * 8 / sqrt(21) + 0.01:
    #         (0.9 + 0.1 * 2 / sqrt(21)) / sqrt(5.994) = 0.385. Without the title's white,
    #         0.9 / |doc| < 0.9 / sqrt(0.81 * 7) = 1 / sqrt(7): 4 would rank first.
    assert kagl["baseColour"] == pytest.approx(
        {"p@1": 3 / 4, "p@10": (2 + 4 + 4 + 1) / 40, "mrr": (1 + 0.5 + 1 + 1) / 4}
    )


def test_validation_scores_that_choose_the_best_epoch() -> None:
    """train.select_metric's two scores on the same 12 products as the validation split.

    Images are embedded as unit vectors here, which lowers product 10 (norm sqrt(8.25), not sqrt(7)) below
    11 for q9 and q11; neither moves a product past rank 10, so Recall@10 is 11/12 as above (q10 misses).
    The zero-shot F1 over articleType is the one worked out above, 34/45.
    """
    captions = {f"caption {row}": named(target, article_type) for row, (target, article_type) in enumerate(QUERIES)}
    bundle = lookup_bundle(texts() | captions, [image_vector(row) for row in range(len(PRODUCTS))])
    val = items().assign(image=[image_bytes(row) for row in range(len(PRODUCTS))], captions=[[c] for c in captions])
    scores = validation_scores(bundle, val, [*TYPES, "Dresses"], "articleType")
    assert scores == pytest.approx({"recall@10": 11 / 12, "zero_shot_f1": 34 / 45})
