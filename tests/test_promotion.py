"""The promotion gate on hand-made eval reports and per-product values: no training, no files."""

from __future__ import annotations

import numpy as np
import pytest

from modaclip.core.config import PromoteParams, parse_params
from modaclip.core.errors import ModaclipError
from modaclip.registry.promotion import base_path, decide, metric_value, paired_bootstrap

GATE = PromoteParams(
    metric="finetuned.text_to_image.recall@10",
    min_gain=0.01,
    guarded=["finetuned.zero_shot.articleType.weighted_f1"],
    max_regression=0.02,
    min_confidence=0.0,
)
WITH_CONFIDENCE = GATE.model_copy(update={"min_confidence": 0.9})


def report(recall: float, f1: float, base_recall: float = 0.1, base_f1: float = 0.05) -> dict:
    def model(r: float, f: float) -> dict:
        return {"text_to_image": {"recall@10": r}, "zero_shot": {"articleType": {"weighted_f1": f}}}

    return {"test_items": 40, "base": model(base_recall, base_f1), "finetuned": model(recall, f1)}


def test_candidate_that_beats_production_is_promoted_with_every_figure_recorded() -> None:
    decision = decide(report(0.62, 0.30), report(0.60, 0.31), GATE)
    assert decision.passed and decision.baseline == "production"
    metric, guarded = decision.checks
    assert (metric.metric, metric.candidate, metric.production) == ("finetuned.text_to_image.recall@10", 0.62, 0.60)
    assert metric.change == pytest.approx(0.02) and metric.passed
    assert guarded.change == pytest.approx(-0.01) and guarded.passed
    assert decision.to_dict()["checks"][1]["metric"] == "finetuned.zero_shot.articleType.weighted_f1"


def test_gain_below_min_gain_keeps_production() -> None:
    decision = decide(report(0.605, 0.30), report(0.60, 0.30), GATE)
    assert not decision.passed
    assert "below promote.min_gain 0.01" in decision.reason


def test_guarded_regression_beyond_bound_keeps_production_even_with_a_big_gain() -> None:
    decision = decide(report(0.90, 0.20), report(0.60, 0.30), GATE)
    assert not decision.passed
    assert decision.reason == (
        "finetuned.text_to_image.recall@10 0.9000 vs production 0.6000 (gain +0.3000 >= 0.01), but guarded "
        "finetuned.zero_shot.articleType.weighted_f1 0.2000 vs production 0.3000: regression 0.1000 exceeds "
        "promote.max_regression 0.02"
    )


def test_regression_exactly_at_the_bound_is_allowed() -> None:
    assert decide(report(0.70, 0.25), report(0.60, 0.27), GATE.model_copy(update={"max_regression": 0.5})).passed


def test_first_round_is_gated_against_the_candidates_own_base_model() -> None:
    trained = decide(report(0.60, 0.30, base_recall=0.25, base_f1=0.05), None, GATE)
    assert trained.passed and trained.baseline == "base model"
    assert trained.checks[0].production == 0.25
    untrained = decide(report(0.25, 0.05, base_recall=0.25, base_f1=0.05), None, GATE)
    assert not untrained.passed and "vs base model 0.2500" in untrained.reason


def test_missing_metric_names_the_path_and_the_report() -> None:
    with pytest.raises(
        ModaclipError,
        match=r"production metrics: no metric 'finetuned.text_to_image.recall@10' \(missing key 'text_to_image'\)",
    ):
        decide(report(0.6, 0.3), {"finetuned": {}}, GATE)
    with pytest.raises(ModaclipError, match="is not a number"):
        metric_value({"a": {"b": "high"}}, "a.b", "candidate metrics")


def test_promote_params_are_validated_by_name() -> None:
    with pytest.raises(ModaclipError, match=r"promote\.min_gain"):
        parse_params({"promote": {"min_gain": -0.1}})
    with pytest.raises(ModaclipError, match=r"promote\.treshold: unknown parameter"):
        parse_params({"promote": {"treshold": 0.1}})


def hits(rate: float, n: int, seed: int) -> np.ndarray:
    """Per-product Recall@10 of n queries: 1.0 where the product was found, about `rate` of them."""
    return (np.random.default_rng(seed).random(n) < rate).astype(float)


def test_bootstrap_is_seeded_and_sees_a_clear_gain_and_no_gain() -> None:
    weak, strong = hits(0.3, 400, seed=1), hits(0.6, 400, seed=2)
    clear = paired_bootstrap("r", strong, weak)
    assert clear == paired_bootstrap("r", strong, weak), "same inputs, same resamples"
    assert clear.confidence > 0.999 and clear.gain == pytest.approx(strong.mean() - weak.mean())
    assert clear.interval[0] < clear.gain < clear.interval[1]
    same = paired_bootstrap("r", weak, weak)
    assert same.confidence == 0.0 and same.gain == 0.0, "a tie is never 'better'"
    assert paired_bootstrap("r", weak, strong).confidence < 0.001


def test_products_without_a_value_are_left_out_as_in_the_figure() -> None:
    candidate = np.array([1.0, np.nan, 0.0, 1.0])
    production = np.array([0.0, 1.0, 0.0, np.nan])
    result = paired_bootstrap("zero_shot.articleType.accuracy", candidate, production)
    assert result.products == 2 and result.gain == pytest.approx(0.5)
    with pytest.raises(ModaclipError, match="no test product has a value for both models"):
        paired_bootstrap("m", np.array([np.nan]), np.array([1.0]))
    with pytest.raises(ModaclipError, match="not one per test product"):
        paired_bootstrap("m", np.zeros(3), np.zeros(4))


def test_a_small_gain_on_few_products_is_noise_and_keeps_production() -> None:
    """40 test products, 2 more found and 1 fewer: gain +0.025 passes min_gain 0.01, not the confidence."""
    production = hits(0.5, 40, seed=3)
    candidate = production.copy()
    candidate[np.flatnonzero(production == 0)[:2]] = 1.0
    candidate[np.flatnonzero(production == 1)[:1]] = 0.0
    candidate_report = report(0.5 + 0.025, 0.30)
    production_report = report(0.5, 0.30)
    decision = decide(candidate_report, production_report, WITH_CONFIDENCE, (candidate, production))
    assert not decision.passed and decision.checks[0].passed, "the gain alone would have promoted it"
    assert decision.confidence is not None and decision.confidence.products == 40
    assert decision.confidence.confidence < 0.9
    assert "gain +0.0250 >= 0.01, confidence" in decision.reason
    assert "over 40 test products is below promote.min_confidence 0.9" in decision.reason


def test_a_clear_gain_is_promoted_naming_gain_and_confidence() -> None:
    production, candidate = hits(0.3, 400, seed=1), hits(0.6, 400, seed=2)
    decision = decide(report(0.6, 0.30), report(0.3, 0.30), WITH_CONFIDENCE, (candidate, production))
    assert decision.passed
    assert decision.reason == (
        "finetuned.text_to_image.recall@10 0.6000 vs production 0.3000 "
        "(gain +0.3000 >= 0.01, confidence 1.000 over 400 test products >= 0.9)"
    )
    assert decision.to_dict()["confidence"]["products"] == 400


def test_confidence_needs_per_product_values() -> None:
    with pytest.raises(ModaclipError, match=r"promote.min_confidence 0.9 needs per-product values"):
        decide(report(0.6, 0.3), report(0.5, 0.3), WITH_CONFIDENCE)


def test_first_round_bar_is_the_base_column() -> None:
    assert base_path("finetuned.text_to_image.recall@10") == "base.text_to_image.recall@10"
    with pytest.raises(ModaclipError, match="must start with 'finetuned'"):
        base_path("delta.text_to_image.recall@10")
