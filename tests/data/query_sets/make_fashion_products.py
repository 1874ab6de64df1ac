"""Writes fashion-products/ (BEIR layout): 12 shoppers' queries for ../shared/data/fashion-products, each
product of its styles.csv judged by the shoppers' set's rule (evaluate/shopper_queries.py `grades`).

Run once from the repository root (`python tests/data/query_sets/make_fashion_products.py`); the output
is committed, so the set stays fixed while the rule may change.
"""

import json
from pathlib import Path

import pandas as pd

from modaclip.evaluate.shopper_queries import NEAR_COLOURS, NEAR_GENDERS, Query, grades

STYLES = Path("../shared/data/fashion-products/styles.csv")
OUT = Path(__file__).parent / "fashion-products"
T, C, G, U = "articleType", "baseColour", "gender", "usage"


def query(text: str, anchor: str | None = T, **named: set[str]) -> Query:
    exact = {column: frozenset(values) for column, values in named.items()}
    near = {}
    if C in named and len(named[C]) == 1 and next(iter(named[C])) in NEAR_COLOURS:
        near[C] = NEAR_COLOURS[next(iter(named[C]))]
    if G in named and len(named[G]) == 1 and next(iter(named[G])) in NEAR_GENDERS:
        near[G] = NEAR_GENDERS[next(iter(named[G]))]
    return Query(text, exact, anchor, near)


QUERIES = [
    query("men's black tee", articleType={"Tshirts"}, baseColour={"Black"}, gender={"Men"}),
    query("white sneakers", articleType={"Casual Shoes", "Sports Shoes"}, baseColour={"White"}),
    query("blue denim for men", articleType={"Jeans"}, baseColour={"Blue"}, gender={"Men"}),
    query("ladies brown handbag", articleType={"Handbags"}, baseColour={"Brown"}, gender={"Women"}),
    query("wristwatch for men", articleType={"Watches"}, gender={"Men"}),
    query("pink top women", articleType={"Tops"}, baseColour={"Pink"}, gender={"Women"}),
    query("black shoes", anchor="subCategory", subCategory={"Shoes"}, baseColour={"Black"}),
    query("formal shirt for the office", articleType={"Shirts"}, usage={"Formal"}),
    query("something red for a festival", anchor=None, baseColour={"Red"}, usage={"Ethnic"}),
    query("women's kurti", articleType={"Kurtas"}, gender={"Women"}),
    query("shades for men", articleType={"Sunglasses"}, gender={"Men"}),
    query("navy jumper", articleType={"Sweaters"}, baseColour={"Navy Blue"}),
]


def main() -> None:
    styles = pd.read_csv(STYLES)
    (OUT / "qrels").mkdir(parents=True, exist_ok=True)
    lines, judgments = [], ["query-id\tcorpus-id\tscore"]
    for number, item in enumerate(QUERIES, start=1):
        query_id = f"fp{number:02d}"
        lines.append(json.dumps({"_id": query_id, "text": item.text}))
        graded = grades(styles, item)
        judgments += [f"{query_id}\t{styles['id'].iloc[i]}\t{graded[i]}" for i in graded.nonzero()[0]]
    (OUT / "queries.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (OUT / "qrels" / "test.tsv").write_text("\n".join(judgments) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
