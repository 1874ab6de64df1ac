"""Where the pipeline's outputs live in a project checkout, for the code that is no stage.

dvc.yaml is where every path is set: each stage takes its paths from its `cmd` as required
arguments. `modaclip` commands read these outputs by default, and a registered model version keeps
the same layout under its restored copy, so they import them from here
(tests/test_stage_paths.py checks that each is an output dvc.yaml declares).
"""

from pathlib import Path

MODEL_DIR = Path("models/finetuned")
EMBEDDINGS_DIR = Path("data/embeddings")
CATALOG_DIR = Path("data/clean")
EVAL_METRICS = Path("metrics/eval.json")
EVAL_PER_PRODUCT = Path("metrics/eval_per_product.parquet")  # the values behind EVAL_METRICS' means, per test product
SEARCH_PATHS = {"model": MODEL_DIR, "embeddings": EMBEDDINGS_DIR, "catalog": CATALOG_DIR}
