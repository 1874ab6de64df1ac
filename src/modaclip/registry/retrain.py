"""`modaclip retrain`: rerun the pipeline on the current catalog, then promote the new model only if it passes the gate.

The order is what keeps production safe: the pipeline runs and its metrics are complete before the gate
looks at them, and production moves only in the very last step (two git tags). A run killed anywhere
before that leaves the registry as it was; the next run resumes (DVC skips finished stages, finetune
resumes from its checkpoint). The whole run holds DVC's repository lock, so a second retrain, or any
`dvc repro` / `dvc exp run` in the same workspace, stops at once instead of racing it.

A promoted model is committed first (dvc.lock, params.yaml, metrics/ on the current branch), because
the version tag must point at the commit that records it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zc.lockfile

from modaclip.core.atomic import write_json
from modaclip.core.config import PromoteParams, load_params
from modaclip.core.errors import ModaclipError
from modaclip.core.paths import EVAL_METRICS
from modaclip.registry import versions as registry
from modaclip.registry.promotion import Decision, compare, decide

EXIT_KEPT = 3  # promoted exits 0; a failure exits 2 like every ModaclipError (stage_runner.run)
PROMOTION_PATH = "metrics/promotion.json"
RUN_RECORDS = ["dvc.lock", "params.yaml", "metrics", "data/.gitignore", "models/.gitignore"]


def retrain(root: Path) -> dict[str, Any]:
    """Run the pipeline, apply the gate, record the decision; returns what went into promotion.json."""
    from dvc.exceptions import DvcException
    from dvc.lock import LockError
    from dvc.repo import Repo, lock_repo

    logging.getLogger("dvc").propagate = False  # DVC prints its own progress; ours would repeat each line
    gate = load_params(root / "params.yaml").promote
    with retrain_lock(root):
        check_only_run_records_changed(root)
        try:
            with Repo(str(root)) as repo, lock_repo(repo):
                repo.reproduce()
                return gate_and_record(root, gate)
        except LockError:
            raise busy(root, "DVC's lock in .dvc/tmp is held") from None
        except DvcException as err:
            if isinstance(err.__cause__, LockError):
                raise busy(root, "DVC's lock on the stage outputs is held") from None
            cause = f" ({err.__cause__})" if err.__cause__ else ""
            raise ModaclipError(" ".join(f"pipeline failed: {err}{cause}; production is unchanged".split())) from None


@contextmanager
def retrain_lock(root: Path) -> Iterator[None]:
    """One retrain per workspace, for the whole run (DVC's repository lock is released while stages run)."""
    path = root / ".dvc" / "tmp" / "retrain.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock = zc.lockfile.LockFile(str(path))
    except zc.lockfile.LockError:
        raise busy(root, f"{path.relative_to(root)} is held") from None
    try:
        yield
    finally:
        lock.close()


def busy(root: Path, which: str) -> ModaclipError:
    return ModaclipError(
        f"{root.resolve()}: another retrain or dvc command is running here ({which}); nothing was done"
    )


def check_only_run_records_changed(root: Path) -> None:
    """A promoted commit must reproduce its model, so uncommitted changes to code or dvc.yaml stop the run."""
    changed = [line[3:] for line in registry.git(root, "status", "--porcelain", "--untracked-files=no").splitlines()]
    stray = [path for path in changed if not any(path == r or path.startswith(r + "/") for r in RUN_RECORDS)]
    if stray:
        raise ModaclipError(
            f"uncommitted changes to {', '.join(stray)}: commit them first "
            "(a promoted model is tagged on a commit that must reproduce it)"
        )


def gate_and_record(root: Path, gate: PromoteParams) -> dict[str, Any]:
    candidate = read_report(root / EVAL_METRICS)
    current = registry.production(root)
    production_report = registry.eval_report(root, current) if current else None
    if current and current.commit == head(root) and not run_records_changed(root):
        decision = unchanged(candidate, production_report, gate, current)
    else:
        decision = decide(candidate, production_report, gate)
    record = {
        "decision": "promoted" if decision.promoted else "kept production",
        **decision.to_dict(),
        "candidate": {
            "version": registry.next_version(root) if decision.promoted else None,
            "test_items": candidate.get("test_items"),
        },
        "production": {
            "version": current.version if current else None,
            "commit": current.commit if current else None,
            "test_items": production_report.get("test_items") if production_report else None,
        },
        "gate": gate.model_dump(),
    }
    write_json(root / PROMOTION_PATH, record)
    if decision.promoted:
        version = record["candidate"]["version"]
        commit = commit_run(root, f"retrain: {registry.ARTIFACT} {version} ({decision.reason})")
        registry.register_production(root, commit, version, decision.reason)
    return record


def unchanged(
    candidate: dict[str, Any], production: dict[str, Any], gate: PromoteParams, current: registry.ModelVersion
) -> Decision:
    """Nothing was retrained since the production commit: the candidate *is* production."""
    reason = f"candidate is the production model {current.tag} itself (nothing changed since its commit)"
    return Decision(False, "production", reason, compare(candidate, production, gate))


def read_report(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModaclipError(f"{path}: missing after the pipeline ran; is `evaluate` in dvc.yaml?") from None
    except json.JSONDecodeError as err:
        raise ModaclipError(f"{path}: not valid JSON ({err})") from None


def head(root: Path) -> str:
    return registry.git(root, "rev-parse", "HEAD").strip()


def run_records_changed(root: Path) -> bool:
    return bool(registry.git(root, "status", "--porcelain", "--", "dvc.lock", EVAL_METRICS.as_posix()).strip())


def commit_run(root: Path, message: str) -> str:
    """Commit the run's records (nothing else) on the current branch; a resumed run may find them committed."""
    present = [path for path in RUN_RECORDS if (root / path).exists()]
    registry.git(root, "add", "--", *present)
    if registry.git(root, "diff", "--cached", "--name-only").strip():
        registry.git(root, "commit", "-q", "-m", message)
    return head(root)
