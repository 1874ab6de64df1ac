"""Every `data.source` format, on tiny generated fixtures in each format's own layout."""

from __future__ import annotations

import io
from pathlib import Path

import datasets
import pandas as pd
import pytest
from conftest import SHARED_DATA
from PIL import Image

from modaclip.core.catalog_io import read_catalog, write_parts
from modaclip.core.config import CaptionParams, DataParams, parse_params
from modaclip.core.errors import ModaclipError
from modaclip.core.schema import IMAGE_ERROR_COLUMN
from modaclip.curate.clean_and_caption import clean_and_caption
from modaclip.ingest.bad_rows import BadRows
from modaclip.ingest.kaggle import read_styles
from modaclip.ingest.rows import RAW_COLUMNS
from modaclip.ingest.sources import read_source
from modaclip.ingest.subset import take_subset
from modaclip.ingest.synthetic import generate_catalog

STYLES_HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
UNREACHABLE_URL = "http://127.0.0.1:9/nothing.jpg"  # the discard port: refused at once


def read_all(source: str, **params: object) -> pd.DataFrame:
    return pd.concat(list(read_source(DataParams(source=source, **params))), ignore_index=True)


def synthetic_rows(count: int, seed: int = 3) -> pd.DataFrame:
    return generate_catalog(count, seed=seed, image_size=48, defect_rate=0.0)


@pytest.fixture
def kaggle_dir(tmp_path: Path) -> Path:
    """styles.csv as Kaggle ships it (an unquoted comma in a display name) and one image missing."""
    rows = synthetic_rows(6)
    (tmp_path / "images").mkdir()
    lines = [STYLES_HEADER]
    for position, row in enumerate(rows.to_dict("records")):
        name = "Puma Men, Women Blue Cap" if position == 2 else row["productDisplayName"]
        fields = [row[c] for c in STYLES_HEADER.split(",")[:-1]]
        lines.append(",".join(str(value) for value in [*fields, name]))
        if position != 4:
            (tmp_path / "images" / f"{row['id']}.jpg").write_bytes(row["image"])
    (tmp_path / "styles.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_kaggle_dir_repairs_unquoted_commas_and_counts_missing_images(kaggle_dir: Path) -> None:
    raw = read_all(f"dir:{kaggle_dir}")

    assert list(raw.columns) == list(RAW_COLUMNS)
    assert len(raw) == 6
    assert raw.loc[2, "productDisplayName"] == "Puma Men, Women Blue Cap"
    assert raw.loc[2, "usage"] not in (None, "Puma Men")
    assert raw[IMAGE_ERROR_COLUMN].tolist().count("missing_image") == 1
    assert raw["image"].isna().sum() == 1
    assert raw["id"].dtype == "int64"


def test_kaggle_missing_image_reaches_clean_metrics(kaggle_dir: Path, tmp_path: Path) -> None:
    write_parts(read_source(DataParams(source=f"dir:{kaggle_dir}")), tmp_path / "raw")

    summary = clean_and_caption(tmp_path / "raw", tmp_path / "clean", CaptionParams(image_size=32))

    assert summary["dropped"]["missing_image"] == 1
    assert summary["rows_kept"] == 5
    clean = read_catalog(tmp_path / "clean")
    assert "Puma Men, Women Blue Cap" in {c for captions in clean["captions"] for c in captions}


def test_kaggle_dir_without_display_names_captions_from_attributes(tmp_path: Path) -> None:
    rows = synthetic_rows(4)
    (tmp_path / "images").mkdir()
    columns = STYLES_HEADER.split(",")[:-1]
    rows[columns].to_csv(tmp_path / "styles.csv", index=False)
    for row in rows.to_dict("records"):
        (tmp_path / "images" / f"{row['id']}.jpg").write_bytes(row["image"])
    write_parts(read_source(DataParams(source=f"dir:{tmp_path}")), tmp_path / "raw")

    clean_and_caption(tmp_path / "raw", tmp_path / "clean", CaptionParams())

    clean = read_catalog(tmp_path / "clean")
    assert clean["productDisplayName"].isna().all()
    expected = {
        f"a photo of a {r.gender.lower()} {r.baseColour.lower()} {r.articleType.lower()}" for r in rows.itertuples()
    }
    assert {captions[0] for captions in clean["captions"]} <= expected
    assert len(clean) == 4


def test_read_styles_pads_short_rows(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    path.write_text("id,gender,articleType,productDisplayName\n1,Men\n2,Women,Tops,A, B, C\n")

    styles = read_styles(path, BadRows(0.0))

    assert styles.to_dict("records") == [
        {"id": "1", "gender": "Men", "articleType": None, "productDisplayName": None},
        {"id": "2", "gender": "Women", "articleType": "Tops", "productDisplayName": "A, B, C"},
    ]


def styles_without_display_names(directory: Path, count: int, malformed: dict[int, str]) -> Path:
    """A 9-column styles.csv (no free-text last column) of `count` products, some lines replaced; 3 images."""
    rows = synthetic_rows(count)
    columns = STYLES_HEADER.split(",")[:-1]
    lines = [",".join(columns)] + [",".join(str(row[c]) for c in columns) for row in rows.to_dict("records")]
    for position, line in malformed.items():
        lines[position + 1] = line
    (directory / "styles.csv").write_text("\n".join(lines) + "\n")
    (directory / "images").mkdir()
    for row in rows.iloc[:3].to_dict("records"):
        (directory / "images" / f"{row['id']}.jpg").write_bytes(row["image"])
    return directory


TWELVE_FIELDS = "9001,Men,Apparel,Topwear,Tshirts,Navy Blue,Summer,2012,Casual,extra,fields,here"


def test_a_few_malformed_styles_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    styles_without_display_names(tmp_path, 200, {10: TWELVE_FIELDS, 50: "n/a,Men,Apparel,Topwear,Tshirts"})
    skipped = BadRows(max_share=0.01)

    raw = pd.concat(list(read_source(DataParams(source=f"dir:{tmp_path}"), skipped)))

    assert len(raw) == 198 and 9001 not in set(raw["id"])
    assert skipped.summary() == {"rows_skipped": 2, "skipped": {"bad_id": 1, "too_many_fields": 1}}


def test_malformed_lines_past_max_bad_rows_stop_download_naming_the_first(tmp_path: Path) -> None:
    (tmp_path / "catalog").mkdir()
    styles_without_display_names(tmp_path / "catalog", 20, {3: TWELVE_FIELDS, 7: TWELVE_FIELDS})
    named = (
        r"styles.csv: 2 of 20 rows are malformed or repeat an id \(10.00%, more than data.max_bad_rows 1.00%\): "
        r"line 5: 12 fields under 9 columns \(too_many_fields\), line 9"
    )

    with pytest.raises(ModaclipError, match=named):
        write_parts(read_source(DataParams(source=f"dir:{tmp_path / 'catalog'}")), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_styles_without_needed_columns_is_named(tmp_path: Path) -> None:
    (tmp_path / "styles.csv").write_text("sku,gender\n1,Men\n")

    with pytest.raises(ModaclipError, match=r"styles.csv: lacks needed columns \['id', 'articleType'\]"):
        read_all(f"dir:{tmp_path}")


def test_kaggle_column_mapping_renames(tmp_path: Path) -> None:
    (tmp_path / "styles.csv").write_text("sku,gender,category\n7,Men,Tops\n8,Men,Shoes\n")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "8.jpg").write_bytes(synthetic_rows(1)["image"][0])

    raw = read_all(f"dir:{tmp_path}", columns={"id": "sku", "articleType": "category"})

    assert raw[["id", "articleType", IMAGE_ERROR_COLUMN]].values.tolist() == [
        [7, "Tops", "missing_image"],
        [8, "Shoes", None],
    ]


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("ftp:/somewhere", "unknown source scheme 'ftp'"),
        ("dir:/no/such/folder", "/no/such/folder does not exist"),
        ("imagefolder:/no/such/folder", "/no/such/folder does not exist"),
        ("csv:/no/such/file.csv", "/no/such/file.csv does not exist"),
        ("parquet:/no/such/*.parquet", "no files match"),
        ("dir:", "name a location after 'dir:'"),
    ],
)
def test_bad_sources_are_named(source: str, named: str) -> None:
    with pytest.raises(ModaclipError, match=named.replace("*", r"\*")):
        read_all(source)


def test_source_without_usable_rows_writes_nothing(kaggle_dir: Path, tmp_path: Path) -> None:
    for image in (kaggle_dir / "images").iterdir():
        image.unlink()
    out = tmp_path / "raw"

    with pytest.raises(ModaclipError, match=r"no usable rows \(6 rows read, none with an image\)"):
        write_parts(read_source(DataParams(source=f"dir:{kaggle_dir}")), out)

    assert not out.exists()
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".raw")]


# ---------------------------------------------------------------- image folder
def make_image_folder(root: Path, classes: dict[str, int]) -> Path:
    rows = synthetic_rows(sum(classes.values()))
    images = iter(rows["image"])
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for number in range(count):
            (root / name / f"{number}.jpg").write_bytes(next(images))
    return root


def test_image_folder_labels_come_from_folder_names(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "shop", {"Tops": 3, "Shoes": 2})
    (root / "Tops" / "notes.txt").write_text("not an image")

    raw = read_all(f"imagefolder:{root}")

    assert sorted(raw["articleType"]) == ["Shoes", "Shoes", "Tops", "Tops", "Tops"]
    assert (raw["productDisplayName"] == raw["articleType"]).all()
    assert raw["id"].is_unique and raw["image"].map(len).gt(0).all()
    assert raw["id"].tolist() == read_all(f"imagefolder:{root}")["id"].tolist(), "ids must be stable"


def test_image_folder_captions_from_what_is_known(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "shop", {"Tops": 4, "Shoes": 4})
    write_parts(read_source(DataParams(source=f"imagefolder:{root}")), tmp_path / "raw")
    params = CaptionParams(
        required_attributes=["articleType"], templates=["a photo of a {articleType}", "{productDisplayName}"]
    )

    clean_and_caption(tmp_path / "raw", tmp_path / "clean", params)

    captions = read_catalog(tmp_path / "clean").set_index("articleType")["captions"]
    assert list(captions["Tops"].iloc[0]) == ["a photo of a tops", "Tops"]


def test_image_folder_with_default_params_captions_from_its_own_fields(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "shop", {"Tops": 2, "Shoes": 2})
    write_parts(read_source(DataParams(source=f"imagefolder:{root}")), tmp_path / "raw")

    summary = clean_and_caption(tmp_path / "raw", tmp_path / "clean", CaptionParams())

    assert summary["rows_kept"] == 4
    captions = read_catalog(tmp_path / "clean").set_index("articleType")["captions"]
    assert list(captions["Tops"].iloc[0]) == ["a photo of a tops", "Tops"]


def test_image_folder_with_required_columns_it_lacks_says_which_to_drop(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "shop", {"Tops": 2, "Shoes": 2})
    write_parts(read_source(DataParams(source=f"imagefolder:{root}")), tmp_path / "raw")
    params = CaptionParams(required_attributes=["articleType", "baseColour", "season"])

    with pytest.raises(
        ModaclipError, match=r"no row has \['baseColour', 'season'\]: remove them from caption.required_attributes"
    ):
        clean_and_caption(tmp_path / "raw", tmp_path / "clean", params)


def test_image_folder_with_one_class_is_an_error(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "shop", {"Tops": 3})

    with pytest.raises(ModaclipError, match=r"at least two class sub-folders, found 1 \(\['Tops'\]\)"):
        read_all(f"imagefolder:{root}")


# ---------------------------------------------------------------- shop exports
def shop_export(root: Path, count: int = 6) -> pd.DataFrame:
    """A shop's own table: its column names, images as relative paths, one file:// URL, one dead URL."""
    rows = synthetic_rows(count)
    (root / "pictures").mkdir(parents=True)
    paths = []
    for row in rows.to_dict("records"):
        (root / "pictures" / f"{row['id']}.jpg").write_bytes(row["image"])
        paths.append(f"pictures/{row['id']}.jpg")
    paths[1] = (root / "pictures" / f"{rows['id'][1]}.jpg").as_uri()
    paths[2] = UNREACHABLE_URL
    return pd.DataFrame(
        {
            "sku": rows["id"].astype(str),
            "category": rows["articleType"],
            "colour": rows["baseColour"],
            "gender": rows["gender"],
            "title": rows["productDisplayName"],
            "image_path": paths,
        }
    )


SHOP_COLUMNS = {
    "id": "sku",
    "articleType": "category",
    "baseColour": "colour",
    "productDisplayName": "title",
    "image": "image_path",
}


def check_shop_rows(raw: pd.DataFrame, export: pd.DataFrame) -> None:
    assert raw["id"].tolist() == export["sku"].astype(int).tolist()
    assert raw["articleType"].tolist() == export["category"].tolist()
    assert raw[IMAGE_ERROR_COLUMN].tolist() == [None, None, "unreadable_image", None, None, None]
    assert raw["image"].map(lambda data: isinstance(data, bytes)).sum() == 5


def test_parquet_export_with_column_mapping(tmp_path: Path) -> None:
    export = shop_export(tmp_path / "shop")
    export.iloc[:3].to_parquet(tmp_path / "shop" / "part-a.parquet")
    export.iloc[3:].to_parquet(tmp_path / "shop" / "part-b.parquet")

    raw = read_all(f"parquet:{tmp_path}/shop/*.parquet", columns=SHOP_COLUMNS, chunk_rows=2)

    check_shop_rows(raw, export)


def test_csv_export_with_column_mapping(tmp_path: Path) -> None:
    export = shop_export(tmp_path / "shop")
    export.to_csv(tmp_path / "shop" / "export.csv", index=False)

    raw = read_all(f"csv:{tmp_path}/shop/export.csv", columns=SHOP_COLUMNS)

    check_shop_rows(raw, export)


def test_mapping_naming_a_missing_column_is_named(tmp_path: Path) -> None:
    shop_export(tmp_path / "shop").to_csv(tmp_path / "export.csv", index=False)

    with pytest.raises(ModaclipError, match=r"export.csv: data.columns names columns \['colour_name'\]"):
        read_all(f"csv:{tmp_path}/export.csv", columns={**SHOP_COLUMNS, "baseColour": "colour_name"})


def test_mapping_of_an_unknown_column_of_ours_is_named(tmp_path: Path) -> None:
    shop_export(tmp_path / "shop").to_csv(tmp_path / "export.csv", index=False)

    with pytest.raises(ModaclipError, match=r"data.columns maps unknown columns \['colour'\]"):
        read_all(f"csv:{tmp_path}/export.csv", columns={"colour": "colour"})


def test_non_numeric_id_is_named(tmp_path: Path) -> None:
    export = shop_export(tmp_path / "shop")
    export.loc[3, "sku"] = "SKU-9"
    export.to_csv(tmp_path / "export.csv", index=False)

    with pytest.raises(ModaclipError, match=r"row 4 has id 'SKU-9'"):
        read_all(f"csv:{tmp_path}/export.csv", columns=SHOP_COLUMNS)


# ---------------------------------------------------------------- limit and seed
def test_limit_takes_the_same_subset_from_every_source(tmp_path: Path) -> None:
    export = shop_export(tmp_path / "shop", count=30)
    export.to_csv(tmp_path / "shop" / "export.csv", index=False)
    export.to_parquet(tmp_path / "shop" / "export.parquet")

    csv_ids = read_all(f"csv:{tmp_path}/shop/export.csv", columns=SHOP_COLUMNS, limit=10, seed=4)["id"]
    parquet_ids = read_all(
        f"parquet:{tmp_path}/shop/export.parquet", columns=SHOP_COLUMNS, limit=10, seed=4, chunk_rows=7
    )["id"]
    other_seed = read_all(f"csv:{tmp_path}/shop/export.csv", columns=SHOP_COLUMNS, limit=10, seed=5)["id"]

    assert len(csv_ids) == 10
    assert csv_ids.tolist() == parquet_ids.tolist()
    assert set(csv_ids) != set(other_seed)
    assert csv_ids.is_monotonic_increasing, "the subset keeps the source's order"


def test_synthetic_limit_is_reproducible() -> None:
    first = read_all("synthetic", num_items=40, limit=12, seed=1, image_size=32)
    again = read_all("synthetic", num_items=40, limit=12, seed=1, image_size=32)

    assert len(first) == 12
    assert first["id"].tolist() == again["id"].tolist()


def test_synthetic_catalog_comes_in_chunks_of_chunk_rows() -> None:
    """Parts of data.chunk_rows rows, like every other source's, so the Ray engines have parts to spread."""
    chunks = list(read_source(DataParams(num_items=25, chunk_rows=10, image_size=32)))

    assert [len(chunk) for chunk in chunks] == [10, 10, 5]
    whole = generate_catalog(25, seed=0, image_size=32, defect_rate=DataParams().defect_rate)
    assert pd.concat(chunks)["id"].tolist() == whole["id"].tolist()


# ---------------------------------------------------------------- Hugging Face layout
def write_hf_layout(root: Path, rows: pd.DataFrame, ceyda_style: bool) -> Path:
    """A dataset as the Hub serves it: data/train-*.parquet with the Image feature in its schema.

    ceyda/fashion-products-small stores id as text and has no productDisplayName; ashraq's copy
    stores year as float.
    """
    table = {
        "id": [str(i) for i in rows["id"]] if ceyda_style else rows["id"].tolist(),
        "gender": rows["gender"].tolist(),
        "articleType": rows["articleType"].tolist(),
        "baseColour": rows["baseColour"].tolist(),
        "year": [float(y) for y in rows["year"]],
        "image": [{"bytes": data, "path": None} for data in rows["image"]],
    }
    features = {
        "id": datasets.Value("string" if ceyda_style else "int64"),
        "gender": datasets.Value("string"),
        "articleType": datasets.Value("string"),
        "baseColour": datasets.Value("string"),
        "year": datasets.Value("float64"),
        "image": datasets.Image(),
    }
    if not ceyda_style:
        table["productDisplayName"] = rows["productDisplayName"].tolist()
        features["productDisplayName"] = datasets.Value("string")
    dataset = datasets.Dataset.from_dict(table, features=datasets.Features(features))
    (root / "data").mkdir(parents=True)
    dataset.to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root


@pytest.mark.parametrize("ceyda_style", [True, False])
def test_hf_layout_is_streamed_and_mapped(tmp_path: Path, ceyda_style: bool) -> None:
    rows = synthetic_rows(7)
    root = write_hf_layout(tmp_path / "hf", rows, ceyda_style)

    chunks = list(read_source(DataParams(source=f"hf:{root}", chunk_rows=3)))

    assert [len(chunk) for chunk in chunks] == [3, 3, 1]
    raw = pd.concat(chunks, ignore_index=True)
    assert list(raw.columns) == list(RAW_COLUMNS)
    assert raw["id"].tolist() == rows["id"].tolist()
    assert raw["year"].tolist() == rows["year"].tolist()
    assert raw["image"].tolist() == rows["image"].tolist(), "images must arrive as their original bytes"
    names = raw["productDisplayName"].tolist()
    assert names == ([None] * 7 if ceyda_style else rows["productDisplayName"].tolist())


def test_hf_limit_streams_the_same_subset_as_take_subset(tmp_path: Path) -> None:
    rows = synthetic_rows(25)
    root = write_hf_layout(tmp_path / "hf", rows, ceyda_style=True)

    streamed = read_all(f"hf:{root}", limit=8, seed=2, chunk_rows=4)

    assert streamed["id"].tolist() == take_subset(rows, 8, 2)["id"].tolist()
    assert len(streamed) == 8


def test_unreachable_hub_fails_fast_and_says_how_to_use_a_local_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    with pytest.raises(
        ModaclipError, match=r"hf:someone/catalog.*cannot reach the Hugging Face Hub.*set data.source to hf:DIR"
    ):
        read_all("hf:someone/catalog@v1", fetch_timeout_s=2)


# ---------------------------------------------------------------- real data
@pytest.mark.skipif(not (SHARED_DATA / "fashion-products").is_dir(), reason="shared real data folder absent")
def test_real_kaggle_copy_reads_fifty_rows() -> None:
    raw = read_all(f"dir:{SHARED_DATA / 'fashion-products'}", limit=50, seed=0)

    assert len(raw) == 50
    assert raw["image"].map(lambda data: isinstance(data, bytes)).all()
    assert raw["productDisplayName"].isna().all()
    assert raw["articleType"].notna().all()
    with Image.open(io.BytesIO(raw["image"].iloc[0])) as image:
        assert image.format == "JPEG"


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"data": {"limit": -1}}, "data.limit"),
        ({"data": {"columns": ["id"]}}, "data.columns"),
        ({"data": {"chunk_rows": 0}}, "data.chunk_rows"),
        ({"data": {"fetch_timeout_s": 0}}, "data.fetch_timeout_s"),
        ({"data": {"max_bad_rows": 1.5}}, "data.max_bad_rows"),
        ({"caption": {"image_size": 16}}, "caption.image_size"),
    ],
)
def test_bad_source_params_name_the_key(raw: dict, named: str) -> None:
    with pytest.raises(ModaclipError, match=named):
        parse_params(raw)
