"""Create, save and load open_clip models, and embed texts and images with them.

A saved model is a folder in open_clip's own `local-dir:` layout (model/saved_model.py). A base
model is an open_clip architecture, a saved folder, or a transformers CLIP checkpoint converted on
load (model/hf_convert.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from open_clip.model import set_model_preprocess_cfg
from open_clip.tokenizer import SimpleTokenizer
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image
from safetensors.torch import save as save_weights_bytes
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from modaclip.core.atomic import atomic_directory
from modaclip.core.errors import ModaclipError
from modaclip.model.hf_convert import OpenClipParts, checkpoint_folder, read_checkpoint
from modaclip.model.image_input import decode_image
from modaclip.model.saved_model import (
    META_FILE,
    OPEN_CLIP_CONFIG,
    WEIGHTS_FILE,
    is_saved_model,
    is_transformers_checkpoint,
    read_meta,
    saved_model_config,
)

log = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
PREPROCESS_KEYS = ("interpolation", "resize_mode")  # saved beside mean and std: a converted model's may differ

open_clip.add_model_config(MODEL_CONFIG_DIR)


@dataclass
class ClipBundle:
    """A model with the transforms and tokenizer that belong to it.

    Every bundle's model is built with open_clip's `output_dict=True`: a forward pass returns its
    outputs by name (`image_features`, `text_features`, `logit_scale`, `logit_bias` when it has one).
    """

    model: torch.nn.Module
    _: KW_ONLY
    preprocess_train: Callable[[Image.Image], torch.Tensor]
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[Sequence[str]], torch.Tensor]
    model_cfg: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def logit_scale(self) -> float:
        """exp of the learned temperature: CLIP's zero-shot probabilities are softmax(scale * cosine)."""
        return float(self.model.logit_scale.detach().exp())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """`encode_texts`, so a loaded model is a query `Embedder` (model/embedders.py) as its ONNX towers are."""
        return encode_texts(self, texts)

    def embed_images(self, images: Sequence[bytes]) -> np.ndarray:
        return encode_images(self, images)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModaclipError("train.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def create_base_model(arch: str, pretrained: str, seed: int) -> ClipBundle:
    """The start point of fine-tuning: `pretrained` is 'none', an open_clip tag, a weights file, a saved model
    folder, or a transformers CLIP checkpoint (its folder, or `hf:org/name` on the Hub).

    With 'none' the weights are the random initialisation drawn from `seed`, so the same call in
    another stage rebuilds the same base model. A saved folder or a checkpoint brings its own
    architecture, so `arch` is not used then.
    """
    if is_saved_model(pretrained):
        return load_model(pretrained)
    if is_transformers_checkpoint(pretrained):
        folder = checkpoint_folder(pretrained)
        log.info("converting the transformers CLIP checkpoint %s to open_clip (model.arch is not used)", folder)
        return bundle_from_parts(read_checkpoint(folder), {"arch": "transformers CLIPModel", "pretrained": pretrained})
    if arch not in open_clip.list_models() and not arch.startswith(("hf-hub:", "local-dir:")):
        raise ModaclipError(f"model.arch: unknown open_clip architecture {arch!r}")
    torch.manual_seed(seed)
    weights = None if pretrained == "none" else pretrained
    if weights is not None and not Path(weights).is_file():
        _check_pretrained_tag(arch, weights)
    try:
        model, preprocess_train, preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=weights, output_dict=True
        )
    except RuntimeError as err:
        log.debug("loading %s %s failed: %s", arch, pretrained, err)
        raise ModaclipError(
            f"model.pretrained: cannot get the {pretrained!r} weights of {arch!r} from the model hub "
            "(offline, or not cached). Download the checkpoint where the hub is reachable and set "
            "model.pretrained to the local file path."
        ) from err
    tokenizer = open_clip.get_tokenizer(arch)
    model_cfg = open_clip.get_model_config(arch) or {}
    meta = {"arch": arch, "pretrained": pretrained, "seed": seed}
    return ClipBundle(
        model,
        preprocess_train=preprocess_train,
        preprocess=preprocess,
        tokenizer=tokenizer,
        model_cfg=model_cfg,
        meta=meta,
    )


def bundle_from_parts(parts: OpenClipParts, meta: dict[str, Any]) -> ClipBundle:
    """An open_clip CLIP built from a config and weights, as open_clip's factory builds a plain ViT CLIP."""
    model = open_clip.CLIP(**parts.model_cfg, output_dict=True)
    try:
        model.load_state_dict(parts.state_dict, strict=True)
    except RuntimeError as err:
        raise ModaclipError(f"{meta.get('pretrained')}: the weights do not fit the converted config: {err}") from err
    set_model_preprocess_cfg(model, parts.preprocess_cfg)
    preprocess_cfg = PreprocessCfg(**parts.preprocess_cfg)
    tokenizer = SimpleTokenizer(context_length=parts.model_cfg["text_cfg"]["context_length"])
    return ClipBundle(
        model,
        preprocess_train=image_transform_v2(preprocess_cfg, is_train=True),
        preprocess=image_transform_v2(preprocess_cfg, is_train=False),
        tokenizer=tokenizer,
        model_cfg=parts.model_cfg,
        meta=meta,
    )


def ensure_logit_bias(bundle: ClipBundle, init: float = -10.0) -> bool:
    """Give a model without one a learned logit bias (the sigmoid loss needs it); True if one was added.

    open_clip's SigLIP architectures carry their own. Others get SigLIP's initial value, -10, and
    the saved config records it so the saved model loads back with the bias.
    """
    model = bundle.model
    if getattr(model, "logit_bias", None) is not None:
        return False
    if not hasattr(model, "logit_scale"):
        raise ModaclipError(f"train.loss siglip: {type(model).__name__} has no logit scale to pair a bias with")
    scale = model.logit_scale
    model.logit_bias = torch.nn.Parameter(torch.full(scale.shape, init, dtype=scale.dtype, device=scale.device))
    bundle.model_cfg = {**bundle.model_cfg, "init_logit_bias": init}
    return True


def _check_pretrained_tag(arch: str, tag: str) -> None:
    if arch.startswith("hf-hub:"):
        return
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag not in tags:
        known = ", ".join(tags) if tags else "none known"
        raise ModaclipError(
            f"model.pretrained: {tag!r} is neither a file nor an open_clip tag of {arch!r} (tags: {known})"
        )


def save_model(bundle: ClipBundle, directory: str | Path, meta: dict[str, Any] | None = None) -> None:
    """Write the model folder atomically: a failed save leaves no half-written model behind."""
    visual = bundle.model.visual
    preprocess_cfg = {"mean": list(visual.image_mean), "std": list(visual.image_std)}
    preprocess_cfg |= {k: v for k, v in getattr(visual, "preprocess_cfg", {}).items() if k in PREPROCESS_KEYS}
    config = {"model_cfg": bundle.model_cfg, "preprocess_cfg": preprocess_cfg}
    with atomic_directory(directory) as tmp:
        (tmp / OPEN_CLIP_CONFIG).write_text(json.dumps(config, indent=2))
        save_file(_weights(bundle), str(tmp / WEIGHTS_FILE))
        (tmp / META_FILE).write_text(json.dumps({**bundle.meta, **(meta or {})}, indent=2))


def _weights(bundle: ClipBundle) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in bundle.model.state_dict().items()}


def weights_digest(bundle: ClipBundle) -> str:
    """The `weights_fingerprint` the model would have once saved, computed without writing it."""
    return hashlib.sha256(save_weights_bytes(_weights(bundle))).hexdigest()


def load_model(directory: str | Path, device: str = "cpu") -> ClipBundle:
    """Load a folder written by `save_model`."""
    directory = Path(directory)
    model_cfg = saved_model_config(directory)
    try:
        model, preprocess_train, preprocess = open_clip.create_model_and_transforms(
            f"local-dir:{directory}", device=device, output_dict=True
        )
    except (RuntimeError, ValueError, OSError) as err:
        raise ModaclipError(f"{directory}: cannot load model: {err}") from err
    tokenizer = open_clip.get_tokenizer(f"local-dir:{directory}")
    model.eval()
    return ClipBundle(
        model,
        preprocess_train=preprocess_train,
        preprocess=preprocess,
        tokenizer=tokenizer,
        model_cfg=model_cfg,
        meta=read_meta(directory),
    )


class EncodedImages(Dataset):
    """Image bytes in, model-ready tensors out, so DataLoader workers can decode in parallel."""

    def __init__(self, images: Sequence[bytes], transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(decode_image(self.images[index]))


@torch.inference_mode()
def encode_images(
    bundle: ClipBundle,
    images: Sequence[bytes],
    batch_size: int = 256,
    num_workers: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """L2-normalised image embeddings, float32 [N, D]."""
    bundle.model.eval()
    loader = DataLoader(EncodedImages(images, bundle.preprocess), batch_size=batch_size, num_workers=num_workers)
    chunks = []
    with tqdm(total=len(images), desc="embedding images", unit="img", disable=not progress) as bar:
        for batch in loader:
            features = bundle.model.encode_image(batch.to(bundle.device), normalize=True)
            chunks.append(features.float().cpu().numpy())
            bar.update(len(batch))
    dim = bundle.model_cfg.get("embed_dim", 0)
    return np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)


@torch.inference_mode()
def encode_texts(bundle: ClipBundle, texts: Sequence[str], batch_size: int = 512) -> np.ndarray:
    """L2-normalised text embeddings, float32 [N, D]."""
    bundle.model.eval()
    chunks = []
    for start in range(0, len(texts), batch_size):
        tokens = bundle.tokenizer(list(texts[start : start + batch_size])).to(bundle.device)
        chunks.append(bundle.model.encode_text(tokens, normalize=True).float().cpu().numpy())
    dim = bundle.model_cfg.get("embed_dim", 0)
    return np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)
