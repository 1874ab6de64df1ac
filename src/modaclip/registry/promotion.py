"""The promotion gate: does a freshly trained candidate model replace the production model?

Pure functions over two `metrics/eval.json` reports, so the rule is tested without training anything.
The candidate must beat production on one chosen metric by at least `promote.min_gain` (absolute, in
the metric's own units) and may lose at most `promote.max_regression` on each guarded metric.
Without a production model yet (the first round) the candidate is gated against its own base model:
the same report's `base` figures stand in for production, so a fine-tune that is no better than the
model it started from is never shipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from modaclip.core.config import PromoteParams
from modaclip.core.errors import ModaclipError

FINETUNED, BASE = "finetuned", "base"
Role = Literal["metric", "guarded"]


def metric_value(report: dict[str, Any], path: str, source: str) -> float:
    """The number at a dotted path such as `finetuned.text_to_image.recall@10` in an eval report."""
    node: Any = report
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ModaclipError(
                f"{source}: no metric {path!r} (missing key {part!r}); check promote.metric / promote.guarded"
            )
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise ModaclipError(f"{source}: metric {path!r} is not a number (got {node!r})")
    return float(node)


def base_as_production(report: dict[str, Any]) -> dict[str, Any]:
    """The report with its base model's figures in the fine-tuned model's place (the first round's bar)."""
    if BASE not in report:
        raise ModaclipError(f"candidate report has no {BASE!r} section to compare the first model against")
    return {**report, FINETUNED: report[BASE]}


@dataclass(frozen=True)
class Check:
    """One compared figure: candidate vs production, the change, and the bound it had to meet."""

    role: Role
    metric: str
    candidate: float
    production: float
    change: float
    bound: float
    passed: bool


@dataclass(frozen=True)
class Decision:
    promoted: bool
    baseline: Literal["production", "base model"]
    reason: str
    checks: list[Check]

    def to_dict(self) -> dict[str, Any]:
        return {
            "promoted": self.promoted,
            "baseline": self.baseline,
            "reason": self.reason,
            "checks": [asdict(check) for check in self.checks],
        }


def compare(candidate: dict[str, Any], production: dict[str, Any], params: PromoteParams) -> list[Check]:
    """Every figure the gate looks at: the chosen metric first, then each guarded one."""
    checks = []
    for role, path in [("metric", params.metric), *(("guarded", g) for g in params.guarded)]:
        new = metric_value(candidate, path, "candidate metrics")
        old = metric_value(production, path, "production metrics")
        change = new - old
        if role == "metric":
            checks.append(Check(role, path, new, old, change, params.min_gain, change >= params.min_gain))
        else:
            checks.append(Check(role, path, new, old, change, -params.max_regression, change >= -params.max_regression))
    return checks


def decide(candidate: dict[str, Any], production: dict[str, Any] | None, params: PromoteParams) -> Decision:
    """Promote or keep production; `production=None` means no model is in production yet."""
    baseline = "production" if production is not None else "base model"
    checks = compare(candidate, production if production is not None else base_as_production(candidate), params)
    failed = [check for check in checks if not check.passed]
    if not failed:
        head = checks[0]
        reason = (
            f"{head.metric} {head.candidate:.4f} vs {baseline} {head.production:.4f} "
            f"(gain {head.change:+.4f} >= {params.min_gain})"
        )
        return Decision(True, baseline, reason, checks)
    return Decision(False, baseline, "; ".join(_failure(check, baseline) for check in failed), checks)


def _failure(check: Check, baseline: str) -> str:
    if check.role == "metric":
        return (
            f"{check.metric} {check.candidate:.4f} vs {baseline} {check.production:.4f}: "
            f"gain {check.change:+.4f} is below promote.min_gain {check.bound}"
        )
    return (
        f"guarded {check.metric} {check.candidate:.4f} vs {baseline} {check.production:.4f}: "
        f"regression {-check.change:.4f} exceeds promote.max_regression {-check.bound}"
    )
