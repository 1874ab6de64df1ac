"""Embed a clean catalog with a saved model, streaming vectors to disk so memory stays bounded.

An embeddings folder holds ids.npy, vectors.npy (L2-normalised float32, row i belongs to ids[i]),
image_keys.npy (a digest of each row's image bytes), meta.json and index.faiss. A run reuses the
vectors of a previous folder made with the same model weights for every product whose id and image
are unchanged, so adding products embeds only them. `embed_rows` is the work on a block of rows that
both engines run (this module's `embed_catalog`, the `local` one, in this process; the `ray` one in
an actor pool, embed/ray_engine.py), and `write_embeddings` writes the folder from the blocks in
catalog order, so the engines write the same files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
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
from modaclip.model.clip_model import ClipBundle, EncodedImages, load_model, resolve_device, weights_fingerprint

log = logging.getLogger(__name__)

VECTORS_FILE = "vectors.npy"
IDS_FILE = "ids.npy"
KEYS_FILE = "image_keys.npy"
META_FILE = "meta.json"
READ_ROWS = 4096  # catalog rows read at a time: bounds memory whatever the size of a parquet part


@dataclass
class Embeddings:
    """An embeddings folder, read: vectors memory-mapped, the rest in RAM."""

    ids: np.ndarray
    vectors: np.ndarray
    image_keys: np.ndarray
    meta: dict[str, Any]


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


def image_key(data: bytes) -> int:
    """A 64-bit digest of an image's bytes: a product whose photo changed is embedded again."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


def embed_rows(
    bundle: ClipBundle, ids: np.ndarray, images: Sequence[bytes], previous: PreviousRows | None, params: EmbedParams
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
    previous_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Embed the catalog into out_dir in this process, reusing vectors of previous_dir (default: out_dir)."""
    check_index_type(params.index)
    bundle = load_model(model_dir, device=str(resolve_device("auto")))
    fingerprint = weights_fingerprint(model_dir)
    previous = reusable(Path(previous_dir or out_dir), fingerprint)
    rows = previous_rows(previous)
    blocks = (
        embed_rows(bundle, chunk["id"].to_numpy(), chunk["image"].tolist(), rows, params)
        for path in part_files(clean_dir)
        for chunk in part_chunks(path)
    )
    dim = int(bundle.model_cfg["embed_dim"])
    return write_embeddings(blocks, out_dir, count_rows(clean_dir), dim, fingerprint, previous, params.index)


def previous_rows(previous: Embeddings | None) -> PreviousRows | None:
    return PreviousRows(previous.ids, previous.image_keys) if previous else None


def write_embeddings(
    blocks: Iterable[EmbeddedRows],
    out_dir: str | Path,
    count: int,
    dim: int,
    fingerprint: str,
    previous: Embeddings | None,
    index_params: IndexParams,
) -> dict[str, Any]:
    """The embeddings folder of `count` rows from blocks in catalog order; reused rows are copied from `previous`."""
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
        meta = {"count": count, "dim": dim, "model_sha256": fingerprint, "reused": reused}
        meta["index"] = _write_index(vectors, tmp, index_params)
        del vectors
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    log.info("embedded %d products, reused %d unchanged ones", count - reused, reused)
    return meta


def _write_index(vectors: np.ndarray, directory: Path, params: IndexParams) -> dict[str, Any]:
    kind = index_kind(len(vectors), params)
    with tqdm(total=len(vectors), desc=f"building {kind} index", unit="vec") as bar:
        save_index(build_index(vectors, params, progress=bar.update), directory / INDEX_FILE)
    return {**params.model_dump(), "type": kind}


def part_chunks(path: str | Path) -> Iterator[pd.DataFrame]:
    """Frames of id and image for the rows of one catalog part in order, READ_ROWS at a time."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_ROWS, columns=["id", "image"]):
        yield batch.to_pandas()


def reusable(directory: Path, fingerprint: str) -> Embeddings | None:
    """A previous embeddings folder made with these weights, or None (missing, other model, unreadable)."""
    if not (directory / META_FILE).is_file():
        return None
    try:
        previous = read_embeddings(directory)
    except ModaclipError as err:
        log.info("not reusing %s: %s", directory, err)
        return None
    if previous.meta.get("model_sha256") != fingerprint:
        log.info("not reusing %s: made with another model", directory)
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


def read_embeddings(directory: str | Path) -> Embeddings:
    """An embeddings folder with vectors memory-mapped (not read into RAM)."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / META_FILE).read_text())
        ids = np.load(directory / IDS_FILE)
        vectors = np.load(directory / VECTORS_FILE, mmap_mode="r")
        keys = np.load(directory / KEYS_FILE) if (directory / KEYS_FILE).is_file() else np.zeros(len(ids), np.int64)
    except FileNotFoundError as err:
        raise ModaclipError(
            f"{directory}: no embeddings ({Path(err.filename).name} missing); run `dvc repro embed`"
        ) from None
    if vectors.shape != (len(ids), meta.get("dim")):
        raise ModaclipError(
            f"{directory}: {VECTORS_FILE} has shape {vectors.shape}, expected ({len(ids)}, {meta.get('dim')})"
        )
    return Embeddings(ids, vectors, keys, meta)


def load_embeddings(directory: str | Path, model_dir: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(ids, vectors, meta) of an embeddings folder made with the model in `model_dir`.

    Vectors are memory-mapped, not read into RAM. Vectors of another model would give silently
    wrong results, so a mismatch is an error.
    """
    embeddings = read_embeddings(directory)
    check_embedded_with(embeddings, directory, model_dir)
    return embeddings.ids, embeddings.vectors, embeddings.meta


def check_embedded_with(embeddings: Embeddings, directory: str | Path, model_dir: str | Path) -> None:
    """Refuse embeddings made with other weights than `model_dir`'s: they would give silently wrong results."""
    if embeddings.meta.get("model_sha256") != weights_fingerprint(model_dir):
        raise ModaclipError(
            f"{directory} was embedded with another model than {model_dir}; "
            f"run `python stages/embed.py --model {model_dir} --out DIR` and pass --embeddings DIR"
        )
