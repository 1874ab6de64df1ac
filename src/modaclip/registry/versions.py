"""The model registry: which commit's model is in production, kept as GTO git tags.

A version is a git tag `modaclip-model@vN.0.0` on the commit whose `dvc.lock` and `metrics/` describe
that model; production is the GTO stage `prod` (tag `modaclip-model#prod#M`). So `gto show` lists the
versions and stages, the figures of any version are `git show <commit>:metrics/eval.json`, and its
files are restored from the DVC cache (or remote) at that commit.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gto.api
from gto.exceptions import ArtifactNotFound, GTOException
from scmrepo.exceptions import SCMError

from modaclip.core.atomic import atomic_directory
from modaclip.core.errors import ModaclipError
from modaclip.core.paths import EVAL_METRICS, SEARCH_PATHS
from modaclip.embed import embedding
from modaclip.model.clip_model import WEIGHTS_FILE, weights_fingerprint

ARTIFACT = "modaclip-model"
PROD_STAGE = "prod"
CACHE_DIR = Path("models/registry")


@dataclass(frozen=True)
class ModelVersion:
    version: str
    commit: str

    @property
    def tag(self) -> str:
        return f"{ARTIFACT}@{self.version}"


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise ModaclipError(f"git {' '.join(args)} failed in {root}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def versions(root: Path) -> list[ModelVersion]:
    """Registered versions, oldest first."""
    try:
        shown = gto.api.show(str(root), ARTIFACT)
    except ArtifactNotFound:
        return []
    except GTOException as err:
        raise ModaclipError(f"{root}: cannot read the model registry: {err}") from None
    found = [ModelVersion(row["version"], row["commit_hexsha"]) for row in shown if row.get("registrations")]
    return sorted(found, key=lambda v: _major(v.version))


def production(root: Path) -> ModelVersion | None:
    """The version assigned to `prod` most recently; None before the first promotion or outside git."""
    try:
        active = gto.api.find_versions_in_stage(str(root), ARTIFACT, PROD_STAGE)
    except (SCMError, ArtifactNotFound):
        return None
    except GTOException as err:
        raise ModaclipError(f"{root}: cannot read the model registry: {err}") from None
    if not active:
        return None
    stage = active[0] if isinstance(active, list) else active
    return ModelVersion(stage.version, stage.commit_hexsha)


def find_version(root: Path, name: str) -> ModelVersion:
    """`v2` or `v2.0.0` -> that registered version."""
    wanted = name if name.count(".") == 2 else f"{name}.0.0"
    for version in versions(root):
        if version.version == wanted:
            return version
    known = ", ".join(v.version for v in versions(root)) or "none yet"
    raise ModaclipError(f"model version {name!r} is not registered (versions: {known}); see `gto show`")


def next_version(root: Path) -> str:
    """One major version above the newest: every promotion is a new model, never a patch of one."""
    registered = versions(root)
    return f"v{_major(registered[-1].version) + 1 if registered else 1}.0.0"


def _major(version: str) -> int:
    return int(version.lstrip("v").split(".")[0])


def eval_report(root: Path, version: ModelVersion) -> dict[str, Any]:
    """The production figures: metrics/eval.json as committed with that version."""
    where = f"{version.tag} ({version.commit[:8]}):{EVAL_METRICS.as_posix()}"
    done = subprocess.run(
        ["git", "show", f"{version.commit}:{EVAL_METRICS.as_posix()}"], cwd=root, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise ModaclipError(f"production model {where} is missing from git; cannot compare against it")
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError as err:
        raise ModaclipError(f"production model {where} is not valid JSON ({err})") from None
    if not isinstance(report, dict):
        raise ModaclipError(f"production model {where} is not a metrics report")
    return report


def register_production(root: Path, commit: str, version: str, reason: str) -> ModelVersion:
    """Tag `commit` as `version` and move `prod` to it: the one step that changes production."""
    registered = {v.commit: v.version for v in versions(root)}
    try:
        if commit in registered:  # a retrain killed between the two tags: reuse its version
            version = registered[commit]
        else:
            gto.api.register(str(root), ARTIFACT, ref=commit, version=version, message=f"retrain candidate: {reason}")
        gto.api.assign(str(root), ARTIFACT, PROD_STAGE, version=version, message=f"promoted: {reason}")
    except GTOException as err:
        raise ModaclipError(f"cannot record {ARTIFACT} {version} in the registry: {err}") from None
    return ModelVersion(version, commit)


def materialise(root: Path, version: ModelVersion, cache_dir: Path = CACHE_DIR) -> dict[str, Path]:
    """Model, embeddings and catalog of a version, restored once from DVC into `cache_dir/<version>/`.

    The three belong together: embeddings record the weights they were made with, and the catalog
    holds the products they index.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    target = root / cache_dir / version.version
    paths = {role: target / path for role, path in SEARCH_PATHS.items()}
    if target.is_dir():
        check_intact(version, paths)
        return paths
    try:
        with atomic_directory(target) as tmp:
            for path in SEARCH_PATHS.values():
                (tmp / path).parent.mkdir(parents=True, exist_ok=True)
                Repo.get(str(root), path.as_posix(), out=str(tmp / path), rev=version.commit)
    except (DvcException, OSError) as err:
        raise ModaclipError(
            f"cannot restore {version.tag} ({version.commit[:8]}) from the DVC cache ({err}); "
            "run `dvc fetch --all-tags` to get it from the remote"
        ) from None
    return paths


def check_intact(version: ModelVersion, paths: dict[str, Path]) -> None:
    """The version's weights must be the ones its embeddings were made with; anything else is damage."""
    folder = paths["model"].parents[1]
    try:
        recorded = json.loads((paths["embeddings"] / embedding.META_FILE).read_text())["model_sha256"]
        intact = recorded == weights_fingerprint(paths["model"])
    except (OSError, ValueError, KeyError):
        intact = False
    if not intact:
        raise ModaclipError(
            f"{version.tag}: restored copy in {folder} is corrupt or incomplete "
            f"({WEIGHTS_FILE} does not match its embeddings); "
            f"delete {folder} to restore it again from DVC"
        )
