"""A stage reruns when its code changes: every project module a stage loads is under one of its deps.

The modules a stage loads are those in sys.modules once `stages/NAME.py --help` has parsed its arguments
(tests/stage_imports.py runs every stage script so, each in a child forked from one process), so a module
imported at the top of any file the stage reaches is caught.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
STAGES = YAML(typ="safe").load(REPO / "dvc.yaml")["stages"]
SCRIPT = re.compile(r"stages/\w+\.py")


def stage_modules(scripts: list[str]) -> dict[str, set[str]]:
    """Stage script (as a cmd names it, e.g. stages/embed.py) -> the project modules it loads."""
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "stage_imports.py"), *scripts], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return {script: set(modules) for script, modules in json.loads(result.stdout).items()}


@pytest.fixture(scope="module")
def loaded_project_modules() -> dict[str, set[str]]:
    return stage_modules(sorted({found.group(0) for spec in STAGES.values() if (found := SCRIPT.search(spec["cmd"]))}))


def module_file(name: str) -> str:
    origin = importlib.util.find_spec(name).origin
    return Path(origin).resolve().relative_to(REPO).as_posix()


def is_covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_project_module_a_stage_loads_is_a_declared_dep(
    stage: str, loaded_project_modules: dict[str, set[str]]
) -> None:
    spec = STAGES[stage]
    found = SCRIPT.search(spec["cmd"])  # a stage may run another's script (finetune-feedback: stages/finetune.py)
    assert found, f"{stage}: its cmd runs no stages/*.py script"
    assert found.group(0) in spec["deps"]
    modules = loaded_project_modules[found.group(0)]
    assert "modaclip" in modules, f"{stage}: no project module seen; is the package importable?"
    missing = sorted(
        f"{name} ({module_file(name)})" for name in modules if not is_covered(module_file(name), spec["deps"])
    )
    assert not missing, f"stage {stage} loads project modules outside its deps: {', '.join(missing)}"


def code_only_pipeline(project: Path) -> None:
    """The real stages with their code deps and params, each command `true`, recorded by `dvc repro`.

    Data deps and outs are left out, so the lock reflects only code and the test needs no data.
    """
    stages = {
        name: {
            "cmd": "true",
            "deps": [d for d in spec["deps"] if d.startswith(("src/", "stages/"))],
            "params": spec.get("params", []),
        }
        for name, spec in STAGES.items()
    }
    yaml = YAML(typ="safe")
    yaml.dump({"stages": stages}, project / "dvc.yaml")
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=project, check=True)
    subprocess.run(["dvc", "repro", "-q"], cwd=project, check=True)


def changed_stages(project: Path) -> dict[str, set[str]]:
    """Stage -> the deps that `dvc status` reports as modified."""
    result = subprocess.run(["dvc", "status", "--json"], cwd=project, capture_output=True, text=True, check=True)
    changed: dict[str, set[str]] = {}
    for stage, entries in json.loads(result.stdout or "{}").items():
        for entry in entries:
            if isinstance(entry, dict):
                changed.setdefault(stage, set()).update(entry.get("changed deps", {}))
    return changed


def test_editing_the_model_package_marks_the_stages_that_load_it_changed(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy2(REPO / "params.yaml", project / "params.yaml")
    shutil.copy2(REPO / ".dvcignore", project / ".dvcignore")
    shutil.copytree(REPO / "stages", project / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    code_only_pipeline(project)
    assert changed_stages(project) == {}

    (project / "src/modaclip/model/__pycache__").mkdir()
    (project / "src/modaclip/model/__pycache__/stray.cpython-311.pyc").write_bytes(b"byte-code is never a dep")
    assert changed_stages(project) == {}, "byte-code under __pycache__ made a stage look changed"

    with (project / "src/modaclip/model/clip_model.py").open("a") as source:
        source.write("\n# an edit\n")
    changed = changed_stages(project)
    assert set(changed) == {"finetune", "embed", "evaluate", "shop-log", "finetune-feedback", "evaluate-feedback"}
    assert all(deps == {"src/modaclip/model"} for deps in changed.values())
