"""Zero-shot classification with several prompt templates: each label's prompts are averaged (CLIP's ensembling)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from lookup_clip import image_bytes, lookup_bundle

from modaclip.cli import main
from modaclip.model.clip_model import load_model
from modaclip.model.zero_shot import classify_image
from modaclip.search.engine import CatalogSearch
from modaclip.serve.catalog_images import CatalogImages

PHOTO, WORN = "a photo of a {label}", "a {label} on a model"


def test_averaged_templates_choose_a_label_neither_template_chooses_alone() -> None:
    # image (0.6, 0.8); dress prompts (1, 0) and (0, 1); shirt prompts both (0.8, 0.6)
    bundle = lookup_bundle(
        {
            "a photo of a dress": [1.0, 0.0],
            "a dress on a model": [0.0, 1.0],
            "a photo of a shirt": [0.8, 0.6],
            "a shirt on a model": [0.8, 0.6],
        },
        images=[[0.6, 0.8]],
        logit_scale=100.0,
    )
    image = image_bytes(0)
    # one template: dress 0.6 (or 0.8) < shirt 0.6 * 0.8 + 0.8 * 0.6 = 0.96
    assert classify_image(bundle, image, ["dress", "shirt"], [PHOTO])[0][0] == "shirt"
    assert classify_image(bundle, image, ["dress", "shirt"], [WORN])[0][0] == "shirt"
    # both: dress = unit((1, 0) + (0, 1)) = (1, 1) / sqrt(2), so 1.4 / sqrt(2) = 0.98995 > 0.96
    ranked = classify_image(bundle, image, ["dress", "shirt"], [PHOTO, WORN])
    dress = 1.4 / math.sqrt(2)
    # probabilities: softmax of 100 x the similarities
    p_dress = 1 / (1 + math.exp(-100 * (dress - 0.96)))
    assert [label for label, _, _ in ranked] == ["dress", "shirt"]
    assert [number for _, *numbers in ranked for number in numbers] == pytest.approx(
        [dress, p_dress, 0.96, 1 - p_dress]
    )


def test_classify_command_averages_every_template_given(
    served_paths: dict[str, Path],
    served_engine: CatalogSearch,
    served_images: CatalogImages,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = served_images.get(int(served_engine.ids[0]))
    assert image is not None
    path = tmp_path / "photo.jpg"
    path.write_bytes(image)
    labels = ["dress", "shirt", "watch"]
    templates = ["--template", PHOTO, "--template", WORN]
    main(["classify", str(path), "--labels", *labels, *templates, "--json", "--model", str(served_paths["model"])])
    printed = {row["label"]: row["score"] for row in json.loads(capsys.readouterr().out)["labels"]}
    model = load_model(served_paths["model"])
    both = {label: score for label, score, _ in classify_image(model, image, labels, [PHOTO, WORN])}
    alone = {label: score for label, score, _ in classify_image(model, image, labels, [PHOTO])}
    assert printed == pytest.approx(both, abs=1e-6)
    assert not np.allclose(list(alone.values()), [both[label] for label in alone], atol=1e-4)
