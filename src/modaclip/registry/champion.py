"""The gate's two sides on the same test products: production's model scored on the candidate's test
split by the current evaluation code, and both models' per-product values paired for the bootstrap.

Production's recorded figures (its commit's metrics/eval.json) were measured on the test split of its
day, which grows with the catalog, and by the evaluation code of that commit; a candidate compared with
them would be judged on the split and the code as much as on the model. So at gate time production's
model is restored (`model_versions.materialise`), its embeddings of the current catalog are made once and
cached by weights and catalog digest in $MODACLIP_CACHE (only products added since production's own
embeddings are encoded), and it is evaluated as the `evaluate` stage evaluates the candidate.
The cost is that one evaluation per retrain; its duration is recorded in metrics/promotion.json.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modaclip.core.config import Params
from modaclip.core.errors import ModaclipError
from modaclip.core.paths import CATALOG_DIR, EVAL_METRICS, EVAL_PER_PRODUCT
from modaclip.registry.model_choice import cache_dir, cached_embeddings_dir
from modaclip.registry.model_versions import ModelVersion, materialise
from modaclip.registry.promotion import FINETUNED, Decision, base_path, decide

log = logging.getLogger(__name__)


def evaluate_production(
    root: Path, version: ModelVersion, catalog_dir: Path, params: Params
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Production's report on the current test split ({"test_items", "test_digest", "finetuned", "seconds"})
    and its per-product values."""
    from modaclip.evaluate.evaluation import evaluate_saved_model  # torch: `modaclip search` imports this module

    started = time.perf_counter()
    log.info("scoring production %s on the current test split", version.tag)
    restored = materialise(root, version)
    embeddings = cached_embeddings_dir(
        restored["model"], catalog_dir, params.embed, cache_dir(), reuse_from=restored["embeddings"]
    )
    report, per_product = evaluate_saved_model(restored["model"], embeddings, catalog_dir, params)
    report["seconds"] = round(time.perf_counter() - started, 2)
    log.info("production %s scored on %d test products in %.1f s", version.tag, report["test_items"], report["seconds"])
    return report, per_product


def gate_candidate(
    root: Path, params: Params, candidate: dict[str, Any], current: ModelVersion | None
) -> tuple[Decision, dict[str, Any] | None]:
    """The gate's decision, and production's report on the candidate's test split (None in the first round)."""
    gate = params.promote
    if current is None:
        paired = per_product_pair(root, gate.metric, None, base_path(gate.metric)) if gate.min_confidence else None
        return decide(candidate, None, gate, paired), None
    champion, champion_values = evaluate_production(root, current, root / CATALOG_DIR, params)
    check_same_split(candidate, champion, current)
    paired = per_product_pair(root, gate.metric, champion_values, gate.metric) if gate.min_confidence else None
    return decide(candidate, champion, gate, paired), champion


def check_same_split(candidate: dict[str, Any], champion: dict[str, Any], current: ModelVersion) -> None:
    if candidate.get("test_digest") != champion["test_digest"]:
        raise ModaclipError(
            f"{EVAL_METRICS} and production {current.tag} were scored on different test products "
            f"({candidate.get('test_items')} vs {champion['test_items']}); is {EVAL_METRICS} up to date?"
        )


def per_product_pair(
    root: Path, metric: str, production: pd.DataFrame | None, production_column: str
) -> tuple[np.ndarray, np.ndarray]:
    """The candidate's and production's per-product values of `metric`, product by product.

    `production` None: the first round, whose bar is the base model's column of the candidate's own table.
    """
    candidate = read_per_product(root / EVAL_PER_PRODUCT)
    other = candidate if production is None else production
    require_column(candidate, metric, EVAL_PER_PRODUCT)
    require_column(other, production_column, EVAL_PER_PRODUCT if production is None else "production's evaluation")
    paired = candidate[["id", metric]].merge(
        other[["id", production_column]].rename(columns={production_column: "production"}), on="id"
    )
    if len(paired) != len(candidate):
        raise ModaclipError(f"{EVAL_PER_PRODUCT}: the two models' per-product values cover different test products")
    return paired[metric].to_numpy(), paired["production"].to_numpy()


def require_column(table: pd.DataFrame, column: str, source: str | Path) -> None:
    if column not in table.columns:
        known = ", ".join(c for c in table.columns if c.startswith(f"{FINETUNED}.")) or "none"
        raise ModaclipError(
            f"{source}: no per-product values of {column!r} for promote.min_confidence "
            f"(metrics that have them: {known}); choose one as promote.metric, or set promote.min_confidence: 0"
        )


def read_per_product(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except FileNotFoundError as err:
        raise ModaclipError(f"{path}: missing after the pipeline ran; is `evaluate` in dvc.yaml up to date?") from err
