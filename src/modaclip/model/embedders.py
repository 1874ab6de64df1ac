"""Query embedders: text and image queries to vectors, with onnxruntime when the towers are there, else torch.

The embed stage writes the model's towers as ONNX beside the catalog vectors. With them a search
command loads neither torch nor open_clip (seconds of start-up:
BENCHMARKS.md#cold-modaclip-search-onnxruntime-vs-torch); without them, or when they were exported
from other weights, queries go through the saved model in torch, and the reason is logged once per
process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import cache, cached_property
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

    def __init__(self, model_dir: str | Path, threads: int = 0) -> None:
        self.model_dir = Path(model_dir)
        self.threads = threads  # 0: torch's default

    @cached_property
    def bundle(self) -> ClipBundle:
        import torch  # with open_clip: seconds to import, so only when a query needs the model

        from modaclip.model.clip_model import load_model

        if self.threads:
            torch.set_num_threads(self.threads)
        return load_model(self.model_dir)

    @cached_property
    def _texts(self) -> Callable[[Sequence[str]], np.ndarray]:
        from modaclip.model.towers import unpadded_text_encoder

        return unpadded_text_encoder(self.bundle)

    @property
    def logit_scale(self) -> float:
        return self.bundle.logit_scale

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """The text tower on each batch's tokens up to its last end-of-text (`towers.unpadded_text_encoder`)."""
        return self._texts(texts)

    def embed_images(self, images: Sequence[bytes]) -> np.ndarray:
        return self.bundle.embed_images(images)


def open_embedder(model_dir: str | Path, towers_dir: str | Path, model_sha256: str, threads: int = 0) -> Embedder:
    """onnxruntime over `towers_dir` if it holds towers of these weights, else torch over `model_dir`."""
    problem = towers_problem(Path(towers_dir), model_sha256)
    if problem is None:
        return OnnxEmbedder(towers_dir, threads)
    say_once(f"{problem}; embedding queries with torch, which takes seconds to load")
    return TorchEmbedder(model_dir, threads)


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
