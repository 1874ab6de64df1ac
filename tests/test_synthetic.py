import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modaclip.core.errors import ModaclipError
from modaclip.core.schema import CATALOG_COLUMNS
from modaclip.ingest.synthetic import COLOUR_RGB, PATTERN_WORDS, generate_catalog

SIZE = 64
KEY_ATTRIBUTES = ["gender", "articleType", "baseColour"]
TEXT_COLUMNS = [column for column in CATALOG_COLUMNS if column not in ("id", "year", "image")]


@pytest.fixture(scope="module")
def catalog() -> pd.DataFrame:
    """300 rows at the default defect rate: enough for every type of value and defect."""
    return generate_catalog(300, seed=0, image_size=SIZE)


@pytest.fixture(scope="module")
def clean_catalog() -> pd.DataFrame:
    return generate_catalog(200, seed=1, image_size=SIZE, defect_rate=0)


def decode(data: bytes) -> Image.Image | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.copy()
    except OSError:
        return None


def pattern_of(display_name: str) -> str:
    words = display_name.split()
    return next((name for name, word in PATTERN_WORDS.items() if word and word in words), "solid")


def dominant_colour(image: Image.Image) -> np.ndarray:
    """Mean colour of the most common coarse colour bin among pixels unlike the border."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    foreground = pixels[np.abs(pixels - background).max(axis=2) > 48]
    bins = (foreground // 32).astype(int) @ np.array([64, 8, 1])
    return foreground[bins == np.bincount(bins).argmax()].mean(axis=0)


def test_same_arguments_give_byte_identical_catalogs() -> None:
    first = generate_catalog(40, seed=5, image_size=SIZE, defect_rate=0.2)
    second = generate_catalog(40, seed=5, image_size=SIZE, defect_rate=0.2)
    pd.testing.assert_frame_equal(first, second)


def test_another_seed_gives_another_catalog() -> None:
    first = generate_catalog(20, seed=5, image_size=SIZE)
    second = generate_catalog(20, seed=6, image_size=SIZE)
    assert not first["image"].equals(second["image"])


def test_a_larger_catalog_extends_a_smaller_one(catalog: pd.DataFrame) -> None:
    smaller = generate_catalog(160, seed=0, image_size=SIZE)
    pd.testing.assert_frame_equal(catalog.head(160), smaller)


def test_columns_and_types(catalog: pd.DataFrame) -> None:
    assert list(catalog.columns) == list(CATALOG_COLUMNS)
    assert catalog["id"].dtype == np.int64 and catalog["year"].dtype == np.int64
    for column in TEXT_COLUMNS:
        assert catalog[column].map(lambda value: value is None or isinstance(value, str)).all()
    assert catalog["image"].map(lambda value: isinstance(value, bytes)).all()


def test_ids_are_unique(catalog: pd.DataFrame) -> None:
    assert catalog["id"].is_unique


def test_values_follow_the_kaggle_taxonomy(catalog: pd.DataFrame) -> None:
    assert catalog["articleType"].nunique() >= 16
    assert catalog["baseColour"].nunique() >= 12
    assert set(catalog["masterCategory"]) == {"Apparel", "Footwear", "Accessories"}
    assert set(catalog["gender"].dropna()) <= {"Men", "Women", "Unisex", "Boys", "Girls"}
    assert set(catalog["season"]) <= {"Summer", "Fall", "Winter", "Spring"}
    assert set(catalog["usage"]) <= {"Casual", "Formal", "Sports", "Ethnic", "Party"}
    assert catalog["year"].between(2010, 2018).all()


def test_each_article_type_has_its_kaggle_category(catalog: pd.DataFrame) -> None:
    categories = catalog.dropna(subset=["articleType"]).groupby("articleType")
    assert (categories[["masterCategory", "subCategory"]].nunique() == 1).all().all()
    expected = {
        "Tshirts": ("Apparel", "Topwear"),
        "Jeans": ("Apparel", "Bottomwear"),
        "Dresses": ("Apparel", "Dress"),
        "Heels": ("Footwear", "Shoes"),
        "Flip Flops": ("Footwear", "Flip Flops"),
        "Watches": ("Accessories", "Watches"),
    }
    found = categories[["masterCategory", "subCategory"]].first()
    for article_type, pair in expected.items():
        assert tuple(found.loc[article_type]) == pair


def test_display_names_mention_gender_pattern_colour(clean_catalog: pd.DataFrame) -> None:
    for row in clean_catalog.itertuples():
        assert f" {row.gender} " in row.productDisplayName
        assert f" {row.baseColour} " in row.productDisplayName
    patterns = clean_catalog["productDisplayName"].map(pattern_of)
    assert set(patterns) == set(PATTERN_WORDS)


def test_clean_catalog_images_decode_to_the_requested_size(clean_catalog: pd.DataFrame) -> None:
    for data in clean_catalog["image"]:
        image = decode(data)
        assert image is not None and image.mode == "RGB" and image.size == (SIZE, SIZE)


def test_zero_defect_rate_gives_a_clean_catalog(clean_catalog: pd.DataFrame) -> None:
    assert clean_catalog[KEY_ATTRIBUTES].notna().all().all()
    assert not clean_catalog["image"].duplicated().any()


def test_every_defect_kind_is_present(catalog: pd.DataFrame) -> None:
    images = catalog["image"].map(decode)
    unreadable = images.isna()
    tiny = images.map(lambda image: image is not None and max(image.size) < 32)
    missing = catalog[KEY_ATTRIBUTES].isna().any(axis=1)
    duplicated = catalog["image"].duplicated()
    for defect in (unreadable, tiny, missing, duplicated):
        assert defect.any()
    defective = unreadable | tiny | missing | duplicated
    assert defective.sum() <= 0.05 * len(catalog)
    decoded = images[~(unreadable | tiny)]
    assert decoded.map(lambda image: image.size == (SIZE, SIZE)).all()


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"num_items": 0}, "data.num_items"),
        ({"seed": -1}, "data.seed"),
        ({"image_size": 16}, "data.image_size"),
        ({"defect_rate": -0.1}, "data.defect_rate"),
        ({"defect_rate": 0.6}, "data.defect_rate"),
    ],
)
def test_bad_arguments_name_the_parameter(arguments: dict[str, float], parameter: str) -> None:
    with pytest.raises(ModaclipError, match=parameter):
        generate_catalog(**{"num_items": 10, "seed": 0, **arguments})


def test_solid_items_are_drawn_in_their_base_colour(clean_catalog: pd.DataFrame) -> None:
    """White is left out: on a near-white background only its outline tells it apart."""
    names = list(COLOUR_RGB)
    table = np.array([COLOUR_RGB[name] for name in names])
    solid = clean_catalog[
        (clean_catalog["productDisplayName"].map(pattern_of) == "solid") & (clean_catalog["baseColour"] != "White")
    ]
    assert len(solid) >= 50
    for row in solid.itertuples():
        colour = dominant_colour(decode(row.image))
        assert np.linalg.norm(colour - COLOUR_RGB[row.baseColour]) < 60, row.productDisplayName
        assert names[np.linalg.norm(table - colour, axis=1).argmin()] == row.baseColour
