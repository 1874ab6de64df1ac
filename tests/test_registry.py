"""The GTO registry and retrain's guards in a tiny git repo: no pipeline, no model."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import gto.api
import pytest

from modaclip.core.config import Params
from modaclip.core.errors import ModaclipError
from modaclip.registry import versions as registry
from modaclip.registry.model_choice import search_source_for
from modaclip.registry.retrain import check_only_run_records_changed, gate_and_record, unchanged, version_at_head


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


def test_empty_registry_has_no_production_and_search_uses_the_workspace(repo: Path) -> None:
    assert registry.production(repo) is None and registry.versions(repo) == []
    assert registry.next_version(repo) == "v1.0.0"
    workspace = search_source_for("production", root=repo)
    assert (workspace.model, workspace.embeddings, workspace.catalog) == (
        Path("models/finetuned"),
        Path("data/embeddings"),
        Path("data/clean"),
    )
    assert search_source_for("elsewhere/model", root=repo).model == Path("elsewhere/model")


def test_search_source_says_what_is_served(repo: Path) -> None:
    pipeline = search_source_for("production", root=repo)
    assert (pipeline.kind, pipeline.version, pipeline.model) == ("pipeline", None, Path("models/finetuned"))
    assert "no production version yet" in pipeline.description
    folder = search_source_for("elsewhere/model", root=repo)
    assert (folder.kind, folder.description, folder.embeddings) == (
        "folder",
        "model folder elsewhere/model",
        Path("data/embeddings"),
    )


def test_search_source_names_the_production_version(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = commit(repo, {"metrics/eval.json": "{}"}, "run")
    registry.register(repo, head, "v1.0.0", registry.PROD_STAGE, "first")
    monkeypatch.setattr(
        registry,
        "materialise",
        lambda root, version: {role: Path("restored") / role for role in ("model", "embeddings", "catalog")},
    )
    source = search_source_for("production", root=repo)
    assert (source.kind, source.version, source.model) == ("production", "v1.0.0", Path("restored/model"))
    assert source.description == f"production v1.0.0 (modaclip-model@v1.0.0, commit {head[:8]})"
    assert source.since == registry.production_since(repo) is not None
    assert search_source_for("v1", root=repo).description.startswith("v1.0.0 (")


def test_promotions_move_prod_and_versions_count_up(repo: Path) -> None:
    first = commit(repo, {"metrics/eval.json": '{"finetuned": {"r": 0.5}}'}, "run 1")
    registry.register(repo, first, "v1.0.0", registry.PROD_STAGE, "first")
    second = commit(repo, {"metrics/eval.json": '{"finetuned": {"r": 0.6}}'}, "run 2")
    registry.register(repo, second, registry.next_version(repo), registry.PROD_STAGE, "better")
    assert registry.production(repo) == registry.ModelVersion("v2.0.0", second)
    assert registry.find_version(repo, "v1") == registry.ModelVersion("v1.0.0", first)
    assert registry.eval_report(repo, registry.production(repo)) == {"finetuned": {"r": 0.6}}
    assert {"modaclip-model@v1.0.0", "modaclip-model@v2.0.0"} <= set(git(repo, "tag", "-l").split())
    with pytest.raises(ModaclipError, match=r"'v9' is not registered \(versions: v1.0.0, v2.0.0\)"):
        registry.find_version(repo, "v9")


def test_a_commit_registered_by_a_killed_run_keeps_its_version(repo: Path) -> None:
    head = commit(repo, {"metrics/eval.json": "{}"}, "run")
    gto.api.register(str(repo), registry.ARTIFACT, ref=head, version="v1.0.0")
    assert registry.production(repo) is None
    assert registry.register(repo, head, "v2.0.0", registry.PROD_STAGE, "resumed").version == "v1.0.0"
    assert registry.production(repo) == registry.ModelVersion("v1.0.0", head)


def test_missing_or_broken_production_metrics_are_one_line_errors(repo: Path) -> None:
    bare = registry.ModelVersion("v1.0.0", git(repo, "rev-parse", "HEAD").strip())
    with pytest.raises(ModaclipError, match=r"modaclip-model@v1.0.0 \(\w{8}\):metrics/eval.json is missing from git"):
        registry.eval_report(repo, bare)
    broken = registry.ModelVersion("v2.0.0", commit(repo, {"metrics/eval.json": "{not json"}, "broken"))
    with pytest.raises(ModaclipError, match="is not valid JSON"):
        registry.eval_report(repo, broken)


def test_restored_copy_is_checked_against_its_embeddings(tmp_path: Path) -> None:
    paths = {"model": tmp_path / "v1/models/finetuned", "embeddings": tmp_path / "v1/data/embeddings"}
    for folder in paths.values():
        folder.mkdir(parents=True)
    weights = paths["model"] / "open_clip_model.safetensors"
    weights.write_bytes(b"weights")
    meta = {"model_sha256": hashlib.sha256(b"weights").hexdigest()}
    (paths["embeddings"] / "meta.json").write_text(json.dumps(meta))
    version = registry.ModelVersion("v1.0.0", "0" * 40)
    registry.check_intact(version, paths)
    weights.write_bytes(b"weig")
    with pytest.raises(ModaclipError, match=r"modaclip-model@v1.0.0: restored copy in .*v1 is corrupt or incomplete"):
        registry.check_intact(version, paths)
    weights.unlink()
    with pytest.raises(ModaclipError, match="corrupt or incomplete"):
        registry.check_intact(version, paths)


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
        registry.register(repo, commits[-1], f"v{n}.0.0", registry.PROD_STAGE, f"round {n}")
    return commits


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stand-in for restoring a version's files from DVC (these repos have no DVC outputs): records which."""
    calls: list[str] = []
    monkeypatch.setattr(registry, "materialise", lambda root, version: calls.append(version.version))
    return calls


def tag_names(repo: Path) -> set[str]:
    return set(git(repo, "tag", "-l").split())


def test_a_staged_candidate_waits_until_promoted_with_one_tag(repo: Path, restored: list[str]) -> None:
    first = commit(repo, {"metrics/eval.json": '{"r": 1}'}, "run 1")
    registry.register(repo, first, "v1.0.0", registry.PROD_STAGE, "first")
    second = commit(repo, {"metrics/eval.json": '{"r": 2}'}, "run 2")
    registry.register(repo, second, "v2.0.0", registry.STAGING_STAGE, "passed the gate")
    assert registry.production(repo) == registry.ModelVersion("v1.0.0", first)
    assert registry.staged(repo) == registry.ModelVersion("v2.0.0", second)
    before = tag_names(repo)
    assert registry.promote(repo, "v2") == (
        registry.ModelVersion("v1.0.0", first),
        registry.ModelVersion("v2.0.0", second),
    )
    assert registry.production(repo).version == "v2.0.0" and restored == ["v2.0.0"]
    assert len(tag_names(repo) - before) == 1, "a move of production is exactly one tag"
    with pytest.raises(ModaclipError, match=r"v2\.0\.0 is already in production"):
        registry.promote(repo, "v2")


def test_rollback_walks_back_one_version_at_a_time(repo: Path, restored: list[str]) -> None:
    commits = three_versions(repo)
    before = tag_names(repo)
    assert registry.rollback(repo) == (
        registry.ModelVersion("v3.0.0", commits[2]),
        registry.ModelVersion("v2.0.0", commits[1]),
    )
    assert registry.production(repo).version == "v2.0.0" and restored == ["v2.0.0"]
    assert len(tag_names(repo) - before) == 1
    registry.rollback(repo)
    assert registry.production(repo).version == "v1.0.0"
    with pytest.raises(ModaclipError, match=r"no previous version to roll back to: only v1\.0\.0 holds prod"):
        registry.rollback(repo)
    with pytest.raises(ModaclipError, match="no previous version to roll back to: nothing is in production"):
        registry.rollback(commit_repo(repo.parent / "empty"))
    registry.promote(repo, "v3")
    assert registry.production(repo).version == "v3.0.0", "a rolled back version can be promoted again"
    with pytest.raises(ModaclipError, match=r"v2.0.0 is older than production v3.0.0; to go back, use .*--rollback"):
        registry.promote(repo, "v2")


def commit_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "init", "-q")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "user.name", "test")
    commit(path, {"a": "a"}, "start")
    return path


def test_production_since_is_the_time_of_the_last_move(repo: Path, restored: list[str]) -> None:
    assert registry.production_since(repo) is None
    three_versions(repo)
    registry.rollback(repo)
    unassigned = next(t for t in tag_names(repo) if "#prod!#" in t)
    tagged = git(repo, "for-each-ref", "--format=%(taggerdate:unix)", f"refs/tags/{unassigned}").strip()
    assert registry.production_since(repo).timestamp() == int(tagged)


def test_a_failed_restore_leaves_production_and_the_tags_untouched(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A promote that dies before its tag (a kill while restoring, a missing DVC cache) changes nothing."""
    three_versions(repo)
    before = tag_names(repo)

    def cannot_restore(root: Path, version: registry.ModelVersion) -> None:
        raise ModaclipError(f"cannot restore {version.tag}")

    monkeypatch.setattr(registry, "materialise", cannot_restore)
    with pytest.raises(ModaclipError, match="cannot restore"):
        registry.rollback(repo)
    assert tag_names(repo) == before and registry.production(repo).version == "v3.0.0"


def test_one_registry_command_at_a_time(repo: Path, restored: list[str]) -> None:
    three_versions(repo)
    with registry.registry_lock(repo), pytest.raises(ModaclipError, match="another retrain or promote is running here"):
        registry.rollback(repo)
    assert registry.production(repo).version == "v3.0.0"
    registry.rollback(repo)
    assert registry.production(repo).version == "v2.0.0", "the lock is released after use"


def test_rerun_with_nothing_changed_reports_the_staged_version_again_without_a_new_one(repo: Path) -> None:
    first = commit(repo, {"dvc.lock": "1", "metrics/eval.json": '{"r": 1}'}, "run 1")
    registry.register(repo, first, "v1.0.0", registry.PROD_STAGE, "first")
    assert unchanged(repo, version_at_head(repo), registry.production(repo)).passed is False
    second = commit(repo, {"dvc.lock": "2", "metrics/eval.json": '{"r": 2}'}, "run 2")
    registry.register(repo, second, "v2.0.0", registry.STAGING_STAGE, "passed")
    itself = version_at_head(repo)
    decision = unchanged(repo, itself, registry.production(repo))
    assert itself.version == "v2.0.0" and decision.passed
    assert "awaits review: `modaclip promote v2.0.0`" in decision.reason
    (repo / "dvc.lock").write_text("3")
    assert version_at_head(repo) is None, "a new run is a new candidate"


def test_a_retrain_killed_between_its_two_tags_is_finished_by_the_next_run(repo: Path) -> None:
    decision = {"decision": "staged for review", "passed": True, "promoted": False, "reason": "passed the gate"}
    files = {"dvc.lock": "1", "metrics/eval.json": "{}", "metrics/promotion.json": json.dumps(decision)}
    head = commit(repo, files, "retrain: modaclip-model v1.0.0 staged for review")
    gto.api.register(str(repo), registry.ARTIFACT, ref=head, version="v1.0.0")  # killed here, before the stage tag
    assert gate_and_record(repo, Params()) == decision
    assert registry.staged(repo) == registry.ModelVersion("v1.0.0", head) and registry.production(repo) is None
    assert registry.versions(repo) == [registry.ModelVersion("v1.0.0", head)], "no second version"
