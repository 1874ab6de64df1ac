"""Embed a clean catalog with a saved model, streaming vectors to disk so memory stays bounded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from modaclip.atomic import atomic_directory
from modaclip.catalog_io import iter_chunks, part_files
from modaclip.clip_model import encode_images, load_model, resolve_device, weights_fingerprint
from modaclip.config import EmbedParams
from modaclip.errors import ModaclipError

VECTORS_FILE = "vectors.npy"
IDS_FILE = "ids.npy"
META_FILE = "meta.json"


def embed_catalog(model_dir: str | Path, clean_dir: str | Path, out_dir: str | Path, params: EmbedParams) -> dict[str, Any]:
    """Write ids.npy, vectors.npy (L2-normalised float32, row i belongs to ids[i]) and meta.json."""
    bundle = load_model(model_dir, device=str(resolve_device("auto")))
    total = sum(pq.read_metadata(path).num_rows for path in part_files(clean_dir))
    dim = int(bundle.model_cfg["embed_dim"])
    with atomic_directory(out_dir) as tmp:
        vectors = np.lib.format.open_memmap(tmp / VECTORS_FILE, mode="w+", dtype=np.float32, shape=(total, dim))
        ids = np.empty(total, dtype=np.int64)
        row = 0
        with tqdm(total=total, desc="embedding catalog", unit="img") as bar:
            for chunk in iter_chunks(clean_dir, columns=["id", "image"]):
                for start in range(0, len(chunk), params.batch_size * 8):
                    part = chunk.iloc[start : start + params.batch_size * 8]
                    vecs = encode_images(bundle, part["image"].tolist(), params.batch_size, params.num_workers)
                    vectors[row : row + len(part)] = vecs
                    ids[row : row + len(part)] = part["id"].to_numpy()
                    row += len(part)
                    bar.update(len(part))
        vectors.flush()
        del vectors
        np.save(tmp / IDS_FILE, ids)
        meta = {"count": total, "dim": dim, "model_sha256": weights_fingerprint(model_dir)}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    return meta


def load_embeddings(directory: str | Path, model_dir: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(ids, vectors, meta) of an embeddings folder made with the model in `model_dir`.

    Vectors are memory-mapped, not read into RAM. Vectors of another model would give silently
    wrong results, so a mismatch is an error.
    """
    directory = Path(directory)
    try:
        ids = np.load(directory / IDS_FILE)
        vectors = np.load(directory / VECTORS_FILE, mmap_mode="r")
        meta = json.loads((directory / META_FILE).read_text())
    except FileNotFoundError as err:
        raise ModaclipError(f"{directory}: no embeddings ({Path(err.filename).name} missing); run `dvc repro embed`") from None
    if meta.get("model_sha256") != weights_fingerprint(model_dir):
        raise ModaclipError(f"{directory} was embedded with another model than {model_dir}; run `dvc repro embed`")
    return ids, vectors, meta
