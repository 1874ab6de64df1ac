import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modaclip.cli import main
from modaclip.core.config import EmbedParams, IndexParams
from modaclip.core.errors import ModaclipError
from modaclip.embed.embedding import embed_catalog
from modaclip.embed.stored import load_embeddings
from modaclip.model.clip_model import create_base_model, decode_image, save_model
from modaclip.model.zero_shot import classify_image
from modaclip.search.engine import CatalogSearch, json_value, read_image_file
from modaclip.search.filters import AttributeFilter, parse_filters


@pytest.fixture(scope="module")
def engine_paths(clean_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("search")
    save_model(create_base_model("modaclip-tiny", "none", seed=0), root / "model")
    embed_catalog(root / "model", clean_dir, root / "embeddings", EmbedParams(batch_size=32))
    return {"model": root / "model", "embeddings": root / "embeddings", "catalog": clean_dir}


@pytest.fixture(scope="module")
def engine(engine_paths: dict[str, Path]) -> CatalogSearch:
    return CatalogSearch.open(engine_paths["model"], engine_paths["embeddings"], engine_paths["catalog"])


def test_embeddings_are_unit_vectors_for_every_product(engine: CatalogSearch) -> None:
    assert len(engine) == len(set(engine.ids.tolist()))
    np.testing.assert_allclose(np.linalg.norm(engine.vectors, axis=1), 1.0, rtol=1e-5)


def test_search_returns_k_ranked_hits_per_query(engine: CatalogSearch) -> None:
    results = engine.search_text(["red dress", "black shoes"], k=5)
    assert [len(hits) for hits in results] == [5, 5]
    for hits in results:
        scores = [hit.score for hit in hits]
        assert scores == sorted(scores, reverse=True)
        assert all(hit.attributes["articleType"] for hit in hits)


@pytest.mark.parametrize(
    ("queries", "k", "message"),
    [(["red"], 0, "k must be between 1"), (["red"], 10**6, "k must be between 1"), (["  "], 3, "empty search query")],
)
def test_bad_search_input(engine: CatalogSearch, queries: list[str], k: int, message: str) -> None:
    with pytest.raises(ModaclipError, match=message):
        engine.search_text(queries, k)


def test_embeddings_of_another_model_are_refused(engine_paths: dict[str, Path], tmp_path: Path) -> None:
    save_model(create_base_model("modaclip-tiny", "none", seed=1), tmp_path / "other")
    with pytest.raises(ModaclipError, match="embedded with another model"):
        load_embeddings(engine_paths["embeddings"], tmp_path / "other")


def test_cli_search_json(engine_paths: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "--model",
        str(engine_paths["model"]),
        "--embeddings",
        str(engine_paths["embeddings"]),
        "--catalog",
        str(engine_paths["catalog"]),
    ]
    main(["search", "blue jeans", "white shoes", "-k", "2", "--json", *args])
    payload = json.loads(capsys.readouterr().out)
    assert [entry["query"] for entry in payload] == ["blue jeans", "white shoes"]
    assert all(
        len(entry["results"]) == 2
        and {"id", "score", "name", "attributes"} == set(entry["results"][0])
        and entry["results"][0]["attributes"]["articleType"]
        for entry in payload
    )


def test_cli_error_is_one_line(engine_paths: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "search",
                "red",
                "-k",
                "0",
                "--model",
                str(engine_paths["model"]),
                "--embeddings",
                str(engine_paths["embeddings"]),
                "--catalog",
                str(engine_paths["catalog"]),
            ]
        )
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().startswith("modaclip: error: k must be between 1")


@pytest.fixture(scope="module", params=["hnsw", "ivfflat"])
def approximate_engine(
    engine_paths: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> CatalogSearch:
    """The same catalog behind an approximate index with exact_below=0, so filtered searches go through the index."""
    out = tmp_path_factory.mktemp(request.param) / "embeddings"
    params = EmbedParams(batch_size=32, index=IndexParams(type=request.param, exact_below=0))
    embed_catalog(engine_paths["model"], engine_paths["catalog"], out, params, previous_dir=engine_paths["embeddings"])
    return CatalogSearch.open(engine_paths["model"], out, engine_paths["catalog"])


def cli_paths(engine_paths: dict[str, Path]) -> list[str]:
    return [
        "--model",
        str(engine_paths["model"]),
        "--embeddings",
        str(engine_paths["embeddings"]),
        "--catalog",
        str(engine_paths["catalog"]),
    ]


def test_filtered_search_returns_k_matching_products(engine: CatalogSearch) -> None:
    check_women_only(engine)


def test_filtered_search_through_the_index_returns_k_matching_products(approximate_engine: CatalogSearch) -> None:
    check_women_only(approximate_engine)


def check_women_only(engine: CatalogSearch) -> None:
    women = int((engine.info["gender"] == "Women").sum())
    assert women > 10
    results = engine.search_text(["red dress"], k=10, filters=parse_filters(["gender=women"]))
    assert len(results[0]) == 10 and all(hit.attributes["gender"] == "Women" for hit in results[0])
    everything = engine.search_text(["red dress"], k=women, filters=parse_filters(["gender=Women"]))
    assert len(everything[0]) == women


def test_filtered_search_through_the_index_matches_exact_search(
    engine: CatalogSearch, approximate_engine: CatalogSearch
) -> None:
    filters = parse_filters(["gender=Men", "masterCategory=Apparel,Footwear"])
    exact = engine.search_text(["black shoes"], k=5, filters=filters)[0]
    approximate = approximate_engine.search_text(["black shoes"], k=5, filters=filters)[0]
    assert [hit.id for hit in approximate] == [hit.id for hit in exact]


def test_numeric_range_filter(engine: CatalogSearch) -> None:
    years = engine.info["year"].dropna()
    low = int(years.median())
    hits = engine.search_text(["shirt"], k=5, filters=parse_filters([f"year={low}.."]))[0]
    assert hits and all(engine.info.loc[engine.row_of[hit.id], "year"] >= low for hit in hits)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (["colour=Red"], "unknown attribute 'colour'"),
        (["gender=Martian"], "no product matches"),
        (["gender"], "expected ATTRIBUTE=VALUE"),
        (["year=a..b"], "is not a number"),
        (["gender=1..2"], "not numeric"),
    ],
)
def test_bad_filters(engine: CatalogSearch, filters: list[str], message: str) -> None:
    with pytest.raises(ModaclipError, match=message):
        engine.search_text(["red"], 3, filters=parse_filters(filters))


def test_similar_to_a_product_excludes_itself(engine: CatalogSearch) -> None:
    product = int(engine.ids[0])
    hits = engine.similar(product, k=5)
    assert len(hits) == 5 and product not in [hit.id for hit in hits]
    woman = int(engine.ids[int(np.argmax(engine.info["gender"] == "Women"))])
    women = engine.similar(woman, k=5, filters=parse_filters(["gender=Women"]))
    assert len(women) == 5 and woman not in [hit.id for hit in women]
    assert all(hit.attributes["gender"] == "Women" for hit in women)


def test_a_products_stored_image_is_searched_as_that_product(engine: CatalogSearch) -> None:
    product = int(engine.ids[3])
    image = engine.images([product])[product]
    assert engine.products_with_image(image) == [product]
    for filters in ([], parse_filters([f"gender={engine.info.loc[3, 'gender']}"])):
        by_image, by_id = engine.similar(image, k=5, filters=filters), engine.similar(product, k=5, filters=filters)
        assert len(by_image) == 5 and product not in [hit.id for hit in by_image]
        assert [(hit.id, hit.score) for hit in by_image] == [(hit.id, hit.score) for hit in by_id]


def test_a_new_photo_of_a_product_is_searched_as_a_new_image(engine: CatalogSearch) -> None:
    """The same pixels saved as PNG are not the stored file,
    so they are embedded and the product itself can rank first."""
    product = int(engine.ids[3])
    png = io.BytesIO()
    decode_image(engine.images([product])[product]).save(png, format="PNG")
    assert engine.products_with_image(png.getvalue()) == []
    hits = engine.similar(png.getvalue(), k=3)
    assert hits[0].id == product and hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_similar_to_an_unknown_product_id(engine: CatalogSearch) -> None:
    with pytest.raises(ModaclipError, match="not in the catalog"):
        engine.similar(10**12, k=3)


def test_hybrid_search_returns_k_fused_hits_within_the_filter(engine: CatalogSearch) -> None:
    hits = engine.search_text(["blue jeans for men"], k=7, filters=[AttributeFilter("gender", ("Men",))], hybrid=True)[
        0
    ]
    assert len(hits) == 7 and all(hit.attributes["gender"] == "Men" for hit in hits)
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True) and scores[0] <= 2 / 61


def test_not_an_image_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not really a png")
    with pytest.raises(ModaclipError, match=r"notes\.png: not an image"):
        read_image_file(tmp_path / "notes.png")


def test_classify_ranks_every_label_with_probabilities(engine: CatalogSearch) -> None:
    image = next(iter(engine.images([int(engine.ids[0])]).values()))
    ranked = classify_image(engine.embedder, image, ["dress", "shoe", "watch"])
    assert sorted(label for label, _, _ in ranked) == ["dress", "shoe", "watch"]
    assert sum(p for _, _, p in ranked) == pytest.approx(1.0)
    assert [s for _, s, _ in ranked] == sorted((s for _, s, _ in ranked), reverse=True)


def test_cli_batch_queries_from_a_file_with_filter(
    engine_paths: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "queries.txt").write_text("red dress\n\nblack shoes\n")
    main(
        [
            "search",
            "blue jeans",
            "--queries-file",
            str(tmp_path / "queries.txt"),
            "--filter",
            "gender=Women",
            "-k",
            "3",
            "--json",
            *cli_paths(engine_paths),
        ]
    )
    payload = json.loads(capsys.readouterr().out)
    assert [entry["query"] for entry in payload] == ["blue jeans", "red dress", "black shoes"]
    assert all(
        len(e["results"]) == 3 and all(r["attributes"]["gender"] == "Women" for r in e["results"]) for e in payload
    )


def test_cli_similar_json_and_grid(
    engine_paths: dict[str, Path], engine: CatalogSearch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product = str(int(engine.ids[5]))
    main(["similar", product, "-k", "4", "--json", "--grid", str(tmp_path / "grid.png"), *cli_paths(engine_paths)])
    payload = json.loads(capsys.readouterr().out)
    assert payload[0]["query"] == product and len(payload[0]["results"]) == 4
    assert product not in [str(r["id"]) for r in payload[0]["results"]]
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_cli_similar_to_a_stored_product_image_excludes_that_product(
    engine_paths: dict[str, Path], engine: CatalogSearch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    product = int(engine.ids[5])
    image = tmp_path / "stored.jpg"
    image.write_bytes(engine.images([product])[product])
    main(["similar", str(image), "-k", "4", "--json", *cli_paths(engine_paths)])
    by_image = json.loads(capsys.readouterr().out)[0]["results"]
    main(["similar", str(product), "-k", "4", "--json", *cli_paths(engine_paths)])
    by_id = json.loads(capsys.readouterr().out)[0]["results"]
    assert len(by_image) == 4 and by_image == by_id


def test_cli_classify_json(
    engine_paths: dict[str, Path], engine: CatalogSearch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "item.jpg"
    image.write_bytes(next(iter(engine.images([int(engine.ids[0])]).values())))
    main(
        [
            "classify",
            str(image),
            "--labels",
            "dress",
            "shirt",
            "belt",
            "-k",
            "2",
            "--json",
            "--model",
            str(engine_paths["model"]),
        ]
    )
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["labels"]) == 2 and {e["label"] for e in payload["labels"]} <= {"dress", "shirt", "belt"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "red", "--filter", "colour=Red"], "unknown attribute 'colour'"),
        (["search", "--queries-file", "/nonexistent/q.txt"], "cannot read queries"),
        (["similar", "not-a-product"], "neither an image file nor a product id"),
        (["similar", "-k", "0", "1"], "k must be between 1"),
    ],
)
def test_cli_bad_input_is_one_line(
    engine_paths: dict[str, Path], argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, *cli_paths(engine_paths)])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and message in err and len(err.splitlines()) == 1


def test_cli_refuses_embeddings_of_another_model(
    engine_paths: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_model(create_base_model("modaclip-tiny", "none", seed=2), tmp_path / "other")
    with pytest.raises(SystemExit):
        main(
            [
                "similar",
                "1",
                "--model",
                str(tmp_path / "other"),
                "--embeddings",
                str(engine_paths["embeddings"]),
                "--catalog",
                str(engine_paths["catalog"]),
            ]
        )
    err = capsys.readouterr().err.strip()
    assert "embedded with another model" in err and "stages/embed.py --model" in err and len(err.splitlines()) == 1


def test_json_value_makes_missing_values_none_and_numpy_scalars_python() -> None:
    assert [json_value(v) for v in (None, float("nan"), np.float32("nan"), pd.NA, pd.NaT)] == [None] * 5
    assert json_value(np.int64(2012)) == 2012 and type(json_value(np.int64(2012))) is int
    assert json_value("Red") == "Red" and json_value(19.5) == 19.5
