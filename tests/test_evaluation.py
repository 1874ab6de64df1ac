from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TEST_ARCH
from test_labelled_sets import write_fmnist

from modaclip.core.catalog_io import read_catalog
from modaclip.core.config import EmbedParams, EvaluateParams, Params
from modaclip.core.errors import ModaclipError
from modaclip.embed.embedding import embed_catalog
from modaclip.evaluate.evaluation import compare_base_and_finetuned, evaluate_saved_model
from modaclip.evaluate.markdown_report import leaves
from modaclip.model.clip_model import create_base_model, save_model
from modaclip.registry.promotion import metric_value


@pytest.fixture(scope="module")
def evaluated(clean_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """eval.json of a 'fine-tuned' model that is another random init than the base, plus a tiny Fashion-MNIST set;
    its per-product table, and the same model scored alone as the promotion gate scores production."""
    root = tmp_path_factory.mktemp("evaluate")
    save_model(create_base_model(TEST_ARCH, "none", seed=5), root / "model")
    embed_catalog(root / "model", clean_dir, root / "embeddings", EmbedParams(batch_size=32))
    fmnist = write_fmnist(root / "fashion-mnist", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 1])
    params = Params(evaluate=EvaluateParams(recall_ks=[1, 5], zero_shot_sets=[f"fmnist:{fmnist}"]))
    result, _, per_product = compare_base_and_finetuned(root / "model", root / "embeddings", clean_dir, params)
    alone, alone_per_product = evaluate_saved_model(root / "model", root / "embeddings", clean_dir, params)
    return {"report": result, "per_product": per_product, "alone": alone, "alone_per_product": alone_per_product}


@pytest.fixture(scope="module")
def report(evaluated: dict) -> dict:
    return evaluated["report"]


def test_kagl_sections_for_both_models(report: dict, clean_dir: Path) -> None:
    test_items = read_catalog(clean_dir, columns=["productDisplayName"], split="test")
    assert report["kagl"]["title_queries"] == test_items["productDisplayName"].notna().sum() > 0
    for model in ("base", "finetuned"):
        kagl = report[model]["kagl"]
        assert kagl["text_to_image"].keys() == {"recall@1", "recall@10", "mrr"}
        assert kagl["label_to_product"].keys() == {"masterCategory", "subCategory", "baseColour"}
        assert all(0.0 <= value <= 1.0 for _, value in leaves(kagl))
    assert report["kagl"]["label_queries"]["masterCategory"] >= 1


def test_zero_shot_set_section_with_delta(report: dict) -> None:
    assert report["zero_shot_sets"]["fmnist"] == {
        "source": report["zero_shot_sets"]["fmnist"]["source"],
        "images": 12,
        "classes": 10,
    }
    base, tuned = report["base"]["zero_shot_sets"]["fmnist"], report["finetuned"]["zero_shot_sets"]["fmnist"]
    assert report["delta"]["zero_shot_sets"]["fmnist"]["weighted_f1"] == pytest.approx(
        tuned["weighted_f1"] - base["weighted_f1"]
    )
    assert report["delta"]["kagl"]["text_to_image"]["mrr"] == pytest.approx(
        report["finetuned"]["kagl"]["text_to_image"]["mrr"] - report["base"]["kagl"]["text_to_image"]["mrr"]
    )


def test_existing_sections_still_there(report: dict) -> None:
    for model in ("base", "finetuned"):
        assert {"text_to_image", "image_to_image", "zero_shot"} <= report[model].keys()
        assert "recall@1" in report[model]["text_to_image"]


def test_missing_set_stops_before_any_model_is_loaded(clean_dir: Path, tmp_path: Path) -> None:
    params = Params(evaluate=EvaluateParams(zero_shot_sets=[f"fmnist:{tmp_path / 'absent'}"]))
    with pytest.raises(ModaclipError, match=r"evaluate.zero_shot_sets\[0\]: folder .*absent not found"):
        compare_base_and_finetuned(tmp_path / "no-model", tmp_path / "no-embeddings", clean_dir, params)


def test_per_product_values_average_to_the_reported_figures(evaluated: dict, clean_dir: Path) -> None:
    report, table = evaluated["report"], evaluated["per_product"]
    test_ids = read_catalog(clean_dir, columns=["id"], split="test")["id"]
    assert table["id"].tolist() == test_ids.tolist() and table["id"].is_unique
    expected = {
        f"{model}.{path}"
        for model in ("base", "finetuned")
        for path in (
            "text_to_image.recall@1",
            "text_to_image.recall@5",
            "text_to_image.attribute_precision@5",
            "image_to_image.precision@10_articleType",
            "zero_shot.articleType.accuracy",
        )
    }
    assert expected <= set(table.columns)
    for column in table.columns.drop("id"):
        assert table[column].mean() == pytest.approx(metric_value(report, column, "eval.json"), abs=1e-12), column
    assert set(np.unique(table["finetuned.text_to_image.recall@1"])) <= {0.0, 1.0}


def test_a_model_scored_alone_matches_its_half_of_eval_json(evaluated: dict) -> None:
    """The promotion gate scores production this way: same figures, same per-product values, same split digest."""
    report, alone = evaluated["report"], evaluated["alone"]
    assert alone["finetuned"] == report["finetuned"]
    assert (alone["test_items"], alone["test_digest"]) == (report["test_items"], report["test_digest"])
    finetuned = evaluated["per_product"].filter(regex=r"^(id|finetuned\.)")
    pd.testing.assert_frame_equal(evaluated["alone_per_product"], finetuned)


def test_judged_query_sets_for_both_models_both_searches(evaluated: dict) -> None:
    """The default shoppers' set: figures for base and fine-tuned, vector and hybrid; production scoring (`alone`)
    gets the same figures at the same dotted paths, so the gate can guard on them."""
    report, alone = evaluated["report"], evaluated["alone"]
    assert report["query_sets"]["shoppers"]["scored_queries"] >= 50
    for model in ("base", "finetuned"):
        figures = report[model]["query_sets"]["shoppers"]
        assert figures.keys() == {"vector", "hybrid"}
        for mode in figures.values():
            assert mode.keys() == {"ndcg@10", "recall@10", "recall@50", "mrr@10"}
            assert all(0.0 <= value <= 1.0 for value in mode.values())
            assert mode["recall@50"] >= mode["recall@10"]
    assert alone["finetuned"]["query_sets"] == report["finetuned"]["query_sets"]
    path = "finetuned.query_sets.shoppers.hybrid.ndcg@10"
    assert metric_value(alone, path, "production") == metric_value(report, path, "candidate")
    assert report["delta"]["query_sets"]["shoppers"]["vector"]["ndcg@10"] == pytest.approx(
        report["finetuned"]["query_sets"]["shoppers"]["vector"]["ndcg@10"]
        - report["base"]["query_sets"]["shoppers"]["vector"]["ndcg@10"]
    )
