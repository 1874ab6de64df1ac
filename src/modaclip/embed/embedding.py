"""Embed a clean catalog with a saved model, streaming vectors to disk so memory stays bounded.

The folder it writes is described in embed/stored.py. A run reuses the
vectors of a previous folder made under the same vector key (weights, model config and
preprocessing, embedding code and libraries: `stored.vector_key`) for every product whose id and
image bytes are unchanged, so adding products embeds only them, and the previous folder's ONNX
towers when they were exported from these weights. `embed_rows` is the work on a block of rows that
both engines run (this module's `embed_catalog`, the `local` one, in this process; the `ray` one in
an actor pool, embed/ray_engine.py), and `write_embeddings` writes the folder from the blocks in
catalog order, so the engines write the same files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from modaclip.core.atomic import atomic_directory
from modaclip.core.catalog_io import count_rows, part_files
from modaclip.core.config import EmbedParams, IndexParams
from modaclip.core.errors import ModaclipError
from modaclip.embed.index import INDEX_FILE, build_index, check_index_type, index_kind, save_index
from modaclip.embed.stored import (
    IDS_FILE,
    KEYS_FILE,
    META_FILE,
    TOWERS_DIR,
    VECTORS_FILE,
    Embeddings,
    image_key,
    key_changes,
    read_embeddings,
    vector_key,
)
from modaclip.model.clip_model import ClipBundle, EncodedImages, load_model, resolve_device
from modaclip.model.onnx_export import export_towers
from modaclip.model.onnx_runtime import TOWERS_CONFIG, read_towers_config

log = logging.getLogger(__name__)

READ_ROWS = 4096  # catalog rows read at a time: bounds memory whatever the size of a parquet part


class PreviousRows:
    """Where each product of a previous embeddings folder sits, to find the rows a new run can reuse."""

    def __init__(self, ids: np.ndarray, image_keys: np.ndarray) -> None:
        self.order = np.argsort(ids, kind="stable")
        self.sorted_ids = ids[self.order]
        self.image_keys = image_keys

    def find(self, ids: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Per row, its row in the previous folder when id and image are unchanged, else -1 (embed it)."""
        if len(self.sorted_ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.sorted_ids, ids), len(self.sorted_ids) - 1)
        rows = self.order[at]
        same = (self.sorted_ids[at] == ids) & (self.image_keys[rows] == keys)
        return np.where(same, rows, -1).astype(np.int64)


@dataclass
class EmbeddedRows:
    """A block of catalog rows: vectors of the rows to embed, zeros where `previous_rows` names a reusable row."""

    ids: np.ndarray
    image_keys: np.ndarray
    vectors: np.ndarray
    previous_rows: np.ndarray


def embed_rows(
    bundle: ClipBundle, ids: np.ndarray, images: Sequence[bytes], *, previous: PreviousRows | None, params: EmbedParams
) -> EmbeddedRows:
    """Embed the rows whose id and image `previous` does not already hold."""
    keys = np.array([image_key(image) for image in images], dtype=np.int64)
    previous_rows = previous.find(ids, keys) if previous else np.full(len(ids), -1, dtype=np.int64)
    vectors = np.zeros((len(ids), int(bundle.model_cfg["embed_dim"])), dtype=np.float32)
    fresh = np.flatnonzero(previous_rows < 0)
    if len(fresh):
        vectors[fresh] = _encode(bundle, [images[i] for i in fresh], params)
    return EmbeddedRows(np.asarray(ids, dtype=np.int64), keys, vectors, previous_rows)


def embed_catalog(
    model_dir: str | Path,
    clean_dir: str | Path,
    out_dir: str | Path,
    params: EmbedParams,
    *,
    previous_dir: str | Path | None = None,
    towers: bool = False,
) -> dict[str, Any]:
    """Embed the catalog into out_dir in this process, reusing vectors of previous_dir (default: out_dir).

    With `towers`, the folder also gets the model's towers as ONNX (`onnx/`), so search can embed
    queries without torch.
    """
    check_index_type(params.index)
    bundle = load_model(model_dir, device=str(resolve_device("auto")))
    key = vector_key(model_dir)
    previous = reusable(Path(previous_dir or out_dir), key)
    rows = previous_rows(previous)
    blocks = (
        embed_rows(bundle, chunk["id"].to_numpy(), chunk["image"].tolist(), previous=rows, params=params)
        for path in part_files(clean_dir)
        for chunk in part_chunks(path)
    )
    dim = int(bundle.model_cfg["embed_dim"])
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


def previous_rows(previous: Embeddings | None) -> PreviousRows | None:
    return PreviousRows(previous.ids, previous.image_keys) if previous else None


def write_embeddings(
    blocks: Iterable[EmbeddedRows],
    out_dir: str | Path,
    *,
    count: int,
    dim: int,
    key: dict[str, str],
    previous: Embeddings | None,
    index_params: IndexParams,
    towers_of: str | Path | None = None,
) -> dict[str, Any]:
    """The embeddings folder of `count` rows from blocks in catalog order; reused rows are copied from `previous`.

    `key` is the `vector_key` of the model the blocks were embedded with.

    `towers_of` names the model folder whose towers go into `onnx/` (`previous`'s when they are of these weights).
    """
    with atomic_directory(out_dir) as tmp:
        vectors = np.lib.format.open_memmap(tmp / VECTORS_FILE, mode="w+", dtype=np.float32, shape=(count, dim))
        ids = np.empty(count, dtype=np.int64)
        keys = np.empty(count, dtype=np.int64)
        position = reused = 0
        with tqdm(total=count, desc="embedding catalog", unit="img") as bar:
            for block in blocks:
                at = slice(position, position + len(block.ids))
                ids[at], keys[at] = block.ids, block.image_keys
                old = block.previous_rows >= 0
                if old.any():
                    block.vectors[old] = previous.vectors[block.previous_rows[old]]
                vectors[at] = block.vectors
                reused += int(old.sum())
                position = at.stop
                bar.update(len(block.ids))
        if position != count:
            raise ModaclipError(f"{out_dir}: embedded {position} rows, but the catalog has {count}")
        vectors.flush()
        np.save(tmp / IDS_FILE, ids)
        np.save(tmp / KEYS_FILE, keys)
        meta = {"count": count, "dim": dim, "model_sha256": key["weights"], "made_with": key, "reused": reused}
        meta["index"] = _write_index(vectors, tmp, index_params)
        if towers_of is not None:
            meta["onnx"] = _write_towers(towers_of, key["weights"], tmp / TOWERS_DIR, previous)
        del vectors
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    log.info("embedded %d products, reused %d unchanged ones", count - reused, reused)
    return meta


def _write_index(vectors: np.ndarray, directory: Path, params: IndexParams) -> dict[str, Any]:
    kind = index_kind(len(vectors), params)
    with tqdm(total=len(vectors), desc=f"building {kind} index", unit="vec") as bar:
        save_index(build_index(vectors, params, progress=bar.update), directory / INDEX_FILE)
    return {**params.model_dump(), "type": kind}


def _write_towers(model_dir: str | Path, fingerprint: str, directory: Path, previous: Embeddings | None) -> str:
    """The model's towers as ONNX in `directory`: copied from `previous` when made from these weights, else exported.

    A model the export does not cover (another tokenizer, preprocessing or graph) gets none: search
    then embeds queries with torch and says so; the vectors and index are complete either way.
    """
    if previous and _towers_of(previous.directory / TOWERS_DIR) == fingerprint:
        shutil.copytree(previous.directory / TOWERS_DIR, directory)
        return "reused"
    directory.mkdir()
    try:
        with tqdm(total=1, desc="exporting ONNX towers", unit="model") as bar:
            export_towers(load_model(model_dir), directory, fingerprint)
            bar.update()
    except (ModaclipError, RuntimeError) as err:  # torch.onnx's export errors are RuntimeErrors
        shutil.rmtree(directory)
        log.warning("no ONNX towers (search will embed queries with torch): %s", err)
        return f"not exported: {err}"
    return "exported"


def _towers_of(directory: Path) -> str | None:
    """The weights fingerprint that a towers folder was exported from; None when there is none."""
    return read_towers_config(directory).get("model_sha256") if (directory / TOWERS_CONFIG).is_file() else None


def part_chunks(path: str | Path) -> Iterator[pd.DataFrame]:
    """Frames of id and image for the rows of one catalog part in order, READ_ROWS at a time."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_ROWS, columns=["id", "image"]):
        yield batch.to_pandas()


def reusable(directory: Path, key: dict[str, str]) -> Embeddings | None:
    """A previous embeddings folder made under this vector key, or None (missing, made otherwise, unreadable)."""
    if not (directory / META_FILE).is_file():
        return None
    try:
        previous = read_embeddings(directory)
    except ModaclipError as err:
        log.info("not reusing %s: %s", directory, err)
        return None
    changes = key_changes(key, previous.meta.get("made_with", {}))
    if changes:
        log.info("embedding every product again: %s changed since %s was made", ", ".join(changes), directory)
        return None
    return previous


def _encode(bundle: ClipBundle, images: list[bytes], params: EmbedParams) -> np.ndarray:
    """Embed images with DataLoader workers decoding in parallel, in inference mode, bf16 on CUDA."""
    loader = DataLoader(
        EncodedImages(images, bundle.preprocess), batch_size=params.batch_size, num_workers=params.num_workers
    )
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if bundle.device.type == "cuda" else contextlib.nullcontext()
    )
    chunks = []
    with torch.inference_mode(), autocast:
        for batch in loader:
            features = bundle.model.encode_image(batch.to(bundle.device, non_blocking=True), normalize=True)
            chunks.append(features.float().cpu().numpy())
    return np.concatenate(chunks)
