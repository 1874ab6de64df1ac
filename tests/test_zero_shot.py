"""The one zero-shot predictor: classify (CLI and server), training validation and evaluation agree."""

from __future__ import annotations

from pathlib import Path

from conftest import TEST_ARCH

from modaclip.core.catalog_io import read_catalog
from modaclip.model.clip_model import create_base_model, encode_images
from modaclip.model.zero_shot import classification_json, classify_image, predict_labels

LABELS = ["dress", "shirt", "jeans", "belt", "shoes"]


def test_classify_and_predict_labels_choose_the_same_label(clean_dir: Path) -> None:
    bundle = create_base_model(TEST_ARCH, "none", seed=0)
    images = read_catalog(clean_dir, columns=["image"])["image"].tolist()[:6]
    predicted = predict_labels(bundle, encode_images(bundle, images), LABELS)
    assert predicted == [classify_image(bundle, image, LABELS)[0][0] for image in images]


def test_classification_json_keeps_the_ranking_and_rounds() -> None:
    payload = classification_json([("dress", 0.31234567, 0.7), ("shirt", 0.1, 0.3)])
    assert payload == {
        "labels": [
            {"label": "dress", "score": 0.312346, "probability": 0.7},
            {"label": "shirt", "score": 0.1, "probability": 0.3},
        ]
    }
