"""Where the pipeline's outputs live in a project checkout (dvc.yaml writes them there).

`modaclip` commands read these folders by default, and a registered model version keeps the same
layout under its restored copy, so every user of a path imports it from here.
"""

from pathlib import Path

MODEL_DIR = Path("models/finetuned")
EMBEDDINGS_DIR = Path("data/embeddings")
CATALOG_DIR = Path("data/clean")
EVAL_METRICS = Path("metrics/eval.json")
EVAL_PER_PRODUCT = Path("metrics/eval_per_product.parquet")  # the values behind EVAL_METRICS' means, per test product
SEARCH_PATHS = {"model": MODEL_DIR, "embeddings": EMBEDDINGS_DIR, "catalog": CATALOG_DIR}
