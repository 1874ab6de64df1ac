"""The whole pipeline on a catalog in the layout of ceyda/fashion-products-small, with only data.source set
among the params that name fields: its fields (gender, masterCategory, subCategory; no articleType,
baseColour or title) drive every stage. The model and its epochs are the small ones of every pipeline
test (SIZE): they name no field, and the defaults (modaclip-tiny, 12 epochs) only made the test slower."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_pipeline import make_tiny_project, sh

from modaclip.core.catalog_io import read_catalog
from modaclip.ingest.synthetic import generate_catalog

SIZE = {"model": {"arch": "modaclip-micro"}, "train": {"epochs": 1}}


def write_ceyda_copy(root: Path, count: int) -> Path:
    """A local copy in the Hub layout of ceyda/fashion-products-small: id as text, gender,
    masterCategory, subCategory and the image; no articleType, baseColour or title."""
    import datasets

    rows = generate_catalog(count, seed=5, image_size=64, defect_rate=0.0)
    columns = ("gender", "masterCategory", "subCategory")
    table = {"id": [str(i) for i in rows["id"]], **{c: rows[c].tolist() for c in columns}}
    table["image"] = [{"bytes": data, "path": None} for data in rows["image"]]
    features = {"id": datasets.Value("string"), **{c: datasets.Value("string") for c in columns}}
    features["image"] = datasets.Image()
    dataset = datasets.Dataset.from_dict(table, features=datasets.Features(features))
    (root / "data").mkdir(parents=True)
    dataset.to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root


@pytest.mark.slow
def test_pipeline_runs_on_a_catalog_without_type_colour_or_title_with_only_the_source_set(tmp_path: Path) -> None:
    copy = write_ceyda_copy(tmp_path / "ceyda", 60)
    (tmp_path / "project").mkdir()
    project = make_tiny_project(tmp_path / "project", {"data": {"source": f"hf:{copy}"}, **SIZE})

    output = sh(project, "dvc", "repro")

    assert "type=subCategory, colour=(none), gender=gender, title=(none)" in output
    assert "'a photo of a {subCategory}'" in output, "the field-aware loss's texts fit the catalog"
    clean = json.loads((project / "metrics/clean.json").read_text())
    assert clean["rows_kept"] == 60 and clean["rows_dropped"] == 0
    captions = read_catalog(project / "data/clean", ["subCategory", "gender", "captions"]).iloc[0]
    sub, gender = captions["subCategory"].lower(), captions["gender"].lower()
    assert list(captions["captions"]) == [f"a photo of a {gender} {sub}", f"{sub} for {gender}"]
    train = json.loads((project / "metrics/train.json").read_text())
    assert train["val_zero_shot_f1"] is not None, "validation zero-shot classifies subCategory"
    report = json.loads((project / "metrics/eval.json").read_text())
    assert set(report["finetuned"]["zero_shot"]) == {"subCategory"}
    assert [key.split("_", 1)[1] for key in report["finetuned"]["image_to_image"]] == ["subCategory"]
    assert report["grid"]["queries_judged"] == 0, "the grid's answers name articleType and baseColour"
