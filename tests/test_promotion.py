"""The promotion gate on hand-made eval reports: no training, no files."""

from __future__ import annotations

import pytest

from modaclip.core.config import PromoteParams, parse_params
from modaclip.core.errors import ModaclipError
from modaclip.registry.promotion import decide, metric_value

GATE = PromoteParams(
    metric="finetuned.text_to_image.recall@10",
    min_gain=0.01,
    guarded=["finetuned.zero_shot.articleType.weighted_f1"],
    max_regression=0.02,
)


def report(recall: float, f1: float, base_recall: float = 0.1, base_f1: float = 0.05) -> dict:
    def model(r: float, f: float) -> dict:
        return {"text_to_image": {"recall@10": r}, "zero_shot": {"articleType": {"weighted_f1": f}}}

    return {"test_items": 40, "base": model(base_recall, base_f1), "finetuned": model(recall, f1)}


def test_candidate_that_beats_production_is_promoted_with_every_figure_recorded() -> None:
    decision = decide(report(0.62, 0.30), report(0.60, 0.31), GATE)
    assert decision.promoted and decision.baseline == "production"
    metric, guarded = decision.checks
    assert (metric.metric, metric.candidate, metric.production) == ("finetuned.text_to_image.recall@10", 0.62, 0.60)
    assert metric.change == pytest.approx(0.02) and metric.passed
    assert guarded.change == pytest.approx(-0.01) and guarded.passed
    assert decision.to_dict()["checks"][1]["metric"] == "finetuned.zero_shot.articleType.weighted_f1"


def test_gain_below_min_gain_keeps_production() -> None:
    decision = decide(report(0.605, 0.30), report(0.60, 0.30), GATE)
    assert not decision.promoted
    assert "below promote.min_gain 0.01" in decision.reason


def test_guarded_regression_beyond_bound_keeps_production_even_with_a_big_gain() -> None:
    decision = decide(report(0.90, 0.20), report(0.60, 0.30), GATE)
    assert not decision.promoted
    assert "guarded finetuned.zero_shot.articleType.weighted_f1" in decision.reason
    assert "exceeds promote.max_regression 0.02" in decision.reason
    assert "min_gain" not in decision.reason, "the chosen metric passed, only the guard failed"


def test_regression_exactly_at_the_bound_is_allowed() -> None:
    assert decide(report(0.70, 0.25), report(0.60, 0.27), GATE.model_copy(update={"max_regression": 0.5})).promoted


def test_first_round_is_gated_against_the_candidates_own_base_model() -> None:
    trained = decide(report(0.60, 0.30, base_recall=0.25, base_f1=0.05), None, GATE)
    assert trained.promoted and trained.baseline == "base model"
    assert trained.checks[0].production == 0.25
    untrained = decide(report(0.25, 0.05, base_recall=0.25, base_f1=0.05), None, GATE)
    assert not untrained.promoted and "vs base model 0.2500" in untrained.reason


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
