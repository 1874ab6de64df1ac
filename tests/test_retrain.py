"""`modaclip retrain` for real, on the tiny pipeline in a temporary git repo: three rounds of a growing
catalog, a killed run, two runs at once, the production model in search, then queued experiments and a
DVC remote on the same project (so the whole module costs five pipeline runs, two of them partial)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from test_pipeline import LEARNING, TINY, make_tiny_project, set_params, sh, stages_run

from modaclip.cli import main
from modaclip.core.catalog_io import read_catalog
from modaclip.registry import versions as registry

pytestmark = pytest.mark.slow
RETRAIN = ["modaclip", "retrain"]
UNBUFFERED = {**os.environ, "PYTHONUNBUFFERED": "1"}


def retrain(repo: Path) -> tuple[int, str, dict]:
    done = subprocess.run(RETRAIN, cwd=repo, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr, promotion(repo)


def promotion(repo: Path) -> dict:
    return json.loads((repo / "metrics/promotion.json").read_text())


def start_retrain(repo: Path) -> subprocess.Popen:
    return subprocess.Popen(
        RETRAIN,
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=UNBUFFERED,
        start_new_session=True,
    )


def read_until(process: subprocess.Popen, marker: str) -> str:
    seen = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} never printed:\n{''.join(seen)}")


def held_out_ids(repo: Path) -> set[int]:
    return set(read_catalog(repo / "data/clean", columns=["id"], split="test")["id"])


def tags(repo: Path) -> list[str]:
    return sh(repo, "git", "tag", "-l").split()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("retrain") / "project"
    repo.mkdir()
    return make_tiny_project(repo, {**TINY, "train": {**TINY["train"], **LEARNING}})


@pytest.fixture(scope="module")
def round1(project: Path) -> dict:
    code, out, record = retrain(project)
    return {"code": code, "out": out, "record": record, "test_ids": held_out_ids(project)}


@pytest.fixture(scope="module")
def round2(project: Path, round1: dict) -> dict:
    set_params(project, {"data": {"num_items": 240}})
    code, out, record = retrain(project)
    return {
        "code": code,
        "out": out,
        "record": record,
        "test_ids": held_out_ids(project),
        "production": registry.production(project),
    }


@pytest.fixture(scope="module")
def round3(project: Path, round2: dict) -> dict:
    """A learning rate far too small to learn anything, so the candidate stays at its untrained start.

    The first attempt is killed during finetune, once epoch 1's checkpoint is written (epoch 2's progress
    bar starts after it); the second resumes from it, with a second retrain started beside it.
    """
    tags_before = tags(project)
    record_before = promotion(project)
    set_params(project, {"train": {"lr": 1e-9}})
    killed = start_retrain(project)
    read_until(killed, "epoch 2/")
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    after_kill = {"tags": tags(project), "production": registry.production(project), "record": promotion(project)}

    first = start_retrain(project)
    started = read_until(first, "Running stage")
    second = subprocess.run(RETRAIN, cwd=project, capture_output=True, text=True)
    out = started + first.communicate()[0]
    return {
        "tags_before": tags_before,
        "record_before": record_before,
        "after_kill": after_kill,
        "second": second,
        "code": first.returncode,
        "out": out,
        "record": promotion(project),
    }


def test_round1_trains_and_promotes_against_the_base_model(project: Path, round1: dict) -> None:
    assert round1["code"] == 0, round1["out"]
    record = round1["record"]
    assert record["decision"] == "promoted" and record["baseline"] == "base model"
    assert record["candidate"]["version"] == "v1.0.0" and record["production"]["version"] is None
    assert next(c["metric"] for c in record["checks"]) == "finetuned.text_to_image.recall@10"
    production = registry.production(project)
    assert production == registry.ModelVersion("v1.0.0", sh(project, "git", "rev-parse", "HEAD").strip())
    tagged = json.loads(sh(project, "git", "show", f"{production.tag}:metrics/eval.json"))
    assert tagged == json.loads((project / "metrics/eval.json").read_text())
    shown = sh(project, "gto", "show")
    assert "modaclip-model" in shown and "v1.0.0" in shown and "#prod" in shown


def test_round2_adds_products_keeps_old_test_items_in_test_and_records_the_decision(
    project: Path, round1: dict, round2: dict
) -> None:
    assert stages_run(round2["out"]) == {"download", "caption", "finetune", "embed", "evaluate"}
    record = round2["record"]
    assert round2["code"] == (0 if record["promoted"] else 3), round2["out"]
    assert record["baseline"] == "production" and record["production"]["version"] == "v1.0.0"
    assert round1["test_ids"] < round2["test_ids"], "an old test product left the test split"
    assert record["candidate"]["test_items"] > record["production"]["test_items"]
    expected = "v2.0.0" if record["promoted"] else "v1.0.0"
    assert round2["production"].version == expected


def test_killed_retrain_leaves_production_and_registry_untouched(project: Path, round2: dict, round3: dict) -> None:
    after = round3["after_kill"]
    assert after["tags"] == round3["tags_before"]
    assert after["production"] == round2["production"]
    assert after["record"] == round3["record_before"], "a killed run must not write a decision"


def test_second_retrain_at_once_stops_with_one_line(round3: dict) -> None:
    second = round3["second"]
    assert second.returncode == 2
    assert second.stderr.strip().count("\n") == 0, second.stderr
    assert "another retrain or dvc command is running" in second.stderr


def test_round3_ruined_model_is_rejected_and_production_unchanged(project: Path, round2: dict, round3: dict) -> None:
    assert round3["code"] == 3, round3["out"]
    assert "Running stage 'finetune'" in round3["out"], "the killed run's finetune must run again"
    assert re.search(r"resuming from \S+ at epoch [2-9]", round3["out"]), "finetune restarted instead of resuming"
    record = round3["record"]
    assert record["decision"] == "kept production" and not record["promoted"]
    assert "below promote.min_gain" in record["reason"]
    assert record["production"]["version"] == round2["production"].version
    assert tags(project) == round3["tags_before"]
    assert registry.production(project) == round2["production"]
    prod_tag = registry.production(project).tag
    assert sh(project, "git", "rev-list", "-n1", prod_tag).strip() == round2["production"].commit


def test_uncommitted_code_exits_2_before_running_anything(
    project: Path, round3: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    stage, report = project / "stages" / "evaluate.py", project / "metrics" / "eval.json"
    original, written = stage.read_text(), report.stat().st_mtime_ns
    stage.write_text(original + "# an edit nobody committed\n")
    try:
        code, out, err = cli(["retrain"], capsys)
    finally:
        stage.write_text(original)
    assert code == 2, out + err
    assert "uncommitted changes to stages/evaluate.py" in err
    assert report.stat().st_mtime_ns == written, "evaluate, whose code changed, ran anyway"
    assert tags(project) == round3["tags_before"]


def test_a_failed_stage_exits_2_and_leaves_production_and_the_record_alone(
    project: Path, round3: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)  # DVC, run in this process, resolves stages against the working directory
    production, record = registry.production(project), promotion(project)
    set_params(project, {"evaluate": {"zero_shot_sets": ["fmnist:no-such-folder"]}})  # evaluate stops on it
    try:
        code, out, err = cli(["retrain"], capsys)
    finally:
        set_params(project, {"evaluate": {"zero_shot_sets": []}})
    assert code == 2, out + err
    assert "pipeline failed: failed to reproduce 'evaluate'" in err and "production is unchanged" in err, err
    assert tags(project) == round3["tags_before"]
    assert registry.production(project) == production
    assert promotion(project) == record


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`modaclip ARGV` in this process (the entry point's own function; no 7 s torch import per call)."""
    try:
        main(argv)
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_search_uses_the_production_model_and_reports_damage_in_one_line(
    project: Path, round3: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    production = registry.production(project)
    code, out, err = cli(["search", "red dress", "-k", "3", "--json"], capsys)
    assert code == 0, err
    assert len(json.loads(out)[0]["results"]) == 3
    restored = project / "models/registry" / production.version
    assert (restored / "models/finetuned/open_clip_model.safetensors").is_file()
    assert cli(["search", "red dress", "--model", "v1"], capsys)[0] == 0

    with open(restored / "models/finetuned/open_clip_model.safetensors", "r+b") as weights:
        weights.truncate(1000)
    code, _, err = cli(["search", "red dress"], capsys)
    assert code == 2 and "corrupt or incomplete" in err
    assert err.strip().count("\n") == 0, err

    shutil.rmtree(restored)
    cache = project / ".dvc/cache"
    cache.rename(project / "cache-away")
    try:
        code, _, err = cli(["search", "red dress"], capsys)
    finally:
        (project / "cache-away").rename(cache)
    assert code == 2 and "cannot restore modaclip-model@" in err
    assert err.strip().count("\n") == 0, err
    assert not restored.exists(), "a failed restore left a partial copy"


@pytest.fixture(scope="module")
def experiments(project: Path, round3: dict) -> dict[float, dict]:
    """Two queued experiments over train.lr, run in one go: {lr: {"name", "metrics"}} from `dvc exp show --json`."""
    set_params(project, {"train": {"lr": 0.001, "epochs": 2}})  # 2 epochs: enough to tell two learning rates apart
    sh(project, "git", "add", "-A")
    sh(project, "git", "commit", "-qm", "baseline for experiments")
    for lr in ("0.002", "0.0005"):
        sh(project, "dvc", "exp", "run", "--queue", "-S", f"train.lr={lr}")
    sh(project, "dvc", "exp", "run", "--run-all")
    shown = json.loads(
        subprocess.run(["dvc", "exp", "show", "--json"], cwd=project, capture_output=True, text=True, check=True).stdout
    )
    return {
        rev["data"]["params"]["params.yaml"]["data"]["train"]["lr"]: {
            "name": exp["name"],
            "metrics": rev["data"]["metrics"]["metrics/headline.json"]["data"],
        }
        for commit in shown
        for exp in (commit.get("experiments") or [])
        for rev in exp["revs"]
        if rev["data"].get("metrics")
    }


def test_queued_experiments_show_both_metrics(experiments: dict[float, dict]) -> None:
    assert {0.002, 0.0005} <= set(experiments), f"experiments found: {sorted(experiments)}"
    fast, slow = experiments[0.002]["metrics"], experiments[0.0005]["metrics"]
    assert (fast["recall@10"], fast["final_loss"]) != (slow["recall@10"], slow["final_loss"])
    base = ["base_recall@1", "base_recall@10"]
    assert [fast[k] for k in base] == [slow[k] for k in base], "the base model does not depend on train.lr"


def test_remote_push_then_fresh_clone_pulls_everything_and_has_nothing_to_run(
    project: Path, experiments: dict, tmp_path: Path
) -> None:
    storage, clone = tmp_path / "storage", tmp_path / "clone"
    sh(
        project, "dvc", "exp", "apply", experiments[0.002]["name"]
    )  # keep the winner: a commit whose dvc.lock matches its params
    sh(project, "dvc", "remote", "add", "-d", "local", str(storage))
    sh(project, "git", "add", "-A")
    sh(project, "git", "commit", "-qm", "local remote")
    sh(project, "dvc", "push")
    sh(tmp_path, "git", "clone", "-q", str(project), str(clone))
    sh(clone, "dvc", "pull")
    assert (clone / "models/finetuned/open_clip_model.safetensors").is_file()
    assert (clone / "data/embeddings/vectors.npy").is_file()
    assert (clone / "models/checkpoints/last.pt").is_file(), "the resume state travels with the model"
    assert "Data and pipelines are up to date" in sh(clone, "dvc", "status")
    assert stages_run(sh(clone, "dvc", "repro")) == set()
