"""The GTO registry and retrain's guards in a tiny git repo: no pipeline, no model."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import gto.api
import pytest

from modaclip.core.errors import ModaclipError
from modaclip.registry import versions as registry
from modaclip.registry.model_choice import search_source_for
from modaclip.registry.retrain import check_only_run_records_changed


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
    registry.register_production(repo, head, "v1.0.0", "first")
    monkeypatch.setattr(
        registry,
        "materialise",
        lambda root, version: {role: Path("restored") / role for role in ("model", "embeddings", "catalog")},
    )
    source = search_source_for("production", root=repo)
    assert (source.kind, source.version, source.model) == ("production", "v1.0.0", Path("restored/model"))
    assert source.description == f"production v1.0.0 (modaclip-model@v1.0.0, commit {head[:8]})"
    assert search_source_for("v1", root=repo).description.startswith("v1.0.0 (")


def test_promotions_move_prod_and_versions_count_up(repo: Path) -> None:
    first = commit(repo, {"metrics/eval.json": '{"finetuned": {"r": 0.5}}'}, "run 1")
    registry.register_production(repo, first, "v1.0.0", "first")
    second = commit(repo, {"metrics/eval.json": '{"finetuned": {"r": 0.6}}'}, "run 2")
    registry.register_production(repo, second, registry.next_version(repo), "better")
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
    assert registry.register_production(repo, head, "v2.0.0", "resumed").version == "v1.0.0"
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
