"""Hybrid search must change the ranking: a brand word only product names carry brings those products to the top.

The served model is untrained, so its vector ranking of the query "woodland" is arbitrary: it puts none
of the four Woodland products in its top four. BM25 finds exactly those four (no attribute value says
"woodland"). Reciprocal rank fusion gives a product 1/(60 + rank) from each ranking that reaches it
(each contributes its top HYBRID_DEPTH), so the Woodland products that the vector ranking also reaches
score at least 1/64 + 1/160 and outrank every product only one ranking finds (at most 1/61): hybrid
search ranks exactly those first, in the engine, the API and the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_serve import make_client

from modaclip.cli import main
from modaclip.search.engine import HYBRID_DEPTH, CatalogSearch
from modaclip.serve.catalog_images import CatalogImages

WORD = "Woodland"
RRF_K = 60  # Cormack et al.'s constant, which the fused scores below are checked against


@pytest.fixture(scope="module")
def woodland(served_engine: CatalogSearch) -> set[int]:
    """Ids of the products whose name says Woodland."""
    names = served_engine.info["productDisplayName"].fillna("")
    named = {int(i) for i, name in zip(served_engine.ids, names) if WORD in name.split()}
    assert len(named) == 4, f"the test catalog should have 4 {WORD} products, has {len(named)}"
    return named


@pytest.fixture(scope="module")
def vector_rank(served_engine: CatalogSearch) -> dict[int, int]:
    """Each product's rank for the query in the vector ranking alone (the whole catalog)."""
    hits = served_engine.search_text([WORD.lower()], k=len(served_engine))[0]
    return {hit.id: rank for rank, hit in enumerate(hits, start=1)}


@pytest.fixture(scope="module")
def found_by_both(woodland: set[int], vector_rank: dict[int, int]) -> set[int]:
    """The Woodland products within the vector ranking's fusion depth: both rankings reach them."""
    both = {i for i in woodland if vector_rank[i] <= HYBRID_DEPTH}
    assert len(both) >= 2, f"the test catalog should put 2+ {WORD} products in the vector top {HYBRID_DEPTH}"
    return both


def test_the_vector_ranking_alone_misses_the_named_products(woodland: set[int], vector_rank: dict[int, int]) -> None:
    assert min(vector_rank[i] for i in woodland) > len(woodland)


def test_hybrid_puts_exactly_the_named_products_first_with_fused_scores(
    served_engine: CatalogSearch, woodland: set[int], found_by_both: set[int], vector_rank: dict[int, int]
) -> None:
    hits = served_engine.search_text([WORD.lower()], k=len(found_by_both), hybrid=True)[0]
    assert {hit.id for hit in hits} == found_by_both
    # each score is 1/(60 + vector rank) + 1/(60 + keyword rank), the keyword ranks distinct among 1..4
    keyword_ranks = [1 / (hit.score - 1 / (RRF_K + vector_rank[hit.id])) - RRF_K for hit in hits]
    assert [round(rank) for rank in keyword_ranks] == pytest.approx(keyword_ranks, abs=1e-6)
    assert len({round(rank) for rank in keyword_ranks}) == len(hits)
    assert {round(rank) for rank in keyword_ranks} <= set(range(1, len(woodland) + 1))


def test_hybrid_through_the_api(
    served_engine: CatalogSearch,
    served_images: CatalogImages,
    served_paths: dict[str, Path],
    woodland: set[int],
    found_by_both: set[int],
) -> None:
    with make_client(served_engine, served_images, served_paths) as client:
        query = {"q": WORD.lower(), "k": len(found_by_both)}
        fused = client.get("/api/search", params={**query, "hybrid": "true"}).json()["results"]
        plain = client.get("/api/search", params=query).json()["results"]
    assert {hit["id"] for hit in fused} == found_by_both
    assert not woodland & {hit["id"] for hit in plain}


def test_hybrid_from_the_command_line(
    served_paths: dict[str, Path], woodland: set[int], found_by_both: set[int], capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [arg for role in ("model", "embeddings", "catalog") for arg in (f"--{role}", str(served_paths[role]))]
    k = str(len(found_by_both))
    main(["search", WORD.lower(), "-k", k, "--hybrid", "--json", *paths])
    fused = json.loads(capsys.readouterr().out)[0]["results"]
    main(["search", WORD.lower(), "-k", k, "--json", *paths])
    plain = json.loads(capsys.readouterr().out)[0]["results"]
    assert {hit["id"] for hit in fused} == found_by_both
    assert not woodland & {hit["id"] for hit in plain}
