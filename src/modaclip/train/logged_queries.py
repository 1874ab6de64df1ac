"""The `{queries}` training field: each product's logged shopper queries, from a feedback export's pairs.

`modaclip feedback export` writes pairs.parquet (query, product_id, weight, ...). A product's logged
queries are the queries of its pairs; each epoch one of them is drawn, with probability
proportional to its pair weight (clicks corrected for position bias), as its `{queries}` text. A
product shoppers never clicked has none, and is left out of that field's loss like a product
without a role's value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modaclip.core.config import Params, TrainParams
from modaclip.core.errors import ModaclipError
from modaclip.core.fields import QUERIES_FIELD

PAIRS_FILE = "pairs.parquet"
PAIR_COLUMNS = ("query", "product_id", "weight")


@dataclass(frozen=True)
class QueryOptions:
    """One product's logged queries and the probability of drawing each."""

    texts: tuple[str, ...]
    probabilities: tuple[float, ...]

    def draw(self, rng: np.random.Generator) -> str:
        return self.texts[int(rng.choice(len(self.texts), p=self.probabilities))]


@dataclass(frozen=True)
class LoggedQueries:
    """The pairs of a feedback export: product id -> its queries with weights."""

    pairs: pd.DataFrame

    @classmethod
    def read(cls, folder: str | Path) -> LoggedQueries:
        path = Path(folder) / PAIRS_FILE
        if not path.is_file():
            raise ModaclipError(f"{path}: no feedback pairs (write them with `modaclip feedback export`)")
        pairs = pd.read_parquet(path)
        missing = [column for column in PAIR_COLUMNS if column not in pairs.columns]
        if missing:
            raise ModaclipError(f"{path}: not a feedback export's pairs: no column(s) {missing}")
        if len(pairs) and not (pairs["weight"] > 0).all():
            raise ModaclipError(f"{path}: pair weights must be above 0")
        return cls(pairs.astype({"product_id": str}))

    def options(self, product_ids: Sequence[object]) -> list[QueryOptions | None]:
        """Each product's options, in the given order; None for a product without logged queries."""
        by_product: Mapping[str, QueryOptions] = {
            str(product): QueryOptions(tuple(group["query"]), tuple(group["weight"] / group["weight"].sum()))
            for product, group in self.pairs.groupby("product_id", sort=True)
        }
        return [by_product.get(str(product)) for product in product_ids]


def feedback_train_params(params: Params) -> TrainParams:
    """train with feedback.train's epochs, lr and warmup, and `{queries}` weighted feedback.train.queries_weight
    (unless train.fields weighs it already): what finetune --feedback trains with."""
    settings = params.feedback.train
    fields = {QUERIES_FIELD: settings.queries_weight, **params.train.fields}
    update = {"epochs": settings.epochs, "lr": settings.lr, "warmup_steps": settings.warmup_steps, "fields": fields}
    return params.train.model_copy(update=update)
