"""Embed text and image queries with onnxruntime from an exported towers folder: no torch, no open_clip.

A towers folder (written by `model/onnx_export.py`: the embed stage puts one in each embeddings
folder, `modaclip export --format onnx` one in OUT):

    text_tower.onnx   tokens int64 [batch, length] -> embeddings float32 [batch, dim], L2-normalised
    image_tower.onnx  pixels float32 [batch, 3, size, size] -> embeddings float32 [batch, dim], L2-normalised
    tokenizer.json    CLIP's BPE for the `tokenizers` library, truncating and padding to the context length
    towers.json       the settings: context length, whether the text tower takes tokens cut after the
                      last end-of-text, image preprocessing, the logit scale, the weights' sha256
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from modaclip.core.errors import ModaclipError
from modaclip.model.clip_tokenizer import TOKENIZER_FILE, ClipTokenizer, cut_padding
from modaclip.model.image_input import decode_image, pixels

TEXT_GRAPH = "text_tower.onnx"
IMAGE_GRAPH = "image_tower.onnx"
TOWERS_CONFIG = "towers.json"
TOWERS_FORMAT = 1


def read_towers_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / TOWERS_CONFIG
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModaclipError(f"{path}: cannot read ONNX towers settings ({err})") from err
    if config.get("format") != TOWERS_FORMAT:
        raise ModaclipError(f"{path}: format {config.get('format')!r}, this modaclip reads {TOWERS_FORMAT}")
    return config


class OnnxEmbedder:
    """Text and image embeddings from a towers folder; each graph, and the tokenizer, loads on its first use."""

    def __init__(self, directory: str | Path, threads: int = 0) -> None:
        self.directory = Path(directory)
        self.config = read_towers_config(self.directory)
        self.threads = threads  # 0: onnxruntime's default, a thread per core
        self._sessions: dict[str, Any] = {}

    @cached_property
    def tokenizer(self) -> ClipTokenizer:
        return ClipTokenizer.from_file(self.directory / TOKENIZER_FILE, self.config["context_length"])

    @property
    def model_sha256(self) -> str:
        return self.config["model_sha256"]

    @property
    def logit_scale(self) -> float:
        """exp of the model's learned temperature: CLIP's zero-shot probabilities are softmax(scale * cosine)."""
        return float(self.config["logit_scale"])

    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """L2-normalised text embeddings, float32 [N, D]."""
        chunks = [np.zeros((0, self.config["embed_dim"]), np.float32)]
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(texts[start : start + batch_size])
            if self.config["text_cuts_padding"]:
                tokens = cut_padding(tokens)
            chunks.append(self._run(TEXT_GRAPH, tokens))
        return np.concatenate(chunks)

    def embed_images(self, images: Sequence[bytes], batch_size: int = 32) -> np.ndarray:
        """L2-normalised image embeddings of encoded images (JPEG, PNG, ...), float32 [N, D]."""
        cfg = self.config["image"]
        chunks = [np.zeros((0, self.config["embed_dim"]), np.float32)]
        for start in range(0, len(images), batch_size):
            batch = [
                pixels(
                    decode_image(data),
                    cfg["size"],
                    mean=cfg["mean"],
                    std=cfg["std"],
                    interpolation=cfg["interpolation"],
                )
                for data in images[start : start + batch_size]
            ]
            chunks.append(self._run(IMAGE_GRAPH, np.stack(batch)))
        return np.concatenate(chunks)

    def _run(self, graph: str, inputs: np.ndarray) -> np.ndarray:
        session = self._sessions.get(graph) or self._start(graph)
        return session.run(None, {session.get_inputs()[0].name: inputs})[0]

    def _start(self, graph: str) -> Any:
        import onnxruntime  # a tenth of a second, spent only when a query needs the model

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        self._sessions[graph] = onnxruntime.InferenceSession(
            str(self.directory / graph), options, providers=["CPUExecutionProvider"]
        )
        return self._sessions[graph]
