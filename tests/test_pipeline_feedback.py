"""The feedback loop's stages in the real `dvc repro` on the tiny configuration: a simulated log, its export,
training on it and the three models on held-out logged queries; then a serve log named by feedback.log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_pipeline import TINY, make_tiny_project, set_params, sh, stages_run

from modaclip.feedback import log_schema
from modaclip.feedback.log_schema import EventRecord, SearchRecord, read_log

FEEDBACK = {
    "simulate": {"searches": 600, "shoppers": 80, "pool": 40, "page": 10},
    "train": {"epochs": 1, "warmup_steps": 2},
}


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_project(tmp_path_factory.mktemp("project"), {**TINY, "feedback": FEEDBACK}, feedback=True)


@pytest.fixture(scope="module")
def first_run(project: Path) -> str:
    return sh(project, "dvc", "repro")


def test_repro_runs_the_loop_and_scores_three_models(project: Path, first_run: str) -> None:
    assert stages_run(first_run) >= {"shop-log", "feedback", "finetune-feedback", "evaluate-feedback"}
    summary = json.loads((project / "metrics/feedback.json").read_text())
    assert summary["text_searches"] == 600 and summary["pairs"] > 0 and summary["heldout_queries"] > 0
    report = json.loads((project / "metrics/feedback_eval.json").read_text())
    for model in ("base", "finetuned", "feedback"):
        for judged in ("heldout", "heldout_by_attributes"):  # by clicks, and by the simulation's truth
            assert 0.0 <= report[model][judged]["vector"]["ndcg@10"] <= 1.0
    headline = json.loads((project / "metrics/feedback_headline.json").read_text())
    assert headline["logged_ndcg@10"]["feedback"] == round(report["feedback"]["heldout"]["vector"]["ndcg@10"], 4)
    card = json.loads((project / "models/finetuned-feedback/modaclip.json").read_text())
    assert card["feedback"] == "data/feedback" and card["init"] == "models/finetuned"
    assert card["train_params"]["fields"]["{queries}"] == 2.0


def test_second_repro_reads_the_log_again_and_runs_nothing_after_it(project: Path, first_run: str) -> None:
    assert stages_run(sh(project, "dvc", "repro")) == {"download", "shop-log"}


def test_a_serve_log_named_in_params_is_snapshotted_and_trained_on(project: Path, first_run: str) -> None:
    simulated = read_log([project / "data/shop_log/log-000.sqlite"])
    served = project / "logs" / "search-log.sqlite"
    conn = log_schema.connect(served)  # a server's log, in WAL mode, left open as a running server's would be
    searches = [
        SearchRecord(
            search_id=f"{n:032x}",
            at=2e9 + n,
            kind="text",
            query="Shop Query",
            filters={},
            session=f"s{n % 3}",
            model="v1",
            mode="vector",
            offset=0,
            shown=[first],
        )
        for n, first in enumerate(simulated.searches["shown"].map(lambda shown: shown[0]).head(20))
    ]
    log_schema.write(conn, searches, [EventRecord(s.search_id, s.shown[0], "open", s.at + 1) for s in searches])
    try:
        set_params(project, {"feedback": {**FEEDBACK, "log": "logs/*.sqlite"}})
        ran = stages_run(sh(project, "dvc", "repro"))
    finally:
        conn.close()
    assert ran == {"download", "shop-log", "feedback", "finetune-feedback", "evaluate-feedback"}
    summary = json.loads((project / "metrics/feedback.json").read_text())
    assert summary["text_searches"] == 20 and summary["events"] == 20
    assert sorted(p.name for p in (project / "data/shop_log").iterdir()) == ["log-000.sqlite"]
