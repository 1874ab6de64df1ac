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
# Raw catalogs read from files may add this column: why the source could not supply a row's image
# ("missing_image" when the file is not on disk, "unreadable_image" when a URL failed), so the
# cleaner counts those rows under that reason instead of a generic one.
IMAGE_ERROR_COLUMN = "image_error"
