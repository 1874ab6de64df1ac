"""transformers `CLIPModel` checkpoints <-> open_clip CLIP models: configs, weights and preprocessing.

FashionCLIP 2.0 and OpenAI's CLIP are published as transformers checkpoints (config.json and
model.safetensors). Their architecture is open_clip's ViT CLIP with other tensor names: the same
pre-norm blocks, a class-token vision pool, an end-of-text text pool and bias-free projections, so
a checkpoint maps tensor for tensor, except that open_clip keeps each attention's q, k and v
projections as one stacked matrix. Reading and writing the files needs no transformers install;
tests/test_hf_convert.py proves both directions against transformers itself.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from modaclip.core.errors import ModaclipError
from modaclip.model.clip_tokenizer import VOCAB_SIZE, clip_vocabulary
from modaclip.model.saved_model import HF_CONFIG, HUB_PREFIX

log = logging.getLogger(__name__)

HF_WEIGHTS = "model.safetensors"
HF_WEIGHTS_INDEX = "model.safetensors.index.json"
HF_PICKLE = "pytorch_model.bin"
HF_PREPROCESSOR = "preprocessor_config.json"
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]
# transformers' CLIPTextConfig / CLIPVisionConfig defaults: what a config.json that leaves a key out means
TEXT_DEFAULTS = {
    "vocab_size": 49408,
    "hidden_size": 512,
    "intermediate_size": 2048,
    "num_hidden_layers": 12,
    "num_attention_heads": 8,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
VISION_DEFAULTS = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 32,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
QUICK_GELU = {"quick_gelu": True, "gelu": False}  # transformers' hidden_act -> open_clip's quick_gelu
RESAMPLE = {2: "bilinear", 3: "bicubic"}  # PIL resample codes in preprocessor_config.json -> open_clip interpolation
LAYER_NORM_EPS = 1e-5  # open_clip's LayerNorm
VISION_SIZES = {"image_size", "patch_size", "width", "layers", "head_width", "mlp_ratio", "patch_dropout"}
TEXT_SIZES = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"}
# open_clip options whose default (these values) is what CLIPModel computes; patch dropout acts in training only
VISION_NEUTRAL = {
    "pool_type": "tok",
    "attentional_pool": False,
    "no_ln_pre": False,
    "final_ln_after_pool": False,
    "pos_embed_type": "learnable",
    "ls_init_value": None,
    "output_tokens": False,
}
TEXT_NEUTRAL = {
    "pool_type": "argmax",
    "proj_bias": False,
    "no_causal_mask": False,
    "embed_cls": False,
    "pad_id": 0,
    "ls_init_value": None,
    "output_tokens": False,
    "final_ln_after_pool": False,
}
TRANSPOSED = ("text_projection", "visual.proj")  # open_clip multiplies by these; transformers' Linear stores W^T


@dataclass
class OpenClipParts:
    """What open_clip builds a model from: its config, its preprocessing config and its weights."""

    model_cfg: dict[str, Any]
    preprocess_cfg: dict[str, Any]
    state_dict: dict[str, torch.Tensor]


def checkpoint_folder(spec: str) -> Path:
    """The local folder of a checkpoint spec, downloading `hf:org/name[@revision]` from the Hub (or its cache)."""
    if not spec.startswith(HUB_PREFIX):
        return Path(spec)
    repo, _, revision = spec.removeprefix(HUB_PREFIX).partition("@")
    from huggingface_hub import snapshot_download  # only for a Hub id
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    patterns = ["*.json", "*.txt", HF_WEIGHTS, "model-*.safetensors"]
    try:
        folder = Path(snapshot_download(repo, revision=revision or None, allow_patterns=patterns))
        if not any(folder.glob("model*.safetensors")):  # older checkpoints hold only torch's pickle
            folder = Path(snapshot_download(repo, revision=revision or None, allow_patterns=[HF_PICKLE]))
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise ModaclipError(f"model.pretrained {spec}: no such repository or revision on the Hub") from err
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        log.debug("downloading %s failed: %s", repo, err)
        raise ModaclipError(
            f"model.pretrained {spec}: the Hugging Face Hub cannot be reached and {repo} is not in its local cache; "
            f"where it can be reached, run `hf download {repo} --local-dir DIR`, copy DIR here and set "
            "model.pretrained to DIR"
        ) from err
    return folder


def read_checkpoint(folder: Path) -> OpenClipParts:
    """A transformers CLIPModel folder as open_clip parts; anything that cannot map is an error naming it."""
    config = _read_json(folder / HF_CONFIG)
    if config.get("model_type") != "clip":
        raise ModaclipError(
            f"{folder}: a transformers {config.get('model_type')!r} checkpoint; only CLIPModel (model_type 'clip') "
            "converts (for SigLIP models use open_clip's hf-hub: names in model.arch)"
        )
    model_cfg = open_clip_config(config, folder)
    _check_vocabulary(folder, model_cfg["text_cfg"]["vocab_size"])
    preprocessor = _read_json(folder / HF_PREPROCESSOR) if (folder / HF_PREPROCESSOR).is_file() else {}
    preprocess_cfg = open_clip_preprocess(preprocessor, model_cfg["vision_cfg"]["image_size"], folder)
    state_dict = open_clip_weights(_read_weights(folder), model_cfg, folder)
    return OpenClipParts(model_cfg, preprocess_cfg, state_dict)


def write_checkpoint(parts: OpenClipParts, folder: Path) -> None:
    """config.json, model.safetensors and preprocessor_config.json of a transformers CLIPModel (not its tokenizer)."""
    (folder / HF_CONFIG).write_text(json.dumps(transformers_config(parts.model_cfg), indent=2))
    save_file(transformers_weights(parts.state_dict, parts.model_cfg), str(folder / HF_WEIGHTS), {"format": "pt"})
    (folder / HF_PREPROCESSOR).write_text(json.dumps(transformers_preprocess(parts.preprocess_cfg), indent=2))


def open_clip_config(config: dict[str, Any], where: Path) -> dict[str, Any]:
    """open_clip's model config (ViT CLIP) for a transformers CLIPConfig dict."""
    text = {**TEXT_DEFAULTS, **(config.get("text_config") or config.get("text_config_dict") or {})}
    vision = {**VISION_DEFAULTS, **(config.get("vision_config") or config.get("vision_config_dict") or {})}
    activations = {text["hidden_act"], vision["hidden_act"]}
    if len(activations) > 1 or not activations <= QUICK_GELU.keys():
        raise ModaclipError(
            f"{where}: hidden_act {text['hidden_act']!r} (text) and {vision['hidden_act']!r} (vision): open_clip needs "
            f"one activation for both towers, one of {sorted(QUICK_GELU)}"
        )
    for name, tower in (("text_config", text), ("vision_config", vision)):
        if tower["layer_norm_eps"] != LAYER_NORM_EPS:
            raise ModaclipError(f"{where}: {name}.layer_norm_eps {tower['layer_norm_eps']} (open_clip uses 1e-5)")
    if vision["num_channels"] != 3:
        raise ModaclipError(f"{where}: vision_config.num_channels {vision['num_channels']} (only RGB converts)")
    return {
        "embed_dim": config.get("projection_dim", 512),
        "quick_gelu": QUICK_GELU[text["hidden_act"]],
        "vision_cfg": {
            "image_size": vision["image_size"],
            "patch_size": vision["patch_size"],
            "width": vision["hidden_size"],
            "layers": vision["num_hidden_layers"],
            "head_width": vision["hidden_size"] // vision["num_attention_heads"],
            "mlp_ratio": vision["intermediate_size"] / vision["hidden_size"],
        },
        "text_cfg": {
            "context_length": text["max_position_embeddings"],
            "vocab_size": text["vocab_size"],
            "width": text["hidden_size"],
            "heads": text["num_attention_heads"],
            "layers": text["num_hidden_layers"],
            "mlp_ratio": text["intermediate_size"] / text["hidden_size"],
        },
    }


def check_convertible(model_cfg: dict[str, Any]) -> None:
    """An open_clip config whose model computes what CLIPModel computes; any other option is an error naming it."""
    allowed = {"embed_dim", "quick_gelu", "vision_cfg", "text_cfg", "init_logit_bias"}
    problems = [f"{key}={value!r}" for key, value in model_cfg.items() if key not in allowed and value]
    for tower, sizes, neutral in [
        ("vision_cfg", VISION_SIZES, VISION_NEUTRAL),
        ("text_cfg", TEXT_SIZES, TEXT_NEUTRAL),
    ]:
        for key, value in model_cfg[tower].items():
            if key not in sizes and neutral.get(key, object()) != value:
                problems.append(f"{tower}.{key}={value!r}")
    if problems:
        raise ModaclipError(f"transformers' CLIPModel has no equivalent of open_clip's {', '.join(problems)}")


def transformers_config(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """A transformers CLIPConfig dict for an open_clip ViT CLIP config; every key written, none left to defaults."""
    vision, text = model_cfg["vision_cfg"], model_cfg["text_cfg"]
    act = "quick_gelu" if model_cfg.get("quick_gelu") else "gelu"
    embed_dim = model_cfg["embed_dim"]
    vision_width = vision["width"]
    return {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": embed_dim,
        "logit_scale_init_value": 2.6592,
        "text_config": {
            "model_type": "clip_text_model",
            "vocab_size": text.get("vocab_size", 49408),
            "hidden_size": text["width"],
            "intermediate_size": int(text["width"] * text.get("mlp_ratio", 4.0)),
            "num_hidden_layers": text["layers"],
            "num_attention_heads": text["heads"],
            "max_position_embeddings": text.get("context_length", 77),
            "hidden_act": act,
            "layer_norm_eps": LAYER_NORM_EPS,
            "projection_dim": embed_dim,
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 0,
        },
        "vision_config": {
            "model_type": "clip_vision_model",
            "hidden_size": vision_width,
            "intermediate_size": int(vision_width * vision.get("mlp_ratio", 4.0)),
            "num_hidden_layers": vision["layers"],
            "num_attention_heads": vision_width // vision.get("head_width", 64),
            "num_channels": 3,
            "image_size": vision["image_size"],
            "patch_size": vision["patch_size"],
            "hidden_act": act,
            "layer_norm_eps": LAYER_NORM_EPS,
            "projection_dim": embed_dim,
        },
    }


def open_clip_preprocess(preprocessor: dict[str, Any], image_size: int, where: Path) -> dict[str, Any]:
    """open_clip's preprocess config for a CLIPImageProcessor dict (CLIP's defaults where it is missing)."""
    size = _side(preprocessor.get("size", {"shortest_edge": image_size}), "shortest_edge")
    crop = _side(preprocessor.get("crop_size", image_size), "height")
    problems = [
        f"{key} is {value!r}"
        for key, value, wanted in [
            ("do_resize", preprocessor.get("do_resize", True), True),
            ("do_center_crop", preprocessor.get("do_center_crop", True), True),
            ("do_rescale", preprocessor.get("do_rescale", True), True),
            ("do_normalize", preprocessor.get("do_normalize", True), True),
        ]
        if value != wanted
    ]
    if size != image_size or crop != image_size:
        problems.append(f"size {size} and crop_size {crop} differ from the image size {image_size}")
    resample = preprocessor.get("resample", 3)
    if resample not in RESAMPLE:
        problems.append(f"resample is {resample} (bilinear 2 or bicubic 3 convert)")
    if abs(preprocessor.get("rescale_factor", 1 / 255) - 1 / 255) > 1e-9:
        problems.append(f"rescale_factor is {preprocessor['rescale_factor']}")
    if problems:
        raise ModaclipError(
            f"{where / HF_PREPROCESSOR}: open_clip cannot preprocess the same way: {'; '.join(problems)}"
        )
    return {
        "size": image_size,
        "mean": list(preprocessor.get("image_mean", OPENAI_MEAN)),
        "std": list(preprocessor.get("image_std", OPENAI_STD)),
        "interpolation": RESAMPLE[resample],
        "resize_mode": "shortest",
    }


def transformers_preprocess(preprocess_cfg: dict[str, Any]) -> dict[str, Any]:
    """A CLIPImageProcessor dict for open_clip's preprocess config (shortest-side resize, centre crop)."""
    if preprocess_cfg.get("resize_mode", "shortest") != "shortest":
        raise ModaclipError(
            f"resize_mode {preprocess_cfg['resize_mode']!r}: transformers' CLIP resizes the shortest side"
        )
    size = preprocess_cfg["size"]
    side = size if isinstance(size, int) else size[0]
    resample = {name: code for code, name in RESAMPLE.items()}[preprocess_cfg.get("interpolation", "bicubic")]
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": side},
        "resample": resample,
        "do_center_crop": True,
        "crop_size": {"height": side, "width": side},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(preprocess_cfg["mean"]),
        "image_std": list(preprocess_cfg["std"]),
        "do_convert_rgb": True,
    }


def tensor_names(model_cfg: dict[str, Any]) -> dict[str, str]:
    """open_clip name -> transformers name of every tensor that maps one to one (all but q, k, v)."""
    names = {
        "logit_scale": "logit_scale",
        "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "positional_embedding": "text_model.embeddings.position_embedding.weight",
        "ln_final.weight": "text_model.final_layer_norm.weight",
        "ln_final.bias": "text_model.final_layer_norm.bias",
        "text_projection": "text_projection.weight",
        "visual.class_embedding": "vision_model.embeddings.class_embedding",
        "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
        "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
        "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
        "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
        "visual.ln_post.weight": "vision_model.post_layernorm.weight",
        "visual.ln_post.bias": "vision_model.post_layernorm.bias",
        "visual.proj": "visual_projection.weight",
    }
    for ours, theirs in _block_prefixes(model_cfg):
        for a, b in [("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("attn.out_proj", "self_attn.out_proj")]:
            names |= {f"{ours}.{a}.{p}": f"{theirs}.{b}.{p}" for p in ("weight", "bias")}
        for a, b in [("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")]:
            names |= {f"{ours}.{a}.{p}": f"{theirs}.{b}.{p}" for p in ("weight", "bias")}
    return names


def _block_prefixes(model_cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """(open_clip, transformers) name prefix of each transformer block, text tower then vision tower."""
    text = [
        (f"transformer.resblocks.{i}", f"text_model.encoder.layers.{i}") for i in range(model_cfg["text_cfg"]["layers"])
    ]
    vision = [
        (f"visual.transformer.resblocks.{i}", f"vision_model.encoder.layers.{i}")
        for i in range(model_cfg["vision_cfg"]["layers"])
    ]
    return text + vision


def open_clip_weights(
    weights: dict[str, torch.Tensor], model_cfg: dict[str, Any], where: Path
) -> dict[str, torch.Tensor]:
    """open_clip's state dict from transformers' CLIPModel weights; a missing or unused tensor is an error naming it."""
    weights = {k: v for k, v in weights.items() if not k.endswith("position_ids")}  # index buffers, not weights
    names = tensor_names(model_cfg)
    qkv = {
        f"{ours}.attn.in_proj_{p}": [f"{theirs}.self_attn.{x}_proj.{p}" for x in "qkv"]
        for ours, theirs in _block_prefixes(model_cfg)
        for p in ("weight", "bias")
    }
    needed = [*names.values(), *(name for group in qkv.values() for name in group)]
    missing = [name for name in needed if name not in weights]
    if missing:
        what = "no projection to the shared embedding space: " if "text_projection.weight" in missing else ""
        raise ModaclipError(
            f"{where}: {what}missing tensors {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    unused = sorted(set(weights) - set(needed))
    if unused:
        raise ModaclipError(f"{where}: tensors a CLIPModel does not have: {', '.join(unused[:5])}")
    state = {ours: _oriented(ours, weights[theirs]) for ours, theirs in names.items()}
    state |= {ours: torch.cat([weights[name] for name in group]) for ours, group in qkv.items()}
    return state


def transformers_weights(state: dict[str, torch.Tensor], model_cfg: dict[str, Any]) -> dict[str, torch.Tensor]:
    """transformers' CLIPModel weights from an open_clip ViT CLIP state dict (the inverse of `open_clip_weights`).

    A learned logit bias (sigmoid-loss training) has no place in CLIPModel and is left out: it
    shifts scores by a constant, so embeddings and rankings are unchanged.
    """
    check_convertible(model_cfg)
    names = tensor_names(model_cfg)
    stacked = {f"{ours}.attn.in_proj_{p}" for ours, _ in _block_prefixes(model_cfg) for p in ("weight", "bias")}
    missing = sorted((set(names) | stacked) - set(state))
    unused = sorted(set(state) - set(names) - stacked - {"logit_bias"})
    if missing or unused:
        raise ModaclipError(
            "not an open_clip ViT CLIP that transformers' CLIPModel can hold: "
            f"missing {', '.join(missing[:5]) or 'nothing'}; no place for {', '.join(unused[:5]) or 'nothing'}"
        )
    weights = {theirs: _oriented(ours, state[ours]).contiguous() for ours, theirs in names.items()}
    for ours, theirs in _block_prefixes(model_cfg):
        for p in ("weight", "bias"):
            for x, chunk in zip("qkv", state[f"{ours}.attn.in_proj_{p}"].chunk(3)):
                weights[f"{theirs}.self_attn.{x}_proj.{p}"] = chunk.contiguous()
    return weights


def _oriented(open_clip_name: str, tensor: torch.Tensor) -> torch.Tensor:
    return tensor.T if open_clip_name in TRANSPOSED else tensor


def _check_vocabulary(folder: Path, vocab_size: int) -> None:
    """The converted model tokenizes with CLIP's BPE (open_clip's), so the checkpoint must use that vocabulary."""
    vocab, _ = clip_vocabulary()
    theirs = _read_json(folder / "vocab.json") if (folder / "vocab.json").is_file() else None
    if vocab_size != VOCAB_SIZE or (theirs is not None and theirs != vocab):
        raise ModaclipError(
            f"{folder}: its tokenizer is not CLIP's {VOCAB_SIZE}-token BPE (text vocab_size {vocab_size}"
            f"{'' if theirs is None else ', vocab.json differs'}); only CLIP's vocabulary converts"
        )


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """model.safetensors, the shards its index lists, or (older checkpoints) pytorch_model.bin.

    Other files are not read: some Hub repos also hold open_clip's own weights beside transformers'.
    """
    index = folder / HF_WEIGHTS_INDEX
    if index.is_file():
        files = sorted({folder / name for name in _read_json(index)["weight_map"].values()})
    elif (folder / HF_WEIGHTS).is_file():
        files = [folder / HF_WEIGHTS]
    elif (folder / HF_PICKLE).is_file():
        return torch.load(folder / HF_PICKLE, map_location="cpu", weights_only=True)
    else:
        raise ModaclipError(f"{folder}: no weights ({HF_WEIGHTS}, {HF_WEIGHTS_INDEX} or {HF_PICKLE})")
    return {name: tensor for file in files for name, tensor in load_file(str(file)).items()}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModaclipError(f"{path}: cannot read ({err})") from err


def _side(size: int | dict[str, int], key: str) -> int:
    """A side length from preprocessor_config.json, which stores it as an int or as {key: int}."""
    return size if isinstance(size, int) else int(size.get(key, size.get("height", 0)))
