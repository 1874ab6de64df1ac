"""A digest of the source files of some packages: a change to the code that makes a result changes its key.

Training (train/run_identity.py) and the embed stage's reuse of vectors (embed/embedding.py) key what they
keep by the code that made it, so a fix in the loss or the preprocessing is never hidden by a kept result.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path


def package_root(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{package} is not an importable package")
    return Path(next(iter(spec.submodule_search_locations)))


def package_files(root: Path) -> list[Path]:
    """Every file under a package folder (sub-folders and data files such as model configs included),
    byte-code excluded, in a fixed order."""
    return sorted(
        path for path in root.rglob("*") if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


def source_digest(packages: Iterable[str]) -> str:
    """sha256 over each file's name within its package and its bytes, for the named packages."""
    digest = hashlib.sha256()
    for package in sorted(packages):
        root = package_root(package)
        for path in package_files(root):
            name = f"{package}/{path.relative_to(root).as_posix()}".encode()
            content = path.read_bytes()
            digest.update(len(name).to_bytes(8, "little") + name + len(content).to_bytes(8, "little") + content)
    return digest.hexdigest()
