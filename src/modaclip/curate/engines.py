"""`caption.engine`: where the caption stage's work runs. Both engines write the same clean catalog.

An engine is one function of (raw folder, out folder, caption params, ray params) and one line in
`CAPTION_ENGINES`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from modaclip.core.config import CaptionParams, RayParams
from modaclip.core.errors import ModaclipError
from modaclip.curate.clean_and_caption import clean_and_caption
from modaclip.curate.ray_engine import clean_and_caption_on_ray

CaptionEngine = Callable[[str | Path, str | Path, CaptionParams, RayParams], dict[str, Any]]


def _local(raw_dir: str | Path, out_dir: str | Path, params: CaptionParams, _cluster: RayParams) -> dict[str, Any]:
    """This process, part after part."""
    return clean_and_caption(raw_dir, out_dir, params)


CAPTION_ENGINES: dict[str, CaptionEngine] = {"local": _local, "ray": clean_and_caption_on_ray}


def run_caption(raw_dir: str | Path, out_dir: str | Path, params: CaptionParams, cluster: RayParams) -> dict[str, Any]:
    """Write the clean catalog with the engine `caption.engine` names; return the counts for metrics/clean.json."""
    engine = CAPTION_ENGINES.get(params.engine)
    if engine is None:
        raise ModaclipError(f"caption.engine: unknown engine {params.engine!r} (known: {', '.join(CAPTION_ENGINES)})")
    return engine(raw_dir, out_dir, params, cluster)
