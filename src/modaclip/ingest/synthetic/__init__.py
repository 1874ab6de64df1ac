"""A deterministic synthetic fashion catalog: the built-in data source and the test fixtures.

Rows look like the Kaggle "Fashion Product Images" dataset (its columns, taxonomy and value
names), and each carries a studio-style JPEG of the item drawn with PIL, so every stage can run
offline and in seconds on data whose labels are visible in the images: the silhouette shows the
articleType, the fill shows the baseColour, and the pattern is named in productDisplayName.

Row i depends only on (seed, i) and on earlier rows, so a larger catalog extends a smaller one
with the same seed, which lets tests simulate a growing catalog. A share of rows close to
`defect_rate` is broken on purpose (see `defects`) so the cleaning stage has real work.

The package is split by what each part does: `taxonomy` (the Kaggle vocabulary and its weights),
`pen` (a drawing DSL in a unit square) and `shapes` (one drawing per articleType), `rendering`
(placing, colouring and patterning one shot), `defects` (rows broken on purpose) and `catalog`
(the generator that draws row after row).
"""

from modaclip.ingest.synthetic.catalog import generate_catalog
from modaclip.ingest.synthetic.taxonomy import COLOUR_RGB, PATTERN_WORDS

__all__ = ["COLOUR_RGB", "PATTERN_WORDS", "generate_catalog"]
