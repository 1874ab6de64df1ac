from pathlib import Path

import pytest
from conftest import TEST_ARCH
from test_labelled_sets import write_fmnist

from modaclip.core.catalog_io import read_catalog
from modaclip.core.config import EmbedParams, EvaluateParams, Params
from modaclip.core.errors import ModaclipError
from modaclip.embed.embedding import embed_catalog
from modaclip.evaluate.evaluation import compare_base_and_finetuned
from modaclip.evaluate.markdown_report import leaves
from modaclip.model.clip_model import create_base_model, save_model


@pytest.fixture(scope="module")
def report(clean_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """eval.json of a 'fine-tuned' model that is another random init than the base, plus a tiny Fashion-MNIST set."""
    root = tmp_path_factory.mktemp("evaluate")
    save_model(create_base_model(TEST_ARCH, "none", seed=5), root / "model")
    embed_catalog(root / "model", clean_dir, root / "embeddings", EmbedParams(batch_size=32))
    fmnist = write_fmnist(root / "fashion-mnist", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 1])
    params = Params(evaluate=EvaluateParams(recall_ks=[1, 5], zero_shot_sets=[f"fmnist:{fmnist}"]))
    result, _ = compare_base_and_finetuned(root / "model", root / "embeddings", clean_dir, params)
    return result


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
