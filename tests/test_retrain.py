"""`modaclip retrain` for real, on the tiny pipeline in a temporary git repo: a first round, the grown
catalog re-embedded by the same model in review mode (the gate compares like with like; promote, a
killed promote, rollback), a retrain on the grown catalog, a killed run, two runs at once, the production
model in search, then queued experiments and a DVC remote on the same project (the re-embedding round
trains nothing; the other runs are the module's earlier ones: three retrains, one of them killed, and
two queued experiments)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from built_project import BuiltProject
from test_pipeline import set_params, sh, stages_run

from modaclip.cli import main
from modaclip.core.catalog_io import read_catalog
from modaclip.core.config import PromoteParams
from modaclip.registry import model_versions
from modaclip.registry.model_choice import search_source_for
from modaclip.registry.promotion import decide

pytestmark = pytest.mark.slow
RETRAIN = ["modaclip", "retrain"]


def env(repo: Path) -> dict[str, str]:
    """Unbuffered output, and the gate's cache of production's embeddings next to the project, not in ~/.cache."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "MODACLIP_CACHE": str(repo.parent / "cache")}


def retrain(repo: Path) -> dict:
    """One `modaclip retrain`: its exit status, output and decision record, and production after it."""
    done = subprocess.run(RETRAIN, cwd=repo, capture_output=True, text=True, env=env(repo))
    out = done.stdout + done.stderr
    assert (repo / "metrics/promotion.json").is_file(), f"no decision written (exit {done.returncode}):\n{out[-4000:]}"
    return {
        "code": done.returncode,
        "out": out,
        "record": promotion(repo),
        "production": model_versions.production(repo),
    }


def promotion(repo: Path) -> dict:
    return json.loads((repo / "metrics/promotion.json").read_text())


def start(repo: Path, command: list[str] = RETRAIN) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env(repo),
        start_new_session=True,
    )


def kill_at(process: subprocess.Popen, marker: str) -> None:
    read_until(process, marker)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


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
def project(learned_project: BuiltProject, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of test_pipeline's tiny project with LEARNING's epochs after its first `dvc repro` (built once)."""
    return learned_project.copy_to(tmp_path_factory.mktemp("retrain") / "project")


@pytest.fixture(scope="module")
def round1(project: Path) -> dict:
    """The first retrain: the pipeline is up to date (the build's `dvc repro` trained it), so only the gate's
    decision is new: the model against the base model."""
    return {**retrain(project), "test_ids": held_out_ids(project)}


@pytest.fixture(scope="module")
def regrown(project: Path, round1: dict) -> dict:
    """The catalog grows from 160 to 240 products and production's model re-embeds it (finetune frozen),
    in review mode under a gate that passes a tie: the candidate *is* production's model."""
    sh(project, "dvc", "freeze", "finetune")
    set_params(
        project, {"data": {"num_items": 240}, "promote": {"mode": "review", "min_gain": 0.0, "min_confidence": 0.0}}
    )
    sh(project, "git", "commit", "-qam", "re-embed the grown catalog with the production model")
    return {**retrain(project), "test_ids": held_out_ids(project), "staged": model_versions.staged(project)}


@pytest.fixture(scope="module")
def reviewed(project: Path, round1: dict, regrown: dict) -> dict:
    """`modaclip promote v2` killed while it restores v2's files, then run to the end, then `--rollback`."""
    tags_before = tags(project)
    kill_at(start(project, ["modaclip", "promote", "v2"]), "restoring modaclip-model@v2.0.0")
    after_kill = {
        "tags": tags(project),
        "production": model_versions.production(project),
        "restored": (project / "models/registry/v2.0.0").exists(),
    }
    promoted = subprocess.run(["modaclip", "promote", "v2"], cwd=project, capture_output=True, text=True)
    at_v2 = search_source_for("production", root=project)
    rolled_back = subprocess.run(["modaclip", "promote", "--rollback"], cwd=project, capture_output=True, text=True)
    return {
        "tags_before": tags_before,
        "after_kill": after_kill,
        "promoted": promoted,
        "at_v2": at_v2,
        "rolled_back": rolled_back,
        "production": model_versions.production(project),
    }


@pytest.fixture(scope="module")
def round2(project: Path, round1: dict, reviewed: dict) -> dict:
    """Training again, on the grown catalog, under the default gate (auto mode, confidence 0.9).

    Two epochs: the checks hold whichever way the gate decides, so the candidate need not learn as
    round 1's had to; round 3 keeps them, its kill and resume need a second epoch.
    """
    sh(project, "dvc", "unfreeze", "finetune")
    set_params(
        project,
        {"train": {"epochs": 2}, "promote": {"mode": "auto", "min_gain": 0.005, "min_confidence": 0.9}},
    )
    sh(project, "git", "commit", "-qam", "retrain on the grown catalog")
    return retrain(project)


@pytest.fixture(scope="module")
def round3(project: Path, round2: dict) -> dict:
    """A learning rate far too small to learn anything, so the candidate stays at its untrained start.

    The first attempt is killed during finetune, once epoch 1's checkpoint is written (epoch 2's progress
    bar starts after it); the second resumes from it, with a second retrain started beside it.
    """
    tags_before = tags(project)
    record_before = promotion(project)
    set_params(project, {"train": {"lr": 1e-9}})
    kill_at(start(project), "epoch 2/")  # once epoch 1's checkpoint is written
    after_kill = {"tags": tags(project), "production": model_versions.production(project), "record": promotion(project)}

    first = start(project)
    started = read_until(first, "Running stage")
    second = subprocess.run(RETRAIN, cwd=project, capture_output=True, text=True, env=env(project))
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


def test_round1_promotes_the_trained_model_against_the_base_model(project: Path, round1: dict) -> None:
    assert round1["code"] == 0, round1["out"]
    record = round1["record"]
    assert record["decision"] == "promoted" and record["baseline"] == "base model"
    assert record["candidate"]["version"] == "v1.0.0" and record["production"]["version"] is None
    assert next(c["metric"] for c in record["checks"]) == "finetuned.text_to_image.recall@10"
    production = model_versions.production(project)
    assert production == model_versions.ModelVersion("v1.0.0", sh(project, "git", "rev-parse", "HEAD").strip())
    tagged = json.loads(sh(project, "git", "show", f"{production.tag}:metrics/eval.json"))
    assert tagged == json.loads((project / "metrics/eval.json").read_text())
    shown = sh(project, "gto", "show")
    assert "modaclip-model" in shown and "v1.0.0" in shown and "#prod" in shown


def test_grown_catalog_same_model_is_a_tie_on_the_same_split_where_the_old_gate_saw_a_loss(
    project: Path, round1: dict, regrown: dict
) -> None:
    assert stages_run(regrown["out"]) == {"download", "caption", "embed", "evaluate"}, "finetune is frozen"
    assert round1["test_ids"] < regrown["test_ids"], "an old test product left the test split"
    record = regrown["record"]
    assert record["baseline"] == "production" and record["production"]["version"] == "v1.0.0"
    assert record["production"]["figures"] == record["candidate"]["figures"], "same model, same split, same code"
    assert record["checks"][0]["change"] == 0.0 and record["passed"]
    recorded = record["production"]["recorded"]
    assert recorded["test_items"] < record["test_split"]["items"] == len(regrown["test_ids"])
    assert recorded["test_digest"] != record["test_split"]["digest"]
    assert record["code"]["commit"] == sh(project, "git", "rev-parse", "HEAD~1").strip(), "the code that scored both"
    old_gate = decide(
        {"finetuned": record["candidate"]["figures"]},
        {"finetuned": recorded["figures"]},
        PromoteParams(**record["gate"]),
    )
    assert not old_gate.passed and "below promote.min_gain 0.0" in old_gate.reason, (
        "the old gate judged the moved split: the same model looked worse on more test products"
    )


def test_review_mode_stages_the_candidate_and_leaves_production_alone(
    project: Path, round1: dict, regrown: dict
) -> None:
    assert regrown["code"] == 4, regrown["out"]
    record = regrown["record"]
    assert record["decision"] == "staged for review" and record["mode"] == "review" and not record["promoted"]
    assert "modaclip promote v2.0.0" in regrown["out"]
    assert regrown["production"] == model_versions.ModelVersion("v1.0.0", round1["production"].commit)
    assert regrown["staged"].version == record["candidate"]["version"] == "v2.0.0"
    assert regrown["staged"].commit == sh(project, "git", "rev-parse", "HEAD").strip()


def test_a_killed_promote_changes_nothing_and_the_next_one_completes(reviewed: dict) -> None:
    after_kill = reviewed["after_kill"]
    assert after_kill["tags"] == reviewed["tags_before"] and after_kill["production"].version == "v1.0.0"
    assert not after_kill["restored"], "a killed restore left a folder that looks complete"
    assert reviewed["promoted"].returncode == 0, reviewed["promoted"].stderr
    assert "production: v2.0.0 (was v1.0.0)" in reviewed["promoted"].stdout
    assert (reviewed["at_v2"].kind, reviewed["at_v2"].version) == ("production", "v2.0.0")


def test_rollback_restores_v1_and_search_follows_it(
    project: Path, reviewed: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert reviewed["rolled_back"].returncode == 0, reviewed["rolled_back"].stderr
    assert "production: v1.0.0 (was v2.0.0)" in reviewed["rolled_back"].stdout
    assert reviewed["production"].version == "v1.0.0"
    monkeypatch.chdir(project)
    v1_ids = set(read_catalog(project / "models/registry/v1.0.0/data/clean", columns=["id"])["id"])
    v2_ids = set(read_catalog(reviewed["at_v2"].catalog, columns=["id"])["id"])
    assert v1_ids < v2_ids
    code, out, err = cli(["search", "red dress", "-k", str(len(v1_ids)), "--json"], capsys)
    assert code == 0, err
    assert {hit["id"] for hit in json.loads(out)[0]["results"]} == v1_ids, "production's search is v1's catalog"


def test_round2_retrains_on_the_grown_catalog_against_production_on_the_same_split(
    project: Path, regrown: dict, round2: dict
) -> None:
    assert stages_run(round2["out"]) == {"download", "finetune", "embed", "evaluate"}
    record = round2["record"]
    assert round2["code"] == (0 if record["promoted"] else 3), round2["out"]
    assert record["baseline"] == "production" and record["production"]["version"] == "v1.0.0"
    assert record["test_split"] == regrown["record"]["test_split"], "same catalog, same test products"
    confidence = record["confidence"]
    assert confidence["products"] == record["test_split"]["items"] and 0.0 <= confidence["confidence"] <= 1.0
    assert f"confidence {confidence['confidence']:.3f}" in record["reason"]
    assert record["production"]["evaluation_seconds"] > 0
    expected = "v3.0.0" if record["promoted"] else "v1.0.0"
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
    assert "another retrain is running here" in second.stderr


def test_round3_ruined_model_is_rejected_and_production_unchanged(project: Path, round2: dict, round3: dict) -> None:
    assert round3["code"] == 3, round3["out"]
    assert "Running stage 'finetune'" in round3["out"], "the killed run's finetune must run again"
    assert re.search(r"resuming from \S+ at epoch [2-9]", round3["out"]), "finetune restarted instead of resuming"
    record = round3["record"]
    assert record["decision"] == "kept production" and not record["promoted"]
    assert "below promote.min_gain" in record["reason"]
    assert record["production"]["version"] == round2["production"].version
    assert tags(project) == round3["tags_before"]
    assert model_versions.production(project) == round2["production"]
    prod_tag = model_versions.production(project).tag
    assert sh(project, "git", "rev-list", "-n1", prod_tag).strip() == round2["production"].commit


def test_uncommitted_code_exits_2_before_running_anything(
    project: Path, round3: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MODACLIP_CACHE", env(project)["MODACLIP_CACHE"])  # as the subprocess runs get
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
    monkeypatch.setenv("MODACLIP_CACHE", env(project)["MODACLIP_CACHE"])  # as the subprocess runs get
    monkeypatch.chdir(project)  # DVC, run in this process, resolves stages against the working directory
    production, record = model_versions.production(project), promotion(project)
    set_params(project, {"evaluate": {"zero_shot_sets": ["fmnist:no-such-folder"]}})  # evaluate stops on it
    try:
        code, out, err = cli(["retrain"], capsys)
    finally:
        set_params(project, {"evaluate": {"zero_shot_sets": []}})
    assert code == 2, out + err
    assert "pipeline failed: failed to reproduce 'evaluate'" in err and "production is unchanged" in err, err
    assert tags(project) == round3["tags_before"]
    assert model_versions.production(project) == production
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
    production = model_versions.production(project)
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
    set_params(project, {"train": {"lr": 0.001, "epochs": 1}})  # 1 epoch of ~10 steps tells two learning rates apart
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
    assert sh(clone, "dvc", "status").split() == ["download:", "always", "changed"], "everything else is pulled"
    assert stages_run(sh(clone, "dvc", "repro")) == {"download"}
