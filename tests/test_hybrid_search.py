"""Hybrid search must change the ranking: a brand word only product names carry brings those products to the top.

The served model is untrained, so its vector ranking of the query "woodland" is arbitrary: it puts none
of the four Woodland products in its top four. BM25 finds exactly those four (no attribute value says
"woodland"), and reciprocal rank fusion then ranks them first: in the engine, the API and the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_serve import make_client

from modaclip.cli import main
from modaclip.search.engine import CatalogSearch
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


def test_the_vector_ranking_alone_misses_the_named_products(woodland: set[int], vector_rank: dict[int, int]) -> None:
    assert min(vector_rank[i] for i in woodland) > len(woodland)


def test_hybrid_puts_exactly_the_named_products_first_with_fused_scores(
    served_engine: CatalogSearch, woodland: set[int], vector_rank: dict[int, int]
) -> None:
    hits = served_engine.search_text([WORD.lower()], k=len(woodland), hybrid=True)[0]
    assert {hit.id for hit in hits} == woodland
    # each score is 1/(60 + vector rank) + 1/(60 + keyword rank); the four keyword ranks are 1..4
    keyword_ranks = [1 / (hit.score - 1 / (RRF_K + vector_rank[hit.id])) - RRF_K for hit in hits]
    assert sorted(keyword_ranks) == pytest.approx([1, 2, 3, 4], abs=1e-6)


def test_hybrid_through_the_api(
    served_engine: CatalogSearch,
    served_images: CatalogImages,
    served_paths: dict[str, Path],
    woodland: set[int],
) -> None:
    with make_client(served_engine, served_images, served_paths) as client:
        query = {"q": WORD.lower(), "k": len(woodland)}
        fused = client.get("/api/search", params={**query, "hybrid": "true"}).json()["results"]
        plain = client.get("/api/search", params=query).json()["results"]
    assert {hit["id"] for hit in fused} == woodland
    assert not woodland & {hit["id"] for hit in plain}


def test_hybrid_from_the_command_line(
    served_paths: dict[str, Path], woodland: set[int], capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [arg for role in ("model", "embeddings", "catalog") for arg in (f"--{role}", str(served_paths[role]))]
    main(["search", WORD.lower(), "-k", str(len(woodland)), "--hybrid", "--json", *paths])
    fused = json.loads(capsys.readouterr().out)[0]["results"]
    main(["search", WORD.lower(), "-k", str(len(woodland)), "--json", *paths])
    plain = json.loads(capsys.readouterr().out)[0]["results"]
    assert {hit["id"] for hit in fused} == woodland
    assert not woodland & {hit["id"] for hit in plain}
