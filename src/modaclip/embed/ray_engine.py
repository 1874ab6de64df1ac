"""The `ray` engine of the embed stage: an actor pool, the model loaded once per actor.

Ray Data hands the clean parts, one at a time, to `CatalogEncoder` actors (GPU actors of
`embed.gpus_per_actor` GPUs when the cluster has GPUs, else one CPU each), which read the part and
run the same `embed_rows` as the local engine on it, `embed.batch_size` images per forward pass; the
driver takes the parts back in catalog order and writes the folder with the same `write_embeddings`,
reused vectors included. Ray restarts an actor whose process dies and retries its part. The actors
read the parts themselves, so no read task waits for a CPU the actors hold. Every node must read
the clean parts and the model folder at the driver's paths (one machine, or a shared file system).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from modaclip.core.catalog_io import count_rows, part_files
from modaclip.core.config import EmbedParams, RayParams
from modaclip.core.ray_cluster import ray_session
from modaclip.embed.embedding import (
    EmbeddedRows,
    PreviousRows,
    embed_rows,
    part_chunks,
    previous_rows,
    reusable,
    write_embeddings,
)
from modaclip.embed.index import check_index_type
from modaclip.embed.stored import vector_key
from modaclip.model.clip_model import load_model, resolve_device
from modaclip.model.saved_model import saved_model_config


class CatalogEncoder:
    """A Ray actor: the model, loaded once, embeds each batch's rows that previous vectors cannot supply."""

    def __init__(self, model_dir: str, previous: PreviousRows | None, params: EmbedParams) -> None:
        self.bundle = load_model(model_dir, device=str(resolve_device("auto")))
        self.previous = previous
        self.params = params

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Embed the clean part named in the batch (one per call)."""
        (path,) = batch["path"]
        blocks = [
            embed_rows(
                self.bundle, chunk["id"].to_numpy(), chunk["image"].tolist(), previous=self.previous, params=self.params
            )
            for chunk in part_chunks(path)
        ]
        if not blocks:  # a part whose raw rows caption all dropped
            blocks = [embed_rows(self.bundle, np.empty(0, np.int64), [], previous=None, params=self.params)]
        return {
            "id": np.concatenate([rows.ids for rows in blocks]),
            "key": np.concatenate([rows.image_keys for rows in blocks]),
            "vector": np.concatenate([rows.vectors for rows in blocks]),
            "previous_row": np.concatenate([rows.previous_rows for rows in blocks]),
        }


def embed_catalog_on_ray(
    model_dir: str | Path,
    clean_dir: str | Path,
    out_dir: str | Path,
    params: EmbedParams,
    *,
    cluster: RayParams,
    towers: bool = False,
) -> dict[str, Any]:
    """Embed the catalog into out_dir as the local engine would, on an actor pool of the Ray cluster; the
    driver writes the ONNX towers (`towers`)."""
    check_index_type(params.index)
    model_dir = Path(model_dir).resolve()
    dim = int(saved_model_config(model_dir)["embed_dim"])
    key = vector_key(model_dir)
    previous = reusable(Path(out_dir), key)
    with ray_session(cluster) as ray:
        parts = [{"path": str(path.resolve())} for path in part_files(clean_dir)]
        dataset = ray.data.from_items(parts, override_num_blocks=len(parts)).map_batches(
            CatalogEncoder,
            fn_constructor_kwargs={"model_dir": str(model_dir), "previous": previous_rows(previous), "params": params},
            batch_size=1,
            batch_format="numpy",
            **_actor_pool(ray, params),
        )
        dataset.context.execution_options.preserve_order = True
        dataset.context.enable_progress_bars = False  # write_embeddings' bar counts rows as they arrive
        blocks = (
            EmbeddedRows(batch["id"], batch["key"], np.array(batch["vector"]), batch["previous_row"])
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy")
        )
        towers_of = model_dir if towers else None
        return write_embeddings(
            blocks,
            out_dir,
            count=count_rows(clean_dir),
            dim=dim,
            key=key,
            previous=previous,
            index_params=params.index,
            towers_of=towers_of,
        )


def _actor_pool(ray: ModuleType, params: EmbedParams) -> dict[str, Any]:
    """map_batches arguments for the pool: `embed.actors` (0 = as many as the cluster's GPUs or CPUs hold)."""
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0.0)
    cpus_per_actor = 1 + params.num_workers  # the actor, and its DataLoader workers decoding images
    if gpus:
        actors = params.actors or max(1, int(gpus // params.gpus_per_actor))
        gpu_args = {"num_gpus": params.gpus_per_actor}
    else:
        actors = params.actors or max(1, int(resources.get("CPU", 1.0) // cpus_per_actor))
        gpu_args = {}
    return {"compute": ray.data.ActorPoolStrategy(size=actors), "num_cpus": cpus_per_actor, **gpu_args}
