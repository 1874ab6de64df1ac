"""`modaclip retrain`: rerun the pipeline on the current catalog, then promote the new model only if it passes the gate.

The gate compares like with like: production's model is scored on the candidate's test split by the
current evaluation code (champion.py), and the candidate must beat it with confidence (promotion.py).
With `promote.mode: review` a passing candidate is registered and staged (GTO stage `staging`) for a
person to approve with `modaclip promote vN`, instead of going to production.

The order is what keeps production safe: the pipeline runs and its metrics are complete before the gate
looks at them, and the registry changes only in the very last step (two git tags). A run killed anywhere
before that leaves the registry as it was; the next run resumes (DVC skips finished stages, finetune
resumes from its checkpoint). The whole run holds DVC's repository lock and the retrain lock, so a second
retrain, or any `dvc repro` / `dvc exp run` in the same workspace, stops at once instead of racing it.

A promote or a rollback may happen at any time, also during a retrain: the registry lock is taken only
for the decision itself (read production, commit, tag). Production is read again under it, and a gate
that scored a production which has since moved scores the new one. A candidate whose model is one a
rollback took out of production is staged for review, never promoted again unannounced.

A passing model is committed first (dvc.lock, params.yaml, metrics/ on the current branch), because
the version tag must point at the commit that records it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError

import modaclip
from modaclip.core.atomic import sweep_leftovers, write_json
from modaclip.core.config import Params, load_params
from modaclip.core.errors import ModaclipError
from modaclip.core.git import git
from modaclip.core.paths import EVAL_METRICS, MODEL_DIR
from modaclip.registry import model_versions
from modaclip.registry.champion import gate_candidate
from modaclip.registry.promotion import FINETUNED, Decision

log = logging.getLogger(__name__)

# promoted exits 0; a failure exits 2 like every ModaclipError (stage_runner.run)
EXIT_KEPT = 3  # the candidate failed the gate: production unchanged
EXIT_STAGED = 4  # promote.mode review: the candidate passed and awaits `modaclip promote vN`
OUTCOMES = {
    model_versions.PROD_STAGE: "promoted",
    model_versions.STAGING_STAGE: "staged for review",
}  # by the stage assigned
PROMOTION_PATH = "metrics/promotion.json"
GATE_ATTEMPTS = 3  # gates run in a row when production keeps moving under them
RUN_RECORDS = ["dvc.lock", "params.yaml", "metrics", "data/.gitignore", "models/.gitignore"]
PIPELINE_FOLDERS = ("data", "models", "metrics")  # where the stages write: swept for a killed run's temporary files
log = logging.getLogger(__name__)


def retrain(root: Path) -> dict[str, Any]:
    """Run the pipeline, apply the gate, record the decision; returns what went into promotion.json."""
    from dvc.exceptions import DvcException
    from dvc.lock import LockError
    from dvc.repo import Repo, lock_repo

    logging.getLogger("dvc").propagate = False  # DVC prints its own progress; ours would repeat each line
    params = load_params(root / "params.yaml")
    with model_versions.retrain_lock(root):
        check_only_run_records_changed(root)
        try:
            with Repo(str(root)) as repo, lock_repo(repo):
                remove_leftovers_of_killed_runs(root)
                repo.reproduce()
                return gate_and_record(root, params)
        except LockError as err:
            raise busy(root, "DVC's lock in .dvc/tmp is held") from err
        except DvcException as err:
            if isinstance(err.__cause__, LockError):
                raise busy(root, "DVC's lock on the stage outputs is held") from err
            cause = f" ({err.__cause__})" if err.__cause__ else ""
            raise ModaclipError(" ".join(f"pipeline failed: {err}{cause}; production is unchanged".split())) from err


def remove_leftovers_of_killed_runs(root: Path) -> None:
    """Temporary files a killed run left (core/atomic.py's names): git and DVC ignore them; this frees their disk."""
    removed = [path for folder in PIPELINE_FOLDERS for path in sweep_leftovers(root / folder)]
    if removed:
        log.info("removed %d temporary files of a killed run: %s", len(removed), ", ".join(map(str, removed[:5])))


def busy(root: Path, which: str) -> ModaclipError:
    return ModaclipError(
        f"{root.resolve()}: another retrain or dvc command is running here ({which}); nothing was done"
    )


def check_only_run_records_changed(root: Path) -> None:
    """A promoted commit must reproduce its model, so uncommitted changes to code or dvc.yaml stop the run."""
    changed = [line[3:] for line in git(root, "status", "--porcelain", "--untracked-files=no").splitlines()]
    stray = [path for path in changed if not any(path == r or path.startswith(r + "/") for r in RUN_RECORDS)]
    if stray:
        raise ModaclipError(
            f"uncommitted changes to {', '.join(stray)}: commit them first "
            "(a promoted model is tagged on a commit that must reproduce it)"
        )


def gate_and_record(root: Path, params: Params) -> dict[str, Any]:
    """Score production on the candidate's split, apply the gate, write promotion.json, then register the candidate.

    The gate runs without the registry lock (it can take minutes); under the lock, production is read
    again, and if a promote or rollback moved it meanwhile, the gate runs again against the new one.
    """
    itself = version_at_head(root)
    interrupted = interrupted_decision(root, itself) if itself else None
    if itself and interrupted:
        stage = model_versions.PROD_STAGE if interrupted["promoted"] else model_versions.STAGING_STAGE
        with model_versions.registry_lock(root):
            model_versions.register(root, itself.commit, itself.version, stage=stage, reason=interrupted["reason"])
        return interrupted
    candidate = read_report(root / EVAL_METRICS)
    for _ in range(GATE_ATTEMPTS):
        current = model_versions.production(root)
        if itself:
            decision, champion = unchanged(root, itself, current), None
        else:
            decision, champion = gate_candidate(root, params, candidate, current)
        with model_versions.registry_lock(root):
            now = model_versions.production(root)
            if now == current:
                return record_decision(
                    root, params, candidate, itself=itself, decision=decision, current=current, champion=champion
                )
        log.info(
            "production moved from %s to %s while the gate ran; gating again against %s",
            current.version if current else "none",
            now.version if now else "none",
            now.version if now else "the base model",
        )
    raise ModaclipError(
        f"production moved {GATE_ATTEMPTS} times while the gate ran; nothing was recorded (run retrain again)"
    )


def record_decision(
    root: Path,
    params: Params,
    candidate: dict[str, Any],
    *,
    itself: model_versions.ModelVersion | None,
    decision: Decision,
    current: model_versions.ModelVersion | None,
    champion: dict[str, Any] | None,
) -> dict[str, Any]:
    """Write promotion.json and, for a passing new candidate, commit and tag it (under the registry lock).

    Args:
        candidate: the candidate's eval report (metrics/eval.json).
        itself: the registered version the candidate is (nothing retrained since its commit), else None.
        current: the production version the gate compared with; None in the first round (the base model was the bar).
        champion: production's eval report on the candidate's test split; None when none was scored.
    """
    stage = model_versions.PROD_STAGE if params.promote.mode == "auto" and not itself else model_versions.STAGING_STAGE
    returning = rolled_back_model(root) if decision.passed and stage == model_versions.PROD_STAGE else None
    if returning:
        stage = model_versions.STAGING_STAGE
        decision = replace(decision, reason=f"{decision.reason}; {returning}")
    record = {
        "decision": OUTCOMES[stage] if decision.passed else "kept production",
        "promoted": decision.passed and stage == model_versions.PROD_STAGE,
        "mode": params.promote.mode,
        **decision.to_dict(),
        "test_split": {"items": candidate.get("test_items"), "digest": candidate.get("test_digest")},
        "code": {"commit": head(root), "modaclip": modaclip.__version__},
        "candidate": {
            "version": itself.version if itself else model_versions.next_version(root) if decision.passed else None,
            "figures": candidate.get(FINETUNED),
        },
        "production": production_record(root, current, champion),
        "gate": params.promote.model_dump(),
    }
    write_json(root / PROMOTION_PATH, record)
    if decision.passed and not itself:
        version = record["candidate"]["version"]
        commit = commit_run(
            root, f"retrain: {model_versions.ARTIFACT} {version} {record['decision']} ({decision.reason})"
        )
        record["candidate"]["version"] = model_versions.register(
            root, commit, version, stage=stage, reason=decision.reason
        ).version
    return record


def rolled_back_model(root: Path) -> str | None:
    """Why the candidate must not go to production by itself: its model is that of a version a rollback took
    out of production (finetune was not rerun, or trained the same weights), or None."""
    model = model_out(root, None)
    if model is None:
        return None
    for name, when in model_versions.rolled_back(root).items():
        version = model_versions.find_version(root, name)
        if model_out(root, version.commit) == model:
            return (
                f"but its model is that of {version.version}, rolled back from production at {when:%Y-%m-%d %H:%M}: "
                "staged for review instead of promoted"
            )
    return None


def model_out(root: Path, commit: str | None) -> str | None:
    """The hash DVC recorded for the fine-tuned model folder in dvc.lock (the workspace's, or a commit's)."""
    try:
        text = git(root, "show", f"{commit}:dvc.lock") if commit else (root / "dvc.lock").read_text()
        lock = YAML(typ="safe", pure=True).load(text)
        outs = [out for stage in lock["stages"].values() for out in stage.get("outs", [])]
    except (ModaclipError, OSError, YAMLError, TypeError, KeyError, AttributeError):
        return None
    return next((out.get("md5") for out in outs if out.get("path") == MODEL_DIR.as_posix()), None)


def interrupted_decision(root: Path, itself: model_versions.ModelVersion) -> dict[str, Any] | None:
    """The committed decision of a retrain killed between its two tags (HEAD registered, no stage ever assigned).

    Registration follows a passing gate, so the next run only has to assign the stage that decision named.
    """
    if model_versions.ever_assigned(root, itself):
        return None
    try:
        record = json.loads(git(root, "show", f"{itself.commit}:{PROMOTION_PATH}"))
    except (ModaclipError, json.JSONDecodeError):
        return None
    return record if record.get("passed") else None


def version_at_head(root: Path) -> model_versions.ModelVersion | None:
    """The registered version whose commit is HEAD, when nothing was retrained since (its run records unchanged)."""
    if run_records_changed(root):
        return None
    commit = head(root)
    return next((version for version in model_versions.all_versions(root) if version.commit == commit), None)


def unchanged(root: Path, itself: model_versions.ModelVersion, current: model_versions.ModelVersion | None) -> Decision:
    """Nothing was retrained since a registered version's commit: the candidate *is* that version.

    Production stays; a staged version still awaiting review is reported as staged again, never registered twice.
    """
    awaiting = itself != current and itself == model_versions.staged(root)
    reason = f"candidate is {itself.tag} itself (nothing changed since its commit)"
    if itself == current:
        reason = f"candidate is the production model {itself.tag} itself (nothing changed since its commit)"
    elif awaiting:
        reason += f"; it awaits review: `modaclip promote {itself.version}`"
    return Decision(passed=awaiting, baseline="production", reason=reason, checks=[])


def production_record(
    root: Path, current: model_versions.ModelVersion | None, champion: dict[str, Any] | None
) -> dict[str, Any]:
    """Production's figures on this split (what the gate compared) and those recorded at its promotion (history)."""
    if current is None:
        return {"version": None, "commit": None}
    recorded = model_versions.eval_report(root, current)
    return {
        "version": current.version,
        "commit": current.commit,
        "figures": (champion or recorded).get(FINETUNED),
        "evaluation_seconds": champion["seconds"] if champion else None,
        "recorded": {
            "test_items": recorded.get("test_items"),
            "test_digest": recorded.get("test_digest"),
            "figures": recorded.get(FINETUNED),
        },
    }


def exit_status(record: dict[str, Any]) -> int:
    """0 promoted, EXIT_STAGED staged for review, EXIT_KEPT kept production."""
    if record["promoted"]:
        return 0
    return EXIT_STAGED if record["passed"] else EXIT_KEPT


def read_report(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModaclipError(f"{path}: missing after the pipeline ran; is `evaluate` in dvc.yaml?") from err
    except json.JSONDecodeError as err:
        raise ModaclipError(f"{path}: not valid JSON ({err})") from err


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").strip()


def run_records_changed(root: Path) -> bool:
    return bool(git(root, "status", "--porcelain", "--", "dvc.lock", EVAL_METRICS.as_posix()).strip())


def commit_run(root: Path, message: str) -> str:
    """Commit the run's records (nothing else) on the current branch; a resumed run may find them committed."""
    present = [path for path in RUN_RECORDS if (root / path).exists()]
    git(root, "add", "--", *present)
    if git(root, "diff", "--cached", "--name-only").strip():
        git(root, "commit", "-q", "-m", message)
    return head(root)
