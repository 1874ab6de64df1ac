"""Embed a clean catalog with a saved model, streaming vectors to disk so memory stays bounded.

The folder it writes is described in embed/stored.py. A run reuses the vectors of a previous
folder made with the same model weights for every product whose id and image are unchanged, so
adding products embeds only them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterator, Sequence
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
from modaclip.core.catalog_io import part_files
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
    read_embeddings,
)
from modaclip.model.clip_model import ClipBundle, EncodedImages, load_model, resolve_device
from modaclip.model.onnx_export import export_towers
from modaclip.model.onnx_runtime import TOWERS_CONFIG, read_towers_config
from modaclip.model.saved_model import weights_fingerprint

log = logging.getLogger(__name__)

READ_ROWS = 4096  # catalog rows read at a time: bounds memory whatever the size of a parquet part


@dataclass(frozen=True)
class Shard:
    """Part `index` of `count` of the catalog rows, as a contiguous row range (so parts merge by concatenation)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'i/n' with 0 <= i < n."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ModaclipError(f"--shard: expected i/n such as 0/4, got {text!r}") from None
        if not 0 <= index < count:
            raise ModaclipError(f"--shard: need 0 <= i < n, got {text!r}")
        return cls(index, count)

    def rows(self, total: int) -> range:
        return range(self.index * total // self.count, (self.index + 1) * total // self.count)

    @property
    def whole(self) -> bool:
        return self.count == 1


def embed_catalog(
    model_dir: str | Path,
    clean_dir: str | Path,
    out_dir: str | Path,
    params: EmbedParams,
    shard: Shard = Shard(),
    previous_dir: str | Path | None = None,
    towers: bool = False,
) -> dict[str, Any]:
    """Embed the shard's rows of the catalog into out_dir, reusing vectors of previous_dir (default: out_dir).

    With `towers`, a whole catalog's folder also gets the model's towers as ONNX (`onnx/`), so
    search can embed queries without torch; previous_dir's are reused when the model is the same.
    """
    check_index_type(params.index)
    bundle = load_model(model_dir, device=str(resolve_device("auto")))
    fingerprint = weights_fingerprint(model_dir)
    previous_dir = Path(previous_dir or out_dir)
    previous = _reusable(previous_dir, fingerprint)
    rows = shard.rows(sum(pq.read_metadata(path).num_rows for path in part_files(clean_dir)))
    dim = int(bundle.model_cfg["embed_dim"])
    with atomic_directory(out_dir) as tmp:
        vectors = np.lib.format.open_memmap(tmp / VECTORS_FILE, mode="w+", dtype=np.float32, shape=(len(rows), dim))
        ids = np.empty(len(rows), dtype=np.int64)
        keys = np.empty(len(rows), dtype=np.int64)
        reused = 0
        with tqdm(total=len(rows), desc="embedding catalog", unit="img") as bar:
            for offset, chunk in _row_chunks(clean_dir, rows):
                at = slice(offset, offset + len(chunk))
                ids[at] = chunk["id"].to_numpy()
                keys[at] = [image_key(image) for image in chunk["image"]]
                fresh = _fill_from(previous, ids[at], keys[at], vectors[at]) if previous else np.ones(len(chunk), bool)
                if fresh.any():
                    vectors[at][fresh] = _encode(bundle, chunk["image"].to_numpy()[fresh].tolist(), params)
                reused += int((~fresh).sum())
                bar.update(len(chunk))
        vectors.flush()
        np.save(tmp / IDS_FILE, ids)
        np.save(tmp / KEYS_FILE, keys)
        meta = {
            "count": len(rows),
            "dim": dim,
            "model_sha256": fingerprint,
            "reused": reused,
            "shard": f"{shard.index}/{shard.count}",
        }
        if shard.whole:
            meta["index"] = _write_index(vectors, tmp, params.index)
            if towers:
                meta["onnx"] = _write_towers(bundle, fingerprint, tmp / TOWERS_DIR, previous_dir / TOWERS_DIR)
        del vectors
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    log.info("embedded %d products, reused %d unchanged ones", meta["count"] - reused, reused)
    return meta


def merge_shards(
    shard_dirs: Sequence[str | Path],
    out_dir: str | Path,
    index_params: IndexParams,
    model_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Join shard folders (in shard order) into one embeddings folder with its index, and the towers of
    `model_dir` as ONNX when it is the model the shards were embedded with."""
    parts = [read_embeddings(directory) for directory in shard_dirs]
    _check_mergeable(parts, shard_dirs)
    fingerprint = parts[0].meta["model_sha256"]
    if model_dir is not None and weights_fingerprint(model_dir) != fingerprint:
        raise ModaclipError(f"merge: the shards were not embedded with {model_dir}")
    total, dim = sum(len(part.ids) for part in parts), parts[0].meta["dim"]
    with atomic_directory(out_dir) as tmp:
        vectors = np.lib.format.open_memmap(tmp / VECTORS_FILE, mode="w+", dtype=np.float32, shape=(total, dim))
        start = 0
        for part in parts:
            for block in range(0, len(part.ids), READ_ROWS):
                rows = part.vectors[block : block + READ_ROWS]
                vectors[start + block : start + block + len(rows)] = rows
            start += len(part.ids)
        vectors.flush()
        np.save(tmp / IDS_FILE, np.concatenate([part.ids for part in parts]))
        np.save(tmp / KEYS_FILE, np.concatenate([part.image_keys for part in parts]))
        meta = {"count": total, "dim": dim, "model_sha256": fingerprint, "reused": 0, "shard": "0/1"}
        meta["index"] = _write_index(vectors, tmp, index_params)
        if model_dir is not None:
            previous_towers = Path(out_dir, TOWERS_DIR)
            meta["onnx"] = _write_towers(load_model(model_dir), fingerprint, tmp / TOWERS_DIR, previous_towers)
        del vectors
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    return meta


def _check_mergeable(parts: list[Embeddings], dirs: Sequence[str | Path]) -> None:
    expected = [f"{i}/{len(parts)}" for i in range(len(parts))]
    found = [part.meta.get("shard") for part in parts]
    if found != expected:
        raise ModaclipError(f"merge: expected shards {expected} in order, got {found} from {[str(d) for d in dirs]}")
    models = {part.meta["model_sha256"] for part in parts}
    if len(models) > 1:
        raise ModaclipError(f"merge: shards were embedded with different models: {[str(d) for d in dirs]}")


def _write_index(vectors: np.ndarray, directory: Path, params: IndexParams) -> dict[str, Any]:
    kind = index_kind(len(vectors), params)
    with tqdm(total=len(vectors), desc=f"building {kind} index", unit="vec") as bar:
        save_index(build_index(vectors, params, progress=bar.update), directory / INDEX_FILE)
    return {**params.model_dump(), "type": kind}


def _write_towers(bundle: ClipBundle, fingerprint: str, directory: Path, previous: Path) -> str:
    """The model's towers as ONNX in `directory`: copied from `previous` when made from these weights, else exported.

    A model the export does not cover (another tokenizer, preprocessing or graph) gets none: search
    then embeds queries with torch and says so; the vectors and index are complete either way.
    """
    if (previous / TOWERS_CONFIG).is_file() and read_towers_config(previous).get("model_sha256") == fingerprint:
        shutil.copytree(previous, directory)
        return "reused"
    directory.mkdir()
    try:
        with tqdm(total=1, desc="exporting ONNX towers", unit="model") as bar:
            export_towers(bundle, directory, fingerprint)
            bar.update()
    except (ModaclipError, RuntimeError) as err:  # torch.onnx's export errors are RuntimeErrors
        shutil.rmtree(directory)
        log.warning("no ONNX towers (search will embed queries with torch): %s", err)
        return f"not exported: {err}"
    return "exported"


def _row_chunks(clean_dir: str | Path, rows: range) -> Iterator[tuple[int, pd.DataFrame]]:
    """(position in the shard, frame of id and image) for the catalog rows in `rows`, READ_ROWS at a time."""
    position = 0
    for path in part_files(clean_dir):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_ROWS, columns=["id", "image"]):
            lo, hi = max(rows.start - position, 0), min(rows.stop - position, batch.num_rows)
            if lo < hi:
                yield position + lo - rows.start, batch.slice(lo, hi - lo).to_pandas()
            position += batch.num_rows
            if position >= rows.stop:
                return


def _reusable(directory: Path, fingerprint: str) -> Embeddings | None:
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


def _fill_from(previous: Embeddings, ids: np.ndarray, keys: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Copy the previous vectors of rows whose id and image are unchanged into `out`; True marks rows still to embed."""
    order = np.argsort(previous.ids, kind="stable")
    sorted_ids = previous.ids[order]
    at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    old_rows = order[at]
    same = (sorted_ids[at] == ids) & (previous.image_keys[old_rows] == keys)
    if same.any():
        out[same] = previous.vectors[old_rows[same]]
    return ~same


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
