"""No name in src/ that pytest would collect: a `Test*` class or `test_*` function imported into a test runs as one."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def collectable_names(tree: ast.Module) -> list[str]:
    """Top-level classes named Test* and functions named test*, as pytest's default patterns collect them."""
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    return [
        node.name
        for node in tree.body
        if (isinstance(node, ast.ClassDef) and node.name.startswith("Test"))
        or (isinstance(node, functions) and node.name.startswith("test"))
    ]


def test_src_defines_nothing_pytest_would_collect() -> None:
    offenders = [
        f"{path.relative_to(SRC)}: {name}"
        for path in sorted(SRC.rglob("*.py"))
        for name in collectable_names(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not offenders, f"rename these (pytest collects them when a test imports them): {offenders}"


def test_the_check_sees_a_test_class_and_a_test_function() -> None:
    tree = ast.parse("class TestSet: ...\ndef test_split_digest(): ...\ndef split_digest(): ...\n")
    assert collectable_names(tree) == ["TestSet", "test_split_digest"]
