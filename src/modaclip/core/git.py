"""`git` run in a repository, its failure a one-line `ModaclipError`: the registry's tags and the retrain's
commits are plain git commands."""

from __future__ import annotations

import subprocess
from pathlib import Path

from modaclip.core.errors import ModaclipError


def git(root: Path, *args: str) -> str:
    """The output of `git ARGS` in `root`."""
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise ModaclipError(f"git {' '.join(args)} failed in {root}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout
