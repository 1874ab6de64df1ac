import hashlib
import io

import pandas as pd
import pytest
from PIL import Image

from modaclip.core.errors import ModaclipError
from modaclip.core.schema import CATALOG_COLUMNS
from modaclip.curate.cleaning import DROP_REASONS, CatalogCleaner, clean_attribute, clean_text

REQUIRED = ("gender", "articleType", "baseColour")


def jpeg(width: int = 32, height: int = 32, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def product(product_id: int, image: object, **overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": product_id,
        "gender": "Men",
        "masterCategory": "Apparel",
        "subCategory": "Topwear",
        "articleType": "Tshirts",
        "baseColour": "Navy Blue",
        "season": "Summer",
        "year": 2012,
        "usage": "Casual",
        "productDisplayName": "Nike Men Navy Blue T-shirt",
        "image": image,
    }
    row.update(overrides)
    return row


def catalog(*rows: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(CATALOG_COLUMNS))


def colours(count: int) -> list[bytes]:
    """Distinct images, so rows are not duplicates of one another by accident."""
    return [jpeg(colour=(10 * i, 40, 80)) for i in range(count)]


def test_each_reason_is_counted() -> None:
    images = colours(4)
    chunk = catalog(
        product(1, images[0]),
        product(2, images[1], gender=None),
        product(3, images[2], baseColour="   "),
        product(4, b"not an image"),
        product(5, None),
        product(6, jpeg(width=8, height=64)),
        product(7, images[0]),
        product(8, images[3]),
    )
    cleaner = CatalogCleaner(REQUIRED, min_image_side=16)

    kept = cleaner.clean(chunk)

    assert kept["id"].tolist() == [1, 8]
    assert cleaner.rows_in == 8
    assert cleaner.dropped == {
        **dict.fromkeys(DROP_REASONS, 0),
        "missing_attribute": 2,
        "unreadable_image": 2,
        "tiny_image": 1,
        "duplicate_image": 1,
    }
    assert cleaner.summary() == {"rows_in": 8, "rows_kept": 2, "dropped": cleaner.dropped, "converted": {}}


def test_truncated_image_is_unreadable() -> None:
    cleaner = CatalogCleaner(REQUIRED, min_image_side=1)

    cleaner.clean(catalog(product(1, jpeg()[:100])))

    assert cleaner.dropped["unreadable_image"] == 1


def test_first_failing_reason_wins() -> None:
    tiny = jpeg(width=4, height=4)
    chunk = catalog(
        product(1, b"garbage", articleType=""),
        product(2, tiny, gender=None),
        product(3, tiny),
        product(4, tiny),
    )
    cleaner = CatalogCleaner(REQUIRED, min_image_side=16)

    assert cleaner.clean(chunk).empty
    assert cleaner.dropped == {**dict.fromkeys(DROP_REASONS, 0), "missing_attribute": 2, "tiny_image": 2}


def test_dropped_row_does_not_claim_its_image() -> None:
    image = jpeg()
    cleaner = CatalogCleaner(REQUIRED, min_image_side=1)

    kept = cleaner.clean(catalog(product(1, image, gender=None), product(2, image)))

    assert kept["id"].tolist() == [2]
    assert cleaner.dropped["duplicate_image"] == 0


def test_duplicates_are_caught_across_chunks() -> None:
    first, second, third = colours(3)
    cleaner = CatalogCleaner(REQUIRED, min_image_side=1)

    kept_first = cleaner.clean(catalog(product(1, first), product(2, second)))
    kept_second = cleaner.clean(catalog(product(3, second), product(4, third), product(5, first)))

    assert kept_first["id"].tolist() == [1, 2]
    assert kept_second["id"].tolist() == [4]
    assert cleaner.rows_in == 5
    assert cleaner.dropped["duplicate_image"] == 2
    assert cleaner.summary()["rows_kept"] == 3


def test_kept_rows_gain_image_facts_and_keep_their_bytes() -> None:
    image = jpeg(width=40, height=24)
    cleaner = CatalogCleaner(REQUIRED, min_image_side=16)

    kept = cleaner.clean(catalog(product(1, image)))

    row = kept.iloc[0]
    assert (row["image_width"], row["image_height"]) == (40, 24)
    assert row["image_sha1"] == hashlib.sha1(image).hexdigest()
    assert row["image"] == image
    assert kept["image_width"].dtype == "int64"


def test_empty_result_still_has_image_fact_columns() -> None:
    cleaner = CatalogCleaner(REQUIRED, min_image_side=1)

    kept = cleaner.clean(catalog(product(1, None)))

    assert kept.empty
    assert {"image_width", "image_height", "image_sha1"} <= set(kept.columns)


def test_every_reason_is_reported_even_when_zero() -> None:
    cleaner = CatalogCleaner(REQUIRED, min_image_side=1)

    assert cleaner.summary() == {
        "rows_in": 0,
        "rows_kept": 0,
        "dropped": dict.fromkeys(DROP_REASONS, 0),
        "converted": {},
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" navy  blue ", "Navy Blue"),
        ("TSHIRTS", "Tshirts"),
        ("men", "Men"),
        ("Off\tWhite", "Off White"),
        ("t-shirts", "T-shirts"),
        ("", None),
        ("   ", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_clean_attribute(raw: object, expected: str | None) -> None:
    assert clean_attribute(raw) == expected


def test_clean_text_keeps_case() -> None:
    assert clean_text("  Nike  Men NAVY\nT-shirt ") == "Nike Men NAVY T-shirt"


def test_clean_normalises_text_columns_of_kept_rows() -> None:
    chunk = catalog(
        product(
            1,
            jpeg(),
            gender=" men ",
            baseColour="NAVY  BLUE",
            usage="",
            productDisplayName="  Nike  Men NAVY Tee ",
        )
    )
    cleaner = CatalogCleaner(REQUIRED, min_image_side=1)

    row = cleaner.clean(chunk).iloc[0]

    assert row["gender"] == "Men"
    assert row["baseColour"] == "Navy Blue"
    assert pd.isna(row["usage"])
    assert row["productDisplayName"] == "Nike Men NAVY Tee"


def test_clean_leaves_its_input_unchanged() -> None:
    chunk = catalog(product(1, jpeg(), gender=" men "))

    CatalogCleaner(REQUIRED, min_image_side=1).clean(chunk)

    assert chunk.loc[0, "gender"] == " men "


def test_unknown_required_column_is_rejected() -> None:
    with pytest.raises(ModaclipError, match=r"caption\.required_attributes.*colour"):
        CatalogCleaner(["gender", "colour"], min_image_side=1)


def test_required_as_a_bare_string_is_rejected() -> None:
    with pytest.raises(ModaclipError, match=r"caption\.required_attributes"):
        CatalogCleaner("gender", min_image_side=1)


@pytest.mark.parametrize("column", ["baseColour", "image", "id"])
def test_chunk_missing_a_needed_column_is_rejected(column: str) -> None:
    chunk = catalog(product(1, jpeg())).drop(columns=[column])

    with pytest.raises(ModaclipError, match=column):
        CatalogCleaner(REQUIRED, min_image_side=1).clean(chunk)
