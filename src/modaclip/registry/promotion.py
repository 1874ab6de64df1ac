"""The promotion gate: does a freshly trained candidate model replace the production model?

Pure functions over two eval reports of the same test products (the caller scores production on the
candidate's test split, see champion.py), so the rule is tested without training anything.
The candidate must beat production on one chosen metric by at least `promote.min_gain` (absolute, in
the metric's own units), be better with a confidence of at least `promote.min_confidence` (a paired
bootstrap over the test products of that metric's per-product values), and may lose at most
`promote.max_regression` on each guarded metric.
Without a production model yet (the first round) the candidate is gated against its own base model:
the same report's `base` figures stand in for production, so a fine-tune that is no better than the
model it started from is never shipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from modaclip.core.config import PromoteParams
from modaclip.core.errors import ModaclipError

FINETUNED, BASE = "finetuned", "base"
Role = Literal["metric", "guarded"]
RESAMPLES = 10_000
SEED = 0  # the bootstrap is seeded: the same two evaluations always get the same decision
TIE = 1e-12  # a resampled gain this close to zero is a tie (float rounding), not a win
DRAWS_PER_BLOCK = 4_000_000  # resampled indices drawn at once: bounds memory (~64 MB) however large the test split


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


def base_path(path: str) -> str:
    """`finetuned.x.y` -> `base.x.y`: where the first round's bar sits in eval.json and its per-product table."""
    head, _, rest = path.partition(".")
    if head != FINETUNED:
        raise ModaclipError(
            f"promote.metric {path!r}: the first promotion compares with the base model, "
            f"so the metric must start with {FINETUNED!r}"
        )
    return f"{BASE}.{rest}"


@dataclass(frozen=True, kw_only=True)
class Confidence:
    """A paired bootstrap of the gated metric over the test products both models were scored on."""

    metric: str
    products: int
    gain: float  # mean per-product difference, candidate - production
    confidence: float  # share of resamples in which the candidate's mean is higher
    interval: tuple[float, float]  # 5th and 95th percentiles of the resampled gain
    resamples: int
    seed: int


def paired_bootstrap(
    metric: str, candidate: np.ndarray, production: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED
) -> Confidence:
    """Resample test products with replacement and count how often the candidate's mean beats production's.

    `candidate[i]` and `production[i]` are the two models' values for the same product; products where
    either is NaN (no relevant item, no label) do not count, as in the reported figure.
    """
    candidate, production = np.asarray(candidate, np.float64), np.asarray(production, np.float64)
    if candidate.shape != production.shape or candidate.ndim != 1:
        raise ModaclipError(
            f"{metric}: per-product values of {candidate.shape} and {production.shape} are not one per test product"
        )
    differences = (candidate - production)[~np.isnan(candidate) & ~np.isnan(production)]
    n = len(differences)
    if n == 0:
        raise ModaclipError(f"{metric}: no test product has a value for both models; nothing to compare")
    rng = np.random.default_rng(seed)
    gains = np.empty(resamples)
    block = max(1, DRAWS_PER_BLOCK // n)
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        gains[start : start + rows] = differences[rng.integers(0, n, size=(rows, n))].mean(axis=1)
    low, high = np.percentile(gains, [5, 95])
    return Confidence(
        metric=metric,
        products=n,
        gain=float(differences.mean()),
        confidence=float(np.mean(gains > TIE)),
        interval=(float(low), float(high)),
        resamples=resamples,
        seed=seed,
    )


@dataclass(frozen=True, kw_only=True)
class Check:
    """One compared figure: candidate vs production, the change, and the bound it had to meet."""

    role: Role
    metric: str
    candidate: float
    production: float
    change: float
    bound: float
    passed: bool


@dataclass(frozen=True, kw_only=True)
class Decision:
    passed: bool
    baseline: Literal["production", "base model"]
    reason: str
    checks: list[Check]
    confidence: Confidence | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "baseline": self.baseline,
            "reason": self.reason,
            "checks": [asdict(check) for check in self.checks],
            "confidence": asdict(self.confidence) if self.confidence else None,
        }


def compare(candidate: dict[str, Any], production: dict[str, Any], params: PromoteParams) -> list[Check]:
    """Every figure the gate looks at: the chosen metric first, then each guarded one."""
    checks = []
    for role, path in [("metric", params.metric), *(("guarded", g) for g in params.guarded)]:
        new = metric_value(candidate, path, "candidate metrics")
        old = metric_value(production, path, "production metrics")
        change = new - old
        bound = params.min_gain if role == "metric" else -params.max_regression
        checks.append(
            Check(
                role=role,
                metric=path,
                candidate=new,
                production=old,
                change=change,
                bound=bound,
                passed=change >= bound,
            )
        )
    return checks


def decide(
    candidate: dict[str, Any],
    production: dict[str, Any] | None,
    params: PromoteParams,
    per_product: tuple[np.ndarray, np.ndarray] | None = None,
) -> Decision:
    """Does the candidate pass? `production=None` means no model is in production yet.

    `per_product` holds the two models' values of `promote.metric` for each test product, in the same
    product order; it is needed unless `promote.min_confidence` is 0.
    """
    baseline = "production" if production is not None else "base model"
    checks = compare(candidate, production if production is not None else base_as_production(candidate), params)
    confidence = None
    if params.min_confidence > 0:
        if per_product is None:
            raise ModaclipError(
                f"promote.min_confidence {params.min_confidence} needs per-product values of promote.metric "
                f"{params.metric!r}; set it to 0 to gate on the difference alone"
            )
        confidence = paired_bootstrap(params.metric, *per_product)
    gated, guards = checks[0], checks[1:]
    metric_passed = gated.passed and (confidence is None or confidence.confidence >= params.min_confidence)
    reason = _verdict(gated, metric_passed=metric_passed, baseline=baseline, confidence=confidence, params=params)
    failed_guards = [_guard_failure(check, baseline) for check in guards if not check.passed]
    if failed_guards:
        reason += (", but " if metric_passed else "; ") + "; ".join(failed_guards)
    return Decision(
        passed=metric_passed and not failed_guards,
        baseline=baseline,
        reason=reason,
        checks=checks,
        confidence=confidence,
    )


def _verdict(
    gated: Check, *, metric_passed: bool, baseline: str, confidence: Confidence | None, params: PromoteParams
) -> str:
    """The gated metric, its gain and (when computed) its confidence, each with the bound it met or missed."""
    gain = f"gain {gated.change:+.4f} " + (
        f">= {params.min_gain}" if gated.passed else f"is below promote.min_gain {params.min_gain}"
    )
    parts = [gain]
    if confidence is not None:
        met = confidence.confidence >= params.min_confidence
        parts.append(
            f"confidence {confidence.confidence:.3f} over {confidence.products} test products "
            + (f">= {params.min_confidence}" if met else f"is below promote.min_confidence {params.min_confidence}")
        )
    head = f"{gated.metric} {gated.candidate:.4f} vs {baseline} {gated.production:.4f}"
    return f"{head} ({', '.join(parts)})" if metric_passed else f"{head}: {', '.join(parts)}"


def _guard_failure(check: Check, baseline: str) -> str:
    return (
        f"guarded {check.metric} {check.candidate:.4f} vs {baseline} {check.production:.4f}: "
        f"regression {-check.change:.4f} exceeds promote.max_regression {-check.bound}"
    )
