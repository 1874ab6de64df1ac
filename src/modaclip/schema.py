"""Column names of a catalog, as in the Fashion Product Images dataset."""

ATTRIBUTE_COLUMNS: tuple[str, ...] = (
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "usage",
)
# Every raw catalog (data/raw) has exactly these columns; `image` holds encoded image bytes.
CATALOG_COLUMNS: tuple[str, ...] = (
    "id",
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "year",
    "usage",
    "productDisplayName",
    "image",
)
