"""Which model serves: GTO versions (model_versions.py), the promotion gate, scheduled retraining, `--model` resolution.

The names load on first use (PEP 562), so a command that resolves `--model` does not import torch
through the modules that build or export models.
"""

from __future__ import annotations

from modaclip.core.lazy_face import lazy_names

_HOMES = {"retrain": "retrain", "search_source_for": "model_choice"}
__all__ = sorted(_HOMES)
__getattr__ = lazy_names(__name__, _HOMES)
