"""Which kind of model a folder or name is, a saved model's files, and the digest of its weights, without torch
(search and `--model` read them before any model loads).

A saved folder is open_clip's own `local-dir:` layout (open_clip_config.json and
open_clip_model.safetensors), so `open_clip.create_model_and_transforms("local-dir:models/finetuned")`
loads it without modaclip; `modaclip.json` beside them records where it came from. A transformers
checkpoint (converted by model/hf_convert.py) is a `save_pretrained` folder or `hf:org/name`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from modaclip.core.errors import ModaclipError

OPEN_CLIP_CONFIG = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
META_FILE = "modaclip.json"
HF_CONFIG = "config.json"  # transformers' save_pretrained
HUB_PREFIX = "hf:"


def is_saved_model(directory: str | Path) -> bool:
    return Path(directory, OPEN_CLIP_CONFIG).is_file()


def is_transformers_checkpoint(spec: str) -> bool:
    """`hf:org/name[@revision]`, or a folder written by transformers' `save_pretrained` (and not by modaclip)."""
    return spec.startswith(HUB_PREFIX) or (Path(spec, HF_CONFIG).is_file() and not is_saved_model(spec))


def saved_model_config(directory: str | Path) -> dict[str, Any]:
    """The open_clip model config of a folder written by `save_model` (its `embed_dim`, say), without loading it."""
    directory = Path(directory)
    config_path = directory / OPEN_CLIP_CONFIG
    if not config_path.is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise ModaclipError(f"{directory}: not a saved model (needs {OPEN_CLIP_CONFIG} and {WEIGHTS_FILE})")
    return json.loads(config_path.read_text())["model_cfg"]


def weights_fingerprint(directory: str | Path) -> str:
    """sha256 of a saved model's weights: embeddings record it so a mismatch with the loaded model is caught."""
    digest = hashlib.sha256()
    with open(Path(directory) / WEIGHTS_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_meta(directory: str | Path) -> dict[str, Any]:
    """What `modaclip.json` records (base model, seed, training run); empty for a folder written without it."""
    path = Path(directory) / META_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
