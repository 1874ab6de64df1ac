"""The evaluate stage: retrieval and zero-shot benchmarks of base vs fine-tuned, and their report.

The names load on first use (PEP 562): `modaclip eval-report` and the model card read
`markdown_report` without importing torch, which `evaluation` needs.
"""

from __future__ import annotations

from modaclip.core.lazy_face import lazy_names

_HOMES = {"compare_base_and_finetuned": "evaluation", "markdown_report": "markdown_report"}
__all__ = sorted(_HOMES)
__getattr__ = lazy_names(__name__, _HOMES)
