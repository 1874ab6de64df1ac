"""Package faces that import a name's module on first use, so a light module need not load its heavy siblings.

A subpackage's `__init__.py` re-exports its public names. Importing any module of the package runs
that face first, so a face that imported everything eagerly would make `modaclip.model.clip_tokenizer`
import torch through `clip_model`. With `__getattr__ = lazy_names(__name__, {...})` (PEP 562) the
face stays the package's table of contents and costs nothing until a name is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_names(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` serving each name in `homes` (name -> module of `package`) from its module."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{homes[name]}"), name)

    return __getattr__
