"""The model registry: which commit's model is in production, kept as GTO git tags.

A version is a git tag `modaclip-model@vN.0.0` on the commit whose `dvc.lock` and `metrics/` describe
that model; production is the GTO stage `prod` (tag `modaclip-model#prod#M`), and a candidate awaiting
review is the stage `staging`. So `gto show` lists the versions and stages, the figures of any version
are `git show <commit>:metrics/eval.json`, and its files are restored from the DVC cache (or remote) at
that commit.

Every move of production is one git tag, so a killed command leaves production where it was or where
it was going, never in between: a promotion assigns `prod` to a version newer than every version
holding it (tag `#prod#M`), a rollback unassigns `prod` from the current one (tag `#prod!#M`), which
hands production back to the newest version still holding it. Production is therefore always the
newest version with an active `prod` assignment, which is what GTO itself reads
(`gto show modaclip-model#prod`).
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gto.api
import zc.lockfile
from gto.exceptions import ArtifactNotFound, GTOException
from scmrepo.exceptions import SCMError

from modaclip.core.atomic import atomic_directory
from modaclip.core.errors import ModaclipError
from modaclip.core.paths import EVAL_METRICS, SEARCH_PATHS
from modaclip.embed.stored import META_FILE as EMBEDDINGS_META
from modaclip.model.saved_model import WEIGHTS_FILE, weights_fingerprint

log = logging.getLogger(__name__)

ARTIFACT = "modaclip-model"
PROD_STAGE = "prod"
STAGING_STAGE = "staging"
CACHE_DIR = Path("models/registry")


@dataclass(frozen=True)
class ModelVersion:
    version: str
    commit: str

    @property
    def tag(self) -> str:
        return f"{ARTIFACT}@{self.version}"


REGISTRY_WAIT_S = 30.0  # how long a registry move waits for another one's few seconds of tagging


@contextmanager
def retrain_lock(root: Path) -> Iterator[None]:
    """One retrain at a time in a workspace, held for its whole run (DVC's repository lock is released while
    stages run). It does not stop a promote or a rollback: those take `registry_lock`, as a retrain does only
    for its final decision."""
    with _held(
        root / ".dvc" / "tmp" / "retrain.lock",
        0.0,
        "another retrain is running here; nothing was done (a retrain can be stopped at any time and rerun later)",
    ):
        yield


@contextmanager
def registry_lock(root: Path, wait_s: float | None = None) -> Iterator[None]:
    """One move of the registry at a time: a promote, a rollback, or a retrain's decision (read production,
    commit, tag). Each holds it for seconds, so a second one waits up to `REGISTRY_WAIT_S` for it."""
    with _held(
        root / ".dvc" / "tmp" / "registry.lock",
        REGISTRY_WAIT_S if wait_s is None else wait_s,
        "another promote, rollback or retrain decision is writing registry tags here; nothing was done",
    ):
        yield


@contextmanager
def _held(path: Path, wait_s: float, busy: str) -> Iterator[None]:
    """A lock file taken within `wait_s` seconds, else a one-line error. The OS releases it when its holder
    dies, so a killed command never leaves it behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            lock = zc.lockfile.LockFile(str(path))
            break
        except zc.lockfile.LockError as err:
            if time.monotonic() >= deadline:
                waited = f" for {wait_s:g} s" if wait_s else ""
                raise ModaclipError(f"{path.parents[2].resolve()}: {busy} ({path.name} held{waited})") from err
            time.sleep(0.1)
    try:
        yield
    finally:
        lock.close()


def all_versions(root: Path) -> list[ModelVersion]:
    """Registered versions, oldest first."""
    try:
        shown = gto.api.show(str(root), ARTIFACT)
    except ArtifactNotFound:
        return []
    except GTOException as err:
        raise ModaclipError(f"{root}: cannot read the model registry: {err}") from err
    found = [ModelVersion(row["version"], row["commit_hexsha"]) for row in shown if row.get("registrations")]
    return sorted(found, key=lambda v: _major(v.version))


def production(root: Path) -> ModelVersion | None:
    """The version in `prod`; None before the first promotion or outside git."""
    holders = stage_holders(root, PROD_STAGE)
    return holders[0] if holders else None


def staged(root: Path) -> ModelVersion | None:
    """The version last assigned to `staging` (awaiting review when newer than production)."""
    holders = stage_holders(root, STAGING_STAGE)
    return holders[0] if holders else None


def stage_holders(root: Path, stage: str) -> list[ModelVersion]:
    """Versions with an active assignment to `stage`, newest version first (the first is the one in the stage)."""
    try:
        active = gto.api.find_versions_in_stage(str(root), ARTIFACT, stage, versions_per_stage=-1)
    except (SCMError, ArtifactNotFound):
        return []
    except GTOException as err:
        raise ModaclipError(f"{root}: cannot read the model registry: {err}") from err
    return [ModelVersion(vstage.version, vstage.commit_hexsha) for vstage in active or []]


def ever_assigned(root: Path, version: ModelVersion) -> bool:
    """Whether any stage was ever assigned to `version` (False: a retrain was killed between its two tags)."""
    return any(event["event"] == "assignment" and event.get("version") == version.version for event in _history(root))


def production_since(root: Path) -> datetime | None:
    """When production last moved: the time of the newest `prod` tag (an assignment, or a rollback's unassignment)."""
    moves = [event for event in _history(root) if event.get("stage") == PROD_STAGE]
    return max((event["timestamp"] for event in moves), default=None)


def after_last_move(root: Path) -> None:
    """Wait until the clock is past the second of the registry's newest stage tag.

    GTO orders a stage's assignments and unassignments by their tags' times, which git keeps to the
    second; two moves in one second would be read in either order (a promote right after a rollback
    could read as still rolled back). Waiting at most a second keeps every move after the one before.
    """
    moves = [event for event in _history(root) if event["event"] in ("assignment", "unassignment")]
    newest = max((event["timestamp"] for event in moves), default=None)
    if newest is None:
        return
    newest = newest if newest.tzinfo else newest.replace(tzinfo=timezone.utc)
    while datetime.now(timezone.utc).replace(microsecond=0) <= newest:
        time.sleep(0.05)


def _history(root: Path) -> list[dict[str, Any]]:
    """GTO's events of the artifact (registrations, assignments, unassignments), newest first."""
    try:
        return gto.api.history(str(root), ARTIFACT)
    except (SCMError, ArtifactNotFound):
        return []
    except GTOException as err:
        raise ModaclipError(f"{root}: cannot read the model registry: {err}") from err


def find_version(root: Path, name: str) -> ModelVersion:
    """`v2` or `v2.0.0` -> that registered version."""
    wanted = name if name.count(".") == 2 else f"{name}.0.0"
    for version in all_versions(root):
        if version.version == wanted:
            return version
    known = ", ".join(v.version for v in all_versions(root)) or "none yet"
    raise ModaclipError(f"model version {name!r} is not registered (versions: {known}); see `gto show`")


def next_version(root: Path) -> str:
    """One major version above the newest: every promotion is a new model, never a patch of one."""
    registered = all_versions(root)
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
        raise ModaclipError(f"production model {where} is not valid JSON ({err})") from err
    if not isinstance(report, dict):
        raise ModaclipError(f"production model {where} is not a metrics report")
    return report


def register(root: Path, commit: str, version: str, *, stage: str, reason: str) -> ModelVersion:
    """Tag `commit` as `version` and assign it `stage` (`prod` changes production; `staging` awaits review).

    A command killed between the two tags is resumed: a commit already registered keeps its version,
    and a stage it already holds is not assigned again.
    """
    registered = {v.commit: v.version for v in all_versions(root)}
    try:
        if commit in registered:
            version = registered[commit]
        else:
            gto.api.register(str(root), ARTIFACT, ref=commit, version=version, message=f"retrain candidate: {reason}")
        if version not in {v.version for v in stage_holders(root, stage)}:
            after_last_move(root)
            verb = "promoted" if stage == PROD_STAGE else "staged for review"
            gto.api.assign(str(root), ARTIFACT, stage, version=version, message=f"{verb}: {reason}")
    except GTOException as err:
        raise ModaclipError(f"cannot record {ARTIFACT} {version} in the registry: {err}") from err
    return ModelVersion(version, commit)


def promote(root: Path, name: str) -> tuple[ModelVersion | None, ModelVersion]:
    """Move `prod` to a registered version newer than production (an approved staging candidate): one tag.

    Its files are restored first, so a version that cannot serve never reaches production; the restore
    runs before the registry lock, which is then held only for the checks and the tag.
    Returns (previous production, new production).
    """
    target = find_version(root, name)
    check_promotable(target, production(root))
    materialise(root, target)
    with registry_lock(root):
        current = production(root)
        check_promotable(target, current)
        after_last_move(root)
        try:
            gto.api.assign(str(root), ARTIFACT, PROD_STAGE, version=target.version, message="promoted after review")
        except GTOException as err:
            raise ModaclipError(f"cannot move {PROD_STAGE} to {target.tag}: {err}") from err
    return current, target


def check_promotable(target: ModelVersion, current: ModelVersion | None) -> None:
    if current == target:
        raise ModaclipError(f"{target.version} is already in production")
    if current and _major(target.version) < _major(current.version):
        raise ModaclipError(
            f"{target.version} is older than production {current.version}; to go back, use "
            "`modaclip promote --rollback` (it hands production back to the version before the current one)"
        )


def rollback(root: Path) -> tuple[ModelVersion, ModelVersion]:
    """Hand `prod` back to the version that held it before the current one: one unassignment tag.

    Its files are restored first, before the registry lock; production that moved meanwhile (another
    rollback, a promote) stops it, so two people rolling back at once go back one version, not two.
    Returns (rolled back version, new production).
    """
    current, previous = _last_two_holders(root)
    materialise(root, previous)
    with registry_lock(root):
        if _last_two_holders(root) != (current, previous):
            raise ModaclipError(
                f"production moved from {current.version} while this rollback restored {previous.version}; "
                "nothing was done (see `gto show`, then roll back again if still needed)"
            )
        after_last_move(root)
        try:
            message = f"rolled back to {previous.version}"
            gto.api.unassign(str(root), ARTIFACT, version=current.version, stage=PROD_STAGE, message=message)
        except GTOException as err:
            raise ModaclipError(f"cannot take {current.tag} out of {PROD_STAGE}: {err}") from err
    return current, previous


def _last_two_holders(root: Path) -> tuple[ModelVersion, ModelVersion]:
    holders = stage_holders(root, PROD_STAGE)
    if len(holders) < 2:
        which = f"only {holders[0].version} holds prod" if holders else "nothing is in production"
        raise ModaclipError(f"no previous version to roll back to: {which}")
    return holders[0], holders[1]


def rolled_back(root: Path) -> dict[str, datetime]:
    """Versions a rollback took out of production and that have not held it since: version -> when."""
    newest: dict[str, dict[str, Any]] = {}
    for event in _history(root):  # newest first
        if event.get("stage") == PROD_STAGE and event["event"] in ("assignment", "unassignment"):
            newest.setdefault(event["version"], event)
    return {version: e["timestamp"] for version, e in newest.items() if e["event"] == "unassignment"}


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
    log.info("restoring %s (commit %s) from DVC into %s", version.tag, version.commit[:8], target)
    try:
        with atomic_directory(target) as tmp:
            for path in SEARCH_PATHS.values():
                (tmp / path).parent.mkdir(parents=True, exist_ok=True)
                Repo.get(str(root), path.as_posix(), out=str(tmp / path), rev=version.commit)
    except (DvcException, OSError) as err:
        raise ModaclipError(
            f"cannot restore {version.tag} ({version.commit[:8]}) from the DVC cache ({err}); "
            "run `dvc fetch --all-tags` to get it from the remote"
        ) from err
    return paths


def check_intact(version: ModelVersion, paths: dict[str, Path]) -> None:
    """The version's weights must be the ones its embeddings were made with; anything else is damage."""
    folder = paths["model"].parents[1]
    try:
        recorded = json.loads((paths["embeddings"] / EMBEDDINGS_META).read_text())["model_sha256"]
        intact = recorded == weights_fingerprint(paths["model"])
    except (OSError, ValueError, KeyError):
        intact = False
    if not intact:
        raise ModaclipError(
            f"{version.tag}: restored copy in {folder} is corrupt or incomplete "
            f"({WEIGHTS_FILE} does not match its embeddings); "
            f"delete {folder} to restore it again from DVC"
        )
