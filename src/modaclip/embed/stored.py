"""An embeddings folder as stored: its files, reading it, and checking which model made it. numpy only, no torch.

An embeddings folder holds ids.npy, vectors.npy (L2-normalised float32, row i belongs to ids[i]),
image_keys.npy (a digest of each row's image bytes), meta.json, index.faiss, and the embed stage's
`onnx/` towers (model/onnx_runtime.py), which embed queries without torch. Search reads all of it
before it needs any model. meta.json records `made_with` (`vector_key`): what besides a product's
image bytes made its vector, so a later run reuses a vector only when all of it, and the image, are the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from modaclip.core.errors import ModaclipError
from modaclip.core.source_digest import source_digest
from modaclip.model.saved_model import OPEN_CLIP_CONFIG, weights_fingerprint

VECTORS_FILE = "vectors.npy"
IDS_FILE = "ids.npy"
KEYS_FILE = "image_keys.npy"
META_FILE = "meta.json"
TOWERS_DIR = "onnx"
# The project packages that decode, preprocess and encode an image into a vector (model/, embed/).
VECTOR_CODE = ("modaclip.model", "modaclip.embed")
VECTOR_LIBRARIES = ("open_clip_torch", "torch", "torchvision", "pillow")  # their transforms and decoders
# Each part of a vector key, as the log line names it when it differs.
KEY_PARTS = {
    "weights": "the model weights",
    "config": "the model config or preprocessing",
    "code": "the embedding code",
    "libraries": "the versions of open_clip, torch, torchvision or Pillow",
}


@dataclass(kw_only=True)
class Embeddings:
    """An embeddings folder, read: vectors memory-mapped, the rest in RAM."""

    ids: np.ndarray
    vectors: np.ndarray
    image_keys: np.ndarray
    meta: dict[str, Any]
    directory: Path


def image_key(data: bytes) -> int:
    """A 64-bit digest of an image's bytes: a product whose photo changed is embedded again."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


def vector_key(model_dir: str | Path) -> dict[str, str]:
    """What besides the image bytes makes a product's vector (KEY_PARTS): the weights, the saved model's
    config (architecture and preprocessing: size, mean, std, resize mode), the code and libraries that run them."""
    config = (Path(model_dir) / OPEN_CLIP_CONFIG).read_bytes()
    libraries = json.dumps({name: version(name) for name in VECTOR_LIBRARIES}, sort_keys=True)
    return {
        "weights": weights_fingerprint(model_dir),
        "config": hashlib.sha256(config).hexdigest(),
        "code": source_digest(VECTOR_CODE),
        "libraries": hashlib.sha256(libraries.encode()).hexdigest(),
    }


def key_changes(key: dict[str, str], recorded: dict[str, str]) -> list[str]:
    """What differs between two vector keys, in words; empty when vectors made under `recorded` can be reused."""
    return [KEY_PARTS[part] for part in KEY_PARTS if key.get(part) != recorded.get(part)]


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
        ) from err
    if vectors.shape != (len(ids), meta.get("dim")):
        raise ModaclipError(
            f"{directory}: {VECTORS_FILE} has shape {vectors.shape}, expected ({len(ids)}, {meta.get('dim')})"
        )
    return Embeddings(ids=ids, vectors=vectors, image_keys=keys, meta=meta, directory=directory)


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
            f"run `python stages/embed.py --model {model_dir} --data CATALOG --out DIR --params params.yaml` "
            "and pass --embeddings DIR"
        )
