"""`modaclip retrain` reads the current catalog: an external `dir:` catalog grown by 50 products is read and
trained on, and an unchanged one reruns nothing after `download` (download is `always_changed`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_pipeline import TINY, make_tiny_project, stages_run
from test_retrain import retrain
from test_sources import STYLES_HEADER

from modaclip.core.catalog_io import count_rows
from modaclip.ingest.synthetic import generate_catalog

pytestmark = pytest.mark.slow


def write_kaggle_dir(root: Path, products: pd.DataFrame) -> None:
    """A catalog in the Kaggle layout (styles.csv, images/ID.jpg), as a shop's nightly export would leave it."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    columns = STYLES_HEADER.split(",")
    products[columns].to_csv(root / "styles.csv", index=False)
    for product_id, image in zip(products["id"], products["image"]):
        (root / "images" / f"{product_id}.jpg").write_bytes(image)


def test_retrain_reads_the_grown_external_catalog_and_an_unchanged_one_reruns_nothing_after_download(
    tmp_path: Path,
) -> None:
    products = generate_catalog(150, seed=5, image_size=64, defect_rate=0.0)
    catalog = tmp_path / "shop-export"
    write_kaggle_dir(catalog, products.iloc[:100])
    (tmp_path / "project").mkdir()
    project = make_tiny_project(tmp_path / "project", {**TINY, "data": {"source": f"dir:{catalog}"}})

    first = retrain(project)
    assert stages_run(first["out"]) == {"download", "caption", "finetune", "embed", "evaluate"}, first["out"]
    assert count_rows(project / "data/raw") == 100

    unchanged = retrain(project)
    assert stages_run(unchanged["out"]) == {"download"}, unchanged["out"]

    write_kaggle_dir(catalog, products)  # 50 new products in the same folder; nothing in the repository changed
    grown = retrain(project)
    assert stages_run(grown["out"]) == {"download", "caption", "finetune", "embed", "evaluate"}, grown["out"]
    assert count_rows(project / "data/raw") == 150
    assert "starting fresh: the training rows and the validation rows changed" in grown["out"]
