"""Query embedders: text and image queries to vectors, with onnxruntime when the towers are there, else torch.

The embed stage writes the model's towers as ONNX beside the catalog vectors. With them a search
command loads neither torch nor open_clip (seconds of start-up, BENCHMARKS.md); without them, or
when they were exported from other weights, queries go through the saved model in torch, and the
reason is logged once per process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from modaclip.core.errors import ModaclipError
from modaclip.model.onnx_runtime import TOWERS_CONFIG, OnnxEmbedder, read_towers_config

if TYPE_CHECKING:
    from modaclip.model.clip_model import ClipBundle

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """L2-normalised float32 [N, D] embeddings of texts, and of encoded images (JPEG, PNG, ...).

    A loaded `ClipBundle` is one, as are `TorchEmbedder` (a saved model, loaded on first use) and
    `OnnxEmbedder` (its exported towers).
    """

    @property
    def logit_scale(self) -> float: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_images(self, images: Sequence[bytes]) -> np.ndarray: ...


class TorchEmbedder:
    """The saved model in torch, loaded on first use: a search by product id needs no model at all."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)
        self._bundle: ClipBundle | None = None

    @property
    def bundle(self) -> ClipBundle:
        if self._bundle is None:
            from modaclip.model.clip_model import load_model  # torch and open_clip: seconds, only when needed

            self._bundle = load_model(self.model_dir)
        return self._bundle

    @property
    def logit_scale(self) -> float:
        return self.bundle.logit_scale

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.bundle.embed_texts(texts)

    def embed_images(self, images: Sequence[bytes]) -> np.ndarray:
        return self.bundle.embed_images(images)


def open_embedder(model_dir: str | Path, towers_dir: str | Path, model_sha256: str) -> Embedder:
    """onnxruntime over `towers_dir` if it holds towers of these weights, else torch over `model_dir`."""
    problem = towers_problem(Path(towers_dir), model_sha256)
    if problem is None:
        return OnnxEmbedder(towers_dir)
    say_once(f"{problem}; embedding queries with torch, which takes seconds to load")
    return TorchEmbedder(model_dir)


def towers_problem(towers_dir: Path, model_sha256: str) -> str | None:
    """Why the towers in `towers_dir` cannot embed queries for the model with these weights; None if they can."""
    if not (towers_dir / TOWERS_CONFIG).is_file():
        return f"no ONNX towers in {towers_dir} (`dvc repro embed` writes them)"
    try:
        recorded = read_towers_config(towers_dir).get("model_sha256")
    except ModaclipError as err:
        return str(err)
    if recorded != model_sha256:
        return f"the ONNX towers in {towers_dir} were exported from other weights than the model's"
    return None


@cache
def say_once(message: str) -> None:
    log.warning(message)
