"""The GTO registry and retrain's guards in a tiny git repo: no pipeline, no model."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import gto.api
import pytest

from modaclip.cli import main
from modaclip.core.config import Params
from modaclip.core.errors import ModaclipError
from modaclip.registry import model_versions
from modaclip.registry.model_choice import search_source_for
from modaclip.registry.promotion import Decision
from modaclip.registry.retrain import (
    EXIT_STAGED,
    check_only_run_records_changed,
    exit_status,
    gate_and_record,
    rolled_back_model,
    unchanged,
    version_at_head,
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "test@example.com")
    git(tmp_path, "config", "user.name", "test")
    commit(tmp_path, {"params.yaml": "train: {}\n", "src/code.py": "x = 1\n"}, "start")
    return tmp_path


def test_empty_registry_has_no_production_and_auto_uses_the_workspace(repo: Path) -> None:
    assert model_versions.production(repo) is None and model_versions.all_versions(repo) == []
    assert model_versions.next_version(repo) == "v1.0.0"
    workspace = search_source_for("auto", root=repo)
    assert (workspace.model, workspace.embeddings, workspace.catalog) == (
        Path("models/finetuned"),
        Path("data/embeddings"),
        Path("data/clean"),
    )
    assert search_source_for("elsewhere/model", root=repo).model == Path("elsewhere/model")


def test_search_source_says_what_is_served(repo: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="modaclip"):
        pipeline = search_source_for("auto", root=repo)
    assert (pipeline.kind, pipeline.version, pipeline.model) == ("pipeline", None, Path("models/finetuned"))
    assert "the registry has no production version" in pipeline.description
    assert caplog.messages == [f"--model auto: {pipeline.description}"], "auto says which model it chose"
    folder = search_source_for("elsewhere/model", root=repo)
    assert (folder.kind, folder.description, folder.embeddings) == (
        "folder",
        "model folder elsewhere/model",
        Path("data/embeddings"),
    )


def test_search_source_names_the_production_version(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = commit(repo, {"metrics/eval.json": "{}"}, "run")
    model_versions.register(repo, head, "v1.0.0", stage=model_versions.PROD_STAGE, reason="first")
    monkeypatch.setattr(
        model_versions,
        "materialise",
        lambda root, version: {role: Path("restored") / role for role in ("model", "embeddings", "catalog")},
    )
    source = search_source_for("production", root=repo)
    assert (source.kind, source.version, source.model) == ("production", "v1.0.0", Path("restored/model"))
    assert search_source_for("auto", root=repo) == source, "auto is production once the registry has one"
    assert source.description == f"production v1.0.0 (modaclip-model@v1.0.0, commit {head[:8]})"
    assert source.since == model_versions.production_since(repo) is not None
    assert search_source_for("v1", root=repo).description.startswith("v1.0.0 (")


def test_promotions_move_prod_and_versions_count_up(repo: Path) -> None:
    first = commit(repo, {"metrics/eval.json": '{"finetuned": {"r": 0.5}}'}, "run 1")
    model_versions.register(repo, first, "v1.0.0", stage=model_versions.PROD_STAGE, reason="first")
    second = commit(repo, {"metrics/eval.json": '{"finetuned": {"r": 0.6}}'}, "run 2")
    model_versions.register(
        repo, second, model_versions.next_version(repo), stage=model_versions.PROD_STAGE, reason="better"
    )
    assert model_versions.production(repo) == model_versions.ModelVersion("v2.0.0", second)
    assert model_versions.find_version(repo, "v1") == model_versions.ModelVersion("v1.0.0", first)
    assert model_versions.eval_report(repo, model_versions.production(repo)) == {"finetuned": {"r": 0.6}}
    assert {"modaclip-model@v1.0.0", "modaclip-model@v2.0.0"} <= set(git(repo, "tag", "-l").split())
    with pytest.raises(ModaclipError, match=r"'v9' is not registered \(versions: v1.0.0, v2.0.0\)"):
        model_versions.find_version(repo, "v9")


def test_a_commit_registered_by_a_killed_run_keeps_its_version(repo: Path) -> None:
    head = commit(repo, {"metrics/eval.json": "{}"}, "run")
    gto.api.register(str(repo), model_versions.ARTIFACT, ref=head, version="v1.0.0")
    assert model_versions.production(repo) is None
    assert (
        model_versions.register(repo, head, "v2.0.0", stage=model_versions.PROD_STAGE, reason="resumed").version
        == "v1.0.0"
    )
    assert model_versions.production(repo) == model_versions.ModelVersion("v1.0.0", head)


def test_missing_or_broken_production_metrics_are_one_line_errors(repo: Path) -> None:
    bare = model_versions.ModelVersion("v1.0.0", git(repo, "rev-parse", "HEAD").strip())
    with pytest.raises(ModaclipError, match=r"modaclip-model@v1.0.0 \(\w{8}\):metrics/eval.json is missing from git"):
        model_versions.eval_report(repo, bare)
    broken = model_versions.ModelVersion("v2.0.0", commit(repo, {"metrics/eval.json": "{not json"}, "broken"))
    with pytest.raises(ModaclipError, match="is not valid JSON"):
        model_versions.eval_report(repo, broken)


def test_restored_copy_is_checked_against_its_embeddings(tmp_path: Path) -> None:
    paths = {"model": tmp_path / "v1/models/finetuned", "embeddings": tmp_path / "v1/data/embeddings"}
    for folder in paths.values():
        folder.mkdir(parents=True)
    weights = paths["model"] / "open_clip_model.safetensors"
    weights.write_bytes(b"weights")
    meta = {"model_sha256": hashlib.sha256(b"weights").hexdigest()}
    (paths["embeddings"] / "meta.json").write_text(json.dumps(meta))
    version = model_versions.ModelVersion("v1.0.0", "0" * 40)
    model_versions.check_intact(version, paths)
    weights.write_bytes(b"weig")
    with pytest.raises(ModaclipError, match=r"modaclip-model@v1.0.0: restored copy in .*v1 is corrupt or incomplete"):
        model_versions.check_intact(version, paths)
    weights.unlink()
    with pytest.raises(ModaclipError, match="corrupt or incomplete"):
        model_versions.check_intact(version, paths)


def test_retrain_refuses_uncommitted_code_but_not_a_changed_catalog_param(repo: Path) -> None:
    (repo / "params.yaml").write_text("train: {lr: 0.1}\n")
    check_only_run_records_changed(repo)
    (repo / "src/code.py").write_text("x = 2\n")
    with pytest.raises(ModaclipError, match=r"uncommitted changes to src/code.py: commit them first"):
        check_only_run_records_changed(repo)


def three_versions(repo: Path) -> list[str]:
    """v1, v2 and v3 promoted in turn (as retrain in auto mode does); their commits."""
    commits = []
    for n in (1, 2, 3):
        commits.append(commit(repo, {"metrics/eval.json": f'{{"finetuned": {{"r": 0.{n}}}}}'}, f"run {n}"))
        model_versions.register(repo, commits[-1], f"v{n}.0.0", stage=model_versions.PROD_STAGE, reason=f"round {n}")
    return commits


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stand-in for restoring a version's files from DVC (these repos have no DVC outputs): records which."""
    calls: list[str] = []
    monkeypatch.setattr(model_versions, "materialise", lambda root, version: calls.append(version.version))
    return calls


def tag_names(repo: Path) -> set[str]:
    return set(git(repo, "tag", "-l").split())


def test_a_staged_candidate_waits_until_promoted_with_one_tag(repo: Path, restored: list[str]) -> None:
    first = commit(repo, {"metrics/eval.json": '{"r": 1}'}, "run 1")
    model_versions.register(repo, first, "v1.0.0", stage=model_versions.PROD_STAGE, reason="first")
    second = commit(repo, {"metrics/eval.json": '{"r": 2}'}, "run 2")
    model_versions.register(repo, second, "v2.0.0", stage=model_versions.STAGING_STAGE, reason="passed the gate")
    assert model_versions.production(repo) == model_versions.ModelVersion("v1.0.0", first)
    assert model_versions.staged(repo) == model_versions.ModelVersion("v2.0.0", second)
    before = tag_names(repo)
    assert model_versions.promote(repo, "v2") == (
        model_versions.ModelVersion("v1.0.0", first),
        model_versions.ModelVersion("v2.0.0", second),
    )
    assert model_versions.production(repo).version == "v2.0.0" and restored == ["v2.0.0"]
    assert len(tag_names(repo) - before) == 1, "a move of production is exactly one tag"
    with pytest.raises(ModaclipError, match=r"v2\.0\.0 is already in production"):
        model_versions.promote(repo, "v2")


def test_rollback_walks_back_one_version_at_a_time(repo: Path, restored: list[str]) -> None:
    commits = three_versions(repo)
    before = tag_names(repo)
    assert model_versions.rollback(repo) == (
        model_versions.ModelVersion("v3.0.0", commits[2]),
        model_versions.ModelVersion("v2.0.0", commits[1]),
    )
    assert model_versions.production(repo).version == "v2.0.0" and restored == ["v2.0.0"]
    assert len(tag_names(repo) - before) == 1
    model_versions.rollback(repo)
    assert model_versions.production(repo).version == "v1.0.0"
    with pytest.raises(ModaclipError, match=r"no previous version to roll back to: only v1\.0\.0 holds prod"):
        model_versions.rollback(repo)
    with pytest.raises(ModaclipError, match="no previous version to roll back to: nothing is in production"):
        model_versions.rollback(commit_repo(repo.parent / "empty"))
    model_versions.promote(repo, "v3")
    assert model_versions.production(repo).version == "v3.0.0", "a rolled back version can be promoted again"
    with pytest.raises(ModaclipError, match=r"v2.0.0 is older than production v3.0.0; to go back, use .*--rollback"):
        model_versions.promote(repo, "v2")


def commit_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "user.name", "test")
    commit(path, {"a": "a"}, "start")
    return path


def test_production_since_is_the_time_of_the_last_move(repo: Path, restored: list[str]) -> None:
    assert model_versions.production_since(repo) is None
    three_versions(repo)
    model_versions.rollback(repo)
    unassigned = next(t for t in tag_names(repo) if "#prod!#" in t)
    tagged = git(repo, "for-each-ref", "--format=%(taggerdate:unix)", f"refs/tags/{unassigned}").strip()
    assert model_versions.production_since(repo).timestamp() == int(tagged)


def test_a_failed_restore_leaves_production_and_the_tags_untouched(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A promote that dies before its tag (a kill while restoring, a missing DVC cache) changes nothing."""
    three_versions(repo)
    before = tag_names(repo)

    def cannot_restore(root: Path, version: model_versions.ModelVersion) -> None:
        raise ModaclipError(f"cannot restore {version.tag}")

    monkeypatch.setattr(model_versions, "materialise", cannot_restore)
    with pytest.raises(ModaclipError, match="cannot restore"):
        model_versions.rollback(repo)
    assert tag_names(repo) == before and model_versions.production(repo).version == "v3.0.0"


def test_explicit_production_without_a_visible_one_stops_with_one_line_saying_what_to_do(
    repo: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ModaclipError, match=r"--model production: no production version is visible") as raised:
        search_source_for("production", root=repo)
    message = str(raised.value)
    assert "\n" not in message and "git fetch --tags" in message and "modaclip promote vN" in message
    outside = tmp_path_factory.mktemp("not-git")  # no repository at all: the same refusal, not a fallback
    with pytest.raises(ModaclipError, match="no production version is visible"):
        search_source_for("production", root=outside)
    (outside / "params.yaml").write_text("train: {}\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(outside)
        with pytest.raises(SystemExit) as stopped:
            main(["search", "red dress", "--model", "production"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and "git fetch --tags" in err, err


def test_one_registry_move_at_a_time_the_second_waits_for_the_first(
    repo: Path, restored: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    three_versions(repo)
    monkeypatch.setattr(model_versions, "REGISTRY_WAIT_S", 0.3)
    with model_versions.registry_lock(repo), pytest.raises(ModaclipError, match="another promote, rollback or retrain"):
        model_versions.rollback(repo)
    assert model_versions.production(repo).version == "v3.0.0"
    held = threading.Event()

    def hold_briefly() -> None:
        with model_versions.registry_lock(repo):
            held.set()
            time.sleep(0.2)

    holder = threading.Thread(target=hold_briefly)
    holder.start()
    held.wait()
    model_versions.rollback(repo)  # waits the 0.2 s out instead of failing
    holder.join()
    assert model_versions.production(repo).version == "v2.0.0", "the lock is released after use"


def test_rollback_succeeds_while_a_retrain_holds_its_lock(repo: Path, restored: list[str]) -> None:
    three_versions(repo)
    with model_versions.retrain_lock(repo):
        assert model_versions.rollback(repo)[1].version == "v2.0.0"
        with pytest.raises(ModaclipError, match="another retrain is running here"), model_versions.retrain_lock(repo):
            pass
    assert model_versions.production(repo).version == "v2.0.0"


def test_a_rollback_that_found_production_moved_changes_nothing(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two people rolling back at once: the second one's restore ends after the first one's tag."""
    three_versions(repo)

    def restore_while_someone_else_rolls_back(root: Path, version: model_versions.ModelVersion) -> None:
        monkeypatch.setattr(model_versions, "materialise", lambda root, version: None)
        model_versions.rollback(root)

    monkeypatch.setattr(model_versions, "materialise", restore_while_someone_else_rolls_back)
    with pytest.raises(ModaclipError, match=r"production moved from v3\.0\.0 while this rollback restored v2\.0\.0"):
        model_versions.rollback(repo)
    assert model_versions.production(repo).version == "v2.0.0", "one version back, not two"


def lock_with_model(md5: str, embeddings: str = "e1") -> str:
    """A dvc.lock whose finetune stage recorded the model folder with this hash, and embed its embeddings."""
    return (
        "schema: '2.0'\nstages:\n"
        f"  finetune:\n    outs:\n    - path: models/finetuned\n      md5: {md5}.dir\n"
        f"  embed:\n    outs:\n    - path: data/embeddings\n      md5: {embeddings}.dir\n"
    )


def passing_gate(monkeypatch: pytest.MonkeyPatch, during: Callable[[], None] = lambda: None) -> list[str | None]:
    """The gate passes every candidate; `during` runs inside the first gate. Returns the productions it scored."""
    scored: list[str | None] = []

    def gate(root: Path, params: Params, candidate: dict, current: model_versions.ModelVersion | None) -> tuple:
        scored.append(current.version if current else None)
        if len(scored) == 1:
            during()
        return Decision(passed=True, baseline="production", reason="better", checks=[]), None

    monkeypatch.setattr("modaclip.registry.retrain.gate_candidate", gate)
    return scored


def two_promoted_models(repo: Path) -> None:
    for n, md5 in ((1, "aaa"), (2, "bbb")):
        files = {"dvc.lock": lock_with_model(md5), "metrics/eval.json": f'{{"finetuned": {{"r": 0.{n}}}}}'}
        model_versions.register(
            repo, commit(repo, files, f"run {n}"), f"v{n}.0.0", stage=model_versions.PROD_STAGE, reason=f"round {n}"
        )


def test_a_retrain_gates_against_the_production_of_the_moment_it_decides(
    repo: Path, restored: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    two_promoted_models(repo)
    (repo / "dvc.lock").write_text(lock_with_model("ccc"))  # a newly trained model
    scored = passing_gate(monkeypatch, during=lambda: model_versions.rollback(repo))  # rolled back mid-gate
    record = gate_and_record(repo, Params())
    assert scored == ["v2.0.0", "v1.0.0"], "the gate ran again against the production that holds when it decides"
    assert record["promoted"] and record["production"]["version"] == "v1.0.0"
    assert model_versions.production(repo).version == "v3.0.0"


def test_a_retrain_never_silently_promotes_a_model_rolled_back_during_its_run(
    repo: Path, restored: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    two_promoted_models(repo)
    (repo / "dvc.lock").write_text(lock_with_model("bbb", "e2"))  # finetune did not rerun: v2's model, new embeddings
    passing_gate(monkeypatch, during=lambda: model_versions.rollback(repo))
    record = gate_and_record(repo, Params())
    assert record["decision"] == "staged for review" and record["passed"] and not record["promoted"]
    assert "its model is that of v2.0.0, rolled back from production at" in record["reason"]
    assert exit_status(record) == EXIT_STAGED
    assert model_versions.production(repo).version == "v1.0.0" and model_versions.staged(repo).version == "v3.0.0"
    (repo / "dvc.lock").write_text(lock_with_model("ddd"))
    assert rolled_back_model(repo) is None, "a model no rollback took out is promoted as usual"


def test_rerun_with_nothing_changed_reports_the_staged_version_again_without_a_new_one(repo: Path) -> None:
    first = commit(repo, {"dvc.lock": "1", "metrics/eval.json": '{"r": 1}'}, "run 1")
    model_versions.register(repo, first, "v1.0.0", stage=model_versions.PROD_STAGE, reason="first")
    assert unchanged(repo, version_at_head(repo), model_versions.production(repo)).passed is False
    second = commit(repo, {"dvc.lock": "2", "metrics/eval.json": '{"r": 2}'}, "run 2")
    model_versions.register(repo, second, "v2.0.0", stage=model_versions.STAGING_STAGE, reason="passed")
    itself = version_at_head(repo)
    decision = unchanged(repo, itself, model_versions.production(repo))
    assert itself.version == "v2.0.0" and decision.passed
    assert "awaits review: `modaclip promote v2.0.0`" in decision.reason
    (repo / "dvc.lock").write_text("3")
    assert version_at_head(repo) is None, "a new run is a new candidate"


def test_a_retrain_killed_between_its_two_tags_is_finished_by_the_next_run(repo: Path) -> None:
    decision = {"decision": "staged for review", "passed": True, "promoted": False, "reason": "passed the gate"}
    files = {"dvc.lock": "1", "metrics/eval.json": "{}", "metrics/promotion.json": json.dumps(decision)}
    head = commit(repo, files, "retrain: modaclip-model v1.0.0 staged for review")
    gto.api.register(
        str(repo), model_versions.ARTIFACT, ref=head, version="v1.0.0"
    )  # killed here, before the stage tag
    assert gate_and_record(repo, Params()) == decision
    assert (
        model_versions.staged(repo) == model_versions.ModelVersion("v1.0.0", head)
        and model_versions.production(repo) is None
    )
    assert model_versions.all_versions(repo) == [model_versions.ModelVersion("v1.0.0", head)], "no second version"
