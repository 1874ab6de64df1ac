from pathlib import Path

import pytest

from modaclip.core.catalog_io import read_catalog, write_parts
from modaclip.core.config import CaptionParams
from modaclip.core.errors import ModaclipError
from modaclip.curate.clean_and_caption import clean_and_caption
from modaclip.ingest.synthetic import generate_catalog


def test_clean_and_caption_counts_and_splits(tmp_path: Path) -> None:
    write_parts([generate_catalog(220, seed=2, image_size=64)], tmp_path / "raw")
    summary = clean_and_caption(tmp_path / "raw", tmp_path / "clean", CaptionParams())
    assert summary["rows_in"] == 220
    assert summary["rows_kept"] + summary["rows_dropped"] == 220
    for reason in ("missing_attribute", "unreadable_image", "tiny_image", "duplicate_image"):
        assert summary["dropped"][reason] >= 1, reason
    clean = read_catalog(tmp_path / "clean")
    assert len(clean) == summary["rows_kept"]
    assert clean.groupby("split").size().to_dict() == {k: v for k, v in summary["splits"].items() if v}
    assert all(len(captions) >= 1 for captions in clean["captions"])
    assert clean["id"].is_unique


def test_catalog_empty_after_cleaning_stops_and_writes_nothing(tmp_path: Path) -> None:
    raw = generate_catalog(30, seed=0, image_size=64, defect_rate=0.0)
    raw["image"] = [b"not an image"] * len(raw)
    write_parts([raw], tmp_path / "raw")
    with pytest.raises(ModaclipError, match=r"empty after cleaning: all 30 rows were dropped \(unreadable_image: 30\)"):
        clean_and_caption(tmp_path / "raw", tmp_path / "clean", CaptionParams())
    assert not (tmp_path / "clean").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "raw"], "a temporary output was left behind"


def test_unknown_template_field_is_named(tmp_path: Path) -> None:
    write_parts([generate_catalog(10, seed=0, image_size=64)], tmp_path / "raw")
    with pytest.raises(ModaclipError, match="color"):
        clean_and_caption(tmp_path / "raw", tmp_path / "clean", CaptionParams(templates=["a {color} thing"]))
