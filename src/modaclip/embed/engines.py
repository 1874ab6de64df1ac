"""`embed.engine`: where the embed stage's work runs. Both engines write the same embeddings folder.

An engine is one function of (model folder, clean catalog folder, out folder, embed params, ray
params, whether to add the model's ONNX towers) and one line in `EMBED_ENGINES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from modaclip.core.config import EmbedParams, RayParams
from modaclip.core.errors import ModaclipError
from modaclip.embed.embedding import embed_catalog
from modaclip.embed.ray_engine import embed_catalog_on_ray

Folder = str | Path


class EmbedEngine(Protocol):
    def __call__(
        self,
        model_dir: Folder,
        clean_dir: Folder,
        out_dir: Folder,
        params: EmbedParams,
        *,
        cluster: RayParams,
        towers: bool,
    ) -> dict[str, Any]: ...


def _local(
    model_dir: Folder, clean_dir: Folder, out_dir: Folder, params: EmbedParams, *, cluster: RayParams, towers: bool
) -> dict[str, Any]:
    """This process; previous vectors come from out_dir."""
    return embed_catalog(model_dir, clean_dir, out_dir, params, towers=towers)


EMBED_ENGINES: dict[str, EmbedEngine] = {"local": _local, "ray": embed_catalog_on_ray}


def run_embed(
    model_dir: Folder,
    clean_dir: Folder,
    out_dir: Folder,
    params: EmbedParams,
    *,
    cluster: RayParams,
    towers: bool = False,
) -> dict[str, Any]:
    """Embed the catalog with the engine `embed.engine` names, reusing out_dir's vectors of unchanged products;
    with `towers`, the folder also gets the model's towers as ONNX (embed/embedding.py)."""
    engine = EMBED_ENGINES.get(params.engine)
    if engine is None:
        raise ModaclipError(f"embed.engine: unknown engine {params.engine!r} (known: {', '.join(EMBED_ENGINES)})")
    return engine(model_dir, clean_dir, out_dir, params, cluster=cluster, towers=towers)
