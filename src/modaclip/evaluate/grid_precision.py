"""How many of the example grid's products are what each query asked for, judged by the catalog's attributes.

`evaluate.grid_relevant` says, per grid query, which attribute values a right product has
("white sneakers": articleType Casual Shoes or Sports Shoes, baseColour White). A hit is right when
every listed attribute holds one of the listed values (case-insensitive). Queries without an entry,
or whose attributes this catalog does not fill, get no figure rather than a made-up one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modaclip.core.fields import CatalogFields
from modaclip.search.engine import SearchHit

Answer = dict[str, set[str]]  # column -> allowed values, lowercased


def resolve_answers(
    queries: Sequence[str], relevant: Mapping[str, Mapping[str, Sequence[str]]], catalog: CatalogFields
) -> dict[str, Answer | None]:
    """Each query's answer with roles resolved to columns and values lowercased; None where it cannot be judged."""
    answers: dict[str, Answer | None] = {}
    for query in queries:
        answer = relevant.get(query)
        columns = {name: catalog.resolve(name) for name in answer or {}}
        judgeable = answer and all(column in catalog.filled for column in columns.values())
        answers[query] = (
            {columns[name]: {value.lower() for value in values} for name, values in answer.items()}
            if judgeable
            else None
        )
    return answers


def is_right(hit: SearchHit, answer: Answer) -> bool:
    return all(str(hit.attributes.get(column) or "").lower() in values for column, values in answer.items())


def right_hits(
    queries: Sequence[str], results: Sequence[Sequence[SearchHit]], answers: Mapping[str, Answer | None]
) -> list[list[bool]]:
    """For each query's hits, whether each is right (all False where the query cannot be judged)."""
    return [
        [answer is not None and is_right(hit, answer) for hit in hits]
        for query, hits in zip(queries, results)
        for answer in [answers.get(query)]
    ]


def grid_precision(
    queries: Sequence[str], results: Sequence[Sequence[SearchHit]], answers: Mapping[str, Answer | None]
) -> dict[str, Any]:
    """Per judged query, the share of its k hits that are right; their mean, and how many queries were judged."""
    k = max((len(hits) for hits in results), default=0)
    flags = right_hits(queries, results, answers)
    precision = {query: sum(right) / k for query, right in zip(queries, flags) if answers.get(query) is not None and k}
    return {
        f"precision@{k}": precision,
        f"mean_precision@{k}": sum(precision.values()) / len(precision) if precision else None,
        "queries_judged": len(precision),
    }
