"""One row per id from `download` on: a shop export that repeats ids keeps each id's last row, counted."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_sources import synthetic_rows

from modaclip.core.catalog_io import part_files, read_catalog
from modaclip.core.config import DataParams
from modaclip.core.errors import ModaclipError
from modaclip.ingest.bad_rows import BadRows
from modaclip.ingest.sources import read_source
from modaclip.ingest.unique_ids import UniqueIdParts, superseded

REPO = Path(__file__).resolve().parents[1]


def export_repeating_ids(root: Path) -> pd.DataFrame:
    """20 products, then 10 of their ids again, each with another product and photo (a re-listing)."""
    products = synthetic_rows(30)
    products["id"] = [*range(1, 21), *range(1, 11)]
    (root / "pictures").mkdir(parents=True)
    paths = []
    for position, row in enumerate(products.to_dict("records")):
        (root / "pictures" / f"{position}.jpg").write_bytes(row["image"])
        paths.append(f"pictures/{position}.jpg")
    export = pd.DataFrame(
        {"id": products["id"], "articleType": products["articleType"], "gender": products["gender"], "image": paths}
    )
    export.to_csv(root / "export.csv", index=False)
    return products


def test_superseded_marks_every_row_but_each_ids_last() -> None:
    assert superseded(np.array([5, 7, 5, 9, 5, 7])).tolist() == [True, True, True, False, False, False]
    assert superseded(np.array([], dtype=np.int64)).tolist() == []


def test_a_csv_export_with_repeated_ids_keeps_each_ids_last_row_and_counts_the_others(tmp_path: Path) -> None:
    products = export_repeating_ids(tmp_path / "shop")
    params = DataParams(source=f"csv:{tmp_path / 'shop' / 'export.csv'}", chunk_rows=7, max_bad_rows=0.5)
    skipped = BadRows(params.max_bad_rows)

    rows = UniqueIdParts(skipped, params.source).write(read_source(params, skipped), tmp_path / "raw")

    raw = read_catalog(tmp_path / "raw")
    assert rows == len(raw) == 20 and raw["id"].is_unique and len(part_files(tmp_path / "raw")) == 5
    newest = products.iloc[10:].drop_duplicates("id", keep="last").set_index("id")
    by_id = raw.set_index("id")
    assert by_id.loc[newest.index, "articleType"].tolist() == newest["articleType"].tolist()
    assert by_id.loc[newest.index, "image"].tolist() == newest["image"].tolist(), "the re-listing's photo"
    assert skipped.summary() == {"rows_skipped": 10, "skipped": {"duplicate_id": 10}}


def test_repeated_ids_past_max_bad_rows_stop_download_naming_the_first(tmp_path: Path) -> None:
    export_repeating_ids(tmp_path / "shop")
    params = DataParams(source=f"csv:{tmp_path / 'shop' / 'export.csv'}", max_bad_rows=0.2)
    skipped = BadRows(params.max_bad_rows)
    named = r"10 of 30 rows are malformed or repeat an id \(33.33%.*\): id 1 at row 1, repeated later \(duplicate_id\)"
    with pytest.raises(ModaclipError, match=named):
        UniqueIdParts(skipped, params.source).write(read_source(params, skipped), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_the_download_stage_counts_repeated_ids_in_its_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export_repeating_ids(tmp_path / "shop")
    (tmp_path / "params.yaml").write_text(
        f"data:\n  source: csv:{tmp_path / 'shop' / 'export.csv'}\n  max_bad_rows: 0.5\n"
    )
    argv = ["download.py", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "raw")]
    monkeypatch.setattr(sys, "argv", [*argv, "--metrics", str(tmp_path / "download.json")])
    runpy.run_path(str(REPO / "stages" / "download.py"), run_name="__main__")
    metrics = json.loads((tmp_path / "download.json").read_text())
    assert metrics == {"rows": 20, "rows_skipped": 10, "skipped": {"duplicate_id": 10}}
