"""Every path lives once, in dvc.yaml: a stage script has no default for any argument, dvc.yaml's `cmd` gives
it every one, and the paths `core/paths.py` keeps for the commands are outputs dvc.yaml declares."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from modaclip.core import paths

REPO = Path(__file__).resolve().parents[1]
STAGES = YAML(typ="safe").load(REPO / "dvc.yaml")["stages"]


def arguments(script: Path) -> dict[str, dict[str, ast.expr]]:
    """Each `parser.add_argument("--name", ...)` of a script: its option and keyword arguments."""
    found = {}
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            found[ast.literal_eval(node.args[0])] = {keyword.arg: keyword.value for keyword in node.keywords}
    return found


def script_of(stage: str) -> Path:
    """The stage script its cmd runs (finetune-feedback runs stages/finetune.py)."""
    script = next(word for word in STAGES[stage]["cmd"].split() if word.startswith("stages/"))
    return REPO / script


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_takes_every_path_from_its_dvc_yaml_command(stage: str) -> None:
    script = script_of(stage)
    options = arguments(script)
    assert options, f"{script.name}: no arguments found"
    for option, keywords in options.items():
        assert "default" not in keywords, f"{script.name} {option}: a default repeats dvc.yaml's path"
        if ast.literal_eval(keywords.get("required", ast.Constant(False))):
            assert f" {option} " in f"{STAGES[stage]['cmd']} ", f"dvc.yaml's {stage} cmd does not give {option}"
        else:  # an optional switch (finetune's --init, --feedback): some stage running the script gives it
            users = [name for name in STAGES if script_of(name) == script]
            assert any(f" {option} " in f"{STAGES[name]['cmd']} " for name in users), f"{script.name} {option}"


def test_the_paths_commands_read_are_outputs_dvc_yaml_declares() -> None:
    outs = {next(iter(out)) if isinstance(out, dict) else out for spec in STAGES.values() for out in spec["outs"]}
    kept = {name: value for name, value in vars(paths).items() if isinstance(value, Path)}
    assert kept, "core/paths.py keeps no path"
    assert {name: str(value) for name, value in kept.items() if str(value) not in outs} == {}
