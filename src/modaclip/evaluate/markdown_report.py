"""metrics/eval.json as a Markdown table: our base and fine-tuned figures beside quoted published ones."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from modaclip.core.errors import ModaclipError
from modaclip.evaluate.published import PUBLISHED, SOURCES, QuotedFigure

MetricPath = tuple[str, ...]


def read_eval_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModaclipError(f"{path}: not found; run `dvc repro evaluate` first") from err
    except json.JSONDecodeError as err:
        raise ModaclipError(f"{path}: not valid JSON: {err}") from err
    missing = [key for key in ("base", "finetuned", "delta") if not isinstance(report.get(key), dict)]
    if missing:
        raise ModaclipError(f"{path}: no {missing} section(s); is this a metrics/eval.json written by `evaluate`?")
    return report


def leaves(section: dict[str, Any], prefix: MetricPath = ()) -> Iterator[tuple[MetricPath, float]]:
    """(path, value) of every number in a nested section, in file order."""
    for key, value in section.items():
        if isinstance(value, dict):
            yield from leaves(value, (*prefix, key))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield (*prefix, key), float(value)


def markdown_report(report: dict[str, Any], published: Sequence[QuotedFigure] = PUBLISHED) -> str:
    """One row per figure with a delta (so counts such as `classes` are left out);
    a quoted column per published model."""
    ours = dict(leaves(report["finetuned"]))
    base = dict(leaves(report["base"]))
    delta = dict(leaves(report["delta"]))
    models = list(dict.fromkeys(figure.model for figure in published))
    source_numbers = {key: number for number, key in enumerate(dict.fromkeys(f.source for f in published), start=1)}
    quoted = {(f.model, f.path): f"{f.value:.3f} [{source_numbers[f.source]}]" for f in published}
    header = ["benchmark", "metric", "ours: base", "ours: fine-tuned", "delta", *(f"{m} (quoted)" for m in models)]
    lines = [_row(header), _row(["---"] * 2 + ["---:"] * (len(header) - 2))]
    for path, value in ours.items():
        if path not in delta:
            continue
        cells = [
            " / ".join(path[:-1]),
            path[-1],
            _number(base.get(path)),
            _number(value),
            _number(delta.get(path), signed=True),
        ]
        lines.append(_row(cells + [quoted.get((model, path), "") for model in models]))
    lines += ["", *_context(report), "", *_sources(source_numbers), *_unmeasured(ours, published)]
    return "\n".join(lines) + "\n"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _context(report: dict[str, Any]) -> list[str]:
    lines = [f"Our figures: measured by `evaluate` on {report.get('test_items', '?')} test products."]
    kagl = report.get("kagl")
    if kagl:
        lines.append(
            f"KAGL title->product: {kagl['title_queries']} queries; "
            f"{kagl['rows_without_title']} test rows without productDisplayName left out."
        )
    for name, info in report.get("zero_shot_sets", {}).items():
        lines.append(
            f"Zero-shot set `{name}`: {info['images']} images, {info['classes']} classes, from `{info['source']}`."
        )
    for name, info in report.get("query_sets", {}).items():
        lines.append(
            f"Judged query set `{name}`: {info['scored_queries']} of {info['queries']} queries scored over the whole "
            f"catalog, {info['judgments_not_in_catalog']} judgments of products it lacks, from `{info['source']}`."
        )
    return lines


def _sources(source_numbers: dict[str, int]) -> list[str]:
    lines = [
        "**Quoted, not measured.** The (quoted) columns are copied from these publications, not run here; "
        "their test sets differ from ours:"
    ]
    for key, number in source_numbers.items():
        source = SOURCES[key]
        lines.append(f"{number}. {source.title}, <{source.url}>: {source.caveat}.")
    return lines


def _unmeasured(ours: dict[MetricPath, float], published: Sequence[QuotedFigure]) -> list[str]:
    measured = {path[:-1] for path in ours}
    missing = sorted({" / ".join(f.path[:-1]) for f in published if f.path[:-1] not in measured})
    if not missing:
        return []
    return ["", f"Published figures with no measured counterpart in this eval.json (not shown): {', '.join(missing)}."]
