"""Write an open_clip model's towers as ONNX graphs with their settings (the folder model/onnx_runtime.py reads).

The graphs come from torch's TorchScript-based exporter (`dynamo=False`): it exported the
modaclip-micro text tower in 1 s where the torch.export-based one took 12 s on the 2-core
development machine, and the embed stage exports on every run. Before a folder is kept, both
graphs run in onnxruntime on probe inputs and must give torch's embeddings within 1e-4, and the
light tokenizer and numpy preprocessing must give the model's own token ids and pixels.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from open_clip.model import get_model_preprocess_cfg
from PIL import Image

from modaclip.core.errors import ModaclipError
from modaclip.model.clip_model import ClipBundle
from modaclip.model.clip_tokenizer import TOKENIZER_FILE, ClipTokenizer
from modaclip.model.image_input import pixels
from modaclip.model.onnx_runtime import IMAGE_GRAPH, TEXT_GRAPH, TOWERS_CONFIG, TOWERS_FORMAT, OnnxEmbedder
from modaclip.model.towers import ImageTower, TextTower

OPSET = 17
TOLERANCE = 1e-4
PROBE_TEXTS = [
    "a photo of a red summer dress",
    "Women\u2019s &amp; men's SHOES, size 42",  # a curly apostrophe and an HTML entity
    "café crème ﬁne-knit cardigan",
    "",
]


def export_towers(bundle: ClipBundle, directory: Path, model_sha256: str) -> None:
    """Write both towers, tokenizer.json and towers.json into `directory` (an existing folder, usually a temp one)."""
    context_length = int(bundle.model_cfg["text_cfg"].get("context_length", 77))
    image_cfg = _image_settings(bundle)
    tokenizer = ClipTokenizer.default(context_length)
    _check_tokenizer(bundle, tokenizer)
    model = copy.deepcopy(bundle.model).cpu().float().eval()
    text_tower, image_tower = TextTower(model), ImageTower(model)
    tokens = torch.from_numpy(tokenizer(PROBE_TEXTS))
    images = [_probe_image(image_cfg["size"], seed) for seed in range(2)]
    probe_pixels = torch.from_numpy(np.stack([_pixels(image, image_cfg) for image in images]))
    text_axes = {0: "batch", 1: "length"} if text_tower.unpadded else {0: "batch"}
    _export(text_tower, tokens, directory / TEXT_GRAPH, name="tokens", axes=text_axes)
    _export(image_tower, probe_pixels, directory / IMAGE_GRAPH, name="pixels", axes={0: "batch"})
    tokenizer.save(directory / TOKENIZER_FILE)
    settings = {
        "format": TOWERS_FORMAT,
        "embed_dim": int(bundle.model_cfg["embed_dim"]),
        "context_length": context_length,
        "text_cuts_padding": text_tower.unpadded,
        "text_clean": "ftfy.fix_text, html.unescape twice, whitespace collapsed, lower case (open_clip's 'lower')",
        "image": image_cfg,
        "logit_scale": float(model.logit_scale.detach().exp()),  # zero-shot probabilities: softmax(scale * cosine)
        "model_sha256": model_sha256,
    }
    (directory / TOWERS_CONFIG).write_text(json.dumps(settings, indent=2))
    with torch.inference_mode():
        text_expected = model.encode_text(tokens, normalize=True).numpy()  # open_clip's own, on padded tokens
        expected = {"text": text_expected, "image": model.encode_image(probe_pixels, normalize=True).numpy()}
    _check_graphs(OnnxEmbedder(directory), [_png(image) for image in images], expected)


def _image_settings(bundle: ClipBundle) -> dict[str, Any]:
    """The model's evaluation preprocessing, if `image_input.pixels` does the same; else an error saying why not."""
    cfg = get_model_preprocess_cfg(bundle.model)
    size = cfg.get("size", 224)
    side = size if isinstance(size, int) else size[0]
    if cfg.get("resize_mode", "shortest") != "shortest" or (not isinstance(size, int) and size[0] != size[-1]):
        raise ModaclipError(f"ONNX export: preprocessing {cfg} (only a square crop of the resized shorter side)")
    settings = {
        "size": side,
        "mean": [float(v) for v in cfg["mean"]],
        "std": [float(v) for v in cfg["std"]],
        "interpolation": cfg.get("interpolation", "bicubic"),
    }
    image = _probe_image(side, seed=2)
    if not np.allclose(_pixels(image, settings), bundle.preprocess(image).numpy(), atol=1e-5):
        raise ModaclipError("ONNX export: the model's preprocessing differs from resize, centre crop and normalise")
    return settings


def _check_tokenizer(bundle: ClipBundle, tokenizer: ClipTokenizer) -> None:
    if not np.array_equal(tokenizer(PROBE_TEXTS), np.asarray(bundle.tokenizer(PROBE_TEXTS))):
        raise ModaclipError("ONNX export: the model's tokenizer is not CLIP's BPE (the light tokenizer's)")


def _probe_image(side: int, seed: int) -> Image.Image:
    """Random pixels, wider than tall and not a multiple of the side: resizing and cropping both act."""
    shape = (side + 3 + seed, 2 * side + 5, 3)
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


def _pixels(image: Image.Image, settings: dict[str, Any]) -> np.ndarray:
    return pixels(
        image, settings["size"], mean=settings["mean"], std=settings["std"], interpolation=settings["interpolation"]
    )


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _export(tower: torch.nn.Module, example: torch.Tensor, path: Path, *, name: str, axes: dict[int, str]) -> None:
    # With autograd on (and weights that require grad), attention is traced as its plain operators; without,
    # torch takes its fused inference kernel, which has no ONNX form.
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice and tracer hints; the graph is checked
        torch.onnx.export(
            tower,
            (example,),
            str(path),
            input_names=[name],
            output_names=["embeddings"],
            dynamic_axes={name: axes, "embeddings": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def _check_graphs(embedder: OnnxEmbedder, images: list[bytes], expected: dict[str, np.ndarray]) -> None:
    """onnxruntime's embeddings of the probes, all at once and one alone, must be torch's within TOLERANCE."""
    for name, got, want in [
        ("text", embedder.embed_texts(PROBE_TEXTS), expected["text"]),
        ("text", embedder.embed_texts(PROBE_TEXTS[:1]), expected["text"][:1]),
        ("image", embedder.embed_images(images), expected["image"]),
        ("image", embedder.embed_images(images[:1]), expected["image"][:1]),
    ]:
        difference = float(np.abs(got - want).max())
        if difference > TOLERANCE:
            raise ModaclipError(f"ONNX export: the {name} graph differs from torch by {difference:.1e}")
