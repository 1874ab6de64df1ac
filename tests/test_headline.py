"""`dvc exp show` lists the headline figures only; the detail files stay versioned and diffable by path."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from modaclip.evaluate.headline import HEADLINE, headline_metrics, query_set_headlines

REPO = Path(__file__).resolve().parents[1]
DETAIL_FILES = ["metrics/clean.json", "metrics/train.json", "metrics/eval.json"]
FEEDBACK_HEADLINE = "metrics/feedback_headline.json"  # evaluate-feedback's: held-out logged nDCG@10 per model
EXP_SHOW_FIXED = {"Experiment", "rev", "typ", "Created", "parent", "State", "Executor"}


def report(recall_ks: tuple[int, ...] = (1, 10)) -> dict:
    figures = {f"recall@{k}": 0.123456 for k in recall_ks}
    model = {
        "text_to_image": figures,
        "image_to_image": {"precision@10_articleType": 0.5},
        "zero_shot": {"articleType": {"accuracy": 0.25}, "baseColour": {"accuracy": 0.75}},
    }
    return {"base": model, "finetuned": model, "grid": {"mean_precision@8": 0.75}}


def test_headline_picks_and_rounds_the_figures() -> None:
    figures = headline_metrics({"train": {"final_train_loss": 1.23456, "train_seconds": 229.7}, "eval": report()})
    assert set(figures) == set(HEADLINE)
    assert figures["recall@1"] == 0.1235 and figures["type_acc"] == 0.25 and figures["train_min"] == 3.8


def test_a_figure_the_params_did_not_ask_for_is_left_out() -> None:
    figures = headline_metrics({"train": {}, "eval": report(recall_ks=(5, 10))})
    assert "recall@1" not in figures and "train_min" not in figures and figures["recall@10"] == 0.1235


def sh(cwd: Path, *args: str) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def leaves(section: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in section.items():
        keys |= leaves(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}"}
    return keys


@pytest.fixture(scope="module")
def metrics_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This project's dvc.yaml and params.yaml with its committed metrics files, in a fresh git + DVC repo."""
    repo = tmp_path_factory.mktemp("exp-show")
    for name in ("dvc.yaml", "params.yaml", *DETAIL_FILES, "metrics/headline.json", FEEDBACK_HEADLINE):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, repo / name)
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "config", "user.email", "test@example.com")
    sh(repo, "git", "config", "user.name", "test")
    sh(repo, "dvc", "init", "-q")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "metrics")
    return repo


def test_exp_show_has_only_the_headline_metric_columns(metrics_repo: Path) -> None:
    header = next(csv.reader(io.StringIO(sh(metrics_repo, "dvc", "exp", "show", "--csv", "--no-fetch"))))
    params = leaves(YAML(typ="safe").load(metrics_repo / "params.yaml"))
    stages = YAML(typ="safe").load(metrics_repo / "dvc.yaml")["stages"].values()
    deps = {dep for stage in stages for dep in stage.get("deps", [])}
    metric_columns = [c for c in header if c not in EXP_SHOW_FIXED | params | deps]
    eval_report = json.loads((metrics_repo / "metrics/eval.json").read_text())
    logged = leaves(json.loads((metrics_repo / FEEDBACK_HEADLINE).read_text()))
    assert logged == {"logged_ndcg@10.base", "logged_ndcg@10.finetuned", "logged_ndcg@10.feedback"}
    assert sorted(metric_columns) == sorted([*HEADLINE, *query_set_headlines(eval_report), *logged])
    assert len(metric_columns) <= 15


def test_detail_files_are_still_shown_and_diffed_by_path(metrics_repo: Path) -> None:
    shown = json.loads(sh(metrics_repo, "dvc", "metrics", "show", "metrics/eval.json", "--json"))
    figures = shown[""]["data"]["metrics/eval.json"]["data"]
    assert figures["finetuned"]["text_to_image"]["recall@10"] > 0
    changed = json.loads((metrics_repo / "metrics/eval.json").read_text())
    changed["finetuned"]["text_to_image"]["recall@10"] += 0.125
    (metrics_repo / "metrics/eval.json").write_text(json.dumps(changed))
    diff = json.loads(sh(metrics_repo, "dvc", "metrics", "diff", "--targets", "metrics/eval.json", "--json"))
    assert diff["metrics/eval.json"]["finetuned.text_to_image.recall@10"]["diff"] == pytest.approx(0.125)
