"""The handful of figures `dvc exp show` lists by default, picked from metrics/train.json and metrics/eval.json.

Experiments are compared at a glance on these; every other figure stays in the detail files
(`dvc metrics show metrics/eval.json`, see docs/experiments.md). Names are short because each one
is a column of `dvc exp show`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from modaclip.core.errors import ModaclipError

log = logging.getLogger(__name__)

# headline name -> (report, dotted path in it)
HEADLINE: dict[str, tuple[str, str]] = {
    "recall@1": ("eval", "finetuned.text_to_image.recall@1"),
    "recall@10": ("eval", "finetuned.text_to_image.recall@10"),
    "base_recall@1": ("eval", "base.text_to_image.recall@1"),
    "base_recall@10": ("eval", "base.text_to_image.recall@10"),
    "type_acc": ("eval", "finetuned.zero_shot.articleType.accuracy"),
    "colour_acc": ("eval", "finetuned.zero_shot.baseColour.accuracy"),
    "i2i_p@10": ("eval", "finetuned.image_to_image.precision@10_articleType"),
    "grid_p@8": ("eval", "grid.mean_precision@8"),
    "final_loss": ("train", "final_train_loss"),
    "train_min": ("train", "train_seconds"),
}
DIGITS = 4  # 0.7823 is as precise as a test split of a few hundred items allows, and keeps columns narrow


def headline_metrics(reports: dict[str, dict[str, Any]]) -> dict[str, float]:
    """HEADLINE's figures from {"train": train.json, "eval": eval.json}, rounded.

    A figure the params did not ask for (no recall@1 in evaluate.recall_ks, no articleType among
    evaluate.zero_shot_fields) is left out, and the log says which.
    """
    figures, absent = {}, []
    for name, (report, path) in {**HEADLINE, **query_set_headlines(reports["eval"])}.items():
        value = _lookup(reports[report], path)
        if value is None:
            absent.append(f"{name} ({report}: {path})")
        elif name == "train_min":
            figures[name] = round(value / 60, 1)
        else:
            figures[name] = round(value, DIGITS)
    if absent:
        log.info("not in the reports, left out of the headline: %s", ", ".join(absent))
    return figures


def query_set_headlines(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """One figure per judged query set: the fine-tuned model's vector-search nDCG@10 (`shoppers_ndcg@10`)."""
    return {
        f"{name}_ndcg@10": ("eval", f"finetuned.query_sets.{name}.vector.ndcg@10")
        for name in report.get("query_sets", {})
    }


def _lookup(report: dict[str, Any], path: str) -> float | None:
    value: Any = report
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def read_report(path: str | Path) -> dict[str, Any]:
    """A metrics JSON written by an earlier stage, or one line saying why it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ModaclipError(f"{path}: cannot read the metrics report ({err})") from err
