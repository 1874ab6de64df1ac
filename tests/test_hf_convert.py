"""transformers CLIPModel checkpoints in and out: converted models embed as transformers' own, both ways.

No hub is reachable here, so the checkpoints are small random-weight CLIPModels written with
`save_pretrained`; every weight is perturbed, so a swapped or mis-oriented tensor shows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

from modaclip.core.errors import ModaclipError
from modaclip.model.clip_model import ClipBundle, create_base_model, load_model, save_model
from modaclip.model.clip_tokenizer import ClipTokenizer
from modaclip.model.export import export_transformers
from modaclip.model.hf_convert import HF_WEIGHTS

TEXTS = ["a photo of a red summer dress", "black leather shoes", "blue jeans for men and women, slim fit"]
TOLERANCE = 1e-4


def small_clip_config(act: str, image_size: int = 32) -> CLIPConfig:
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    vision = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3)
    return CLIPConfig(
        text_config={**text, "max_position_embeddings": 24, "hidden_act": act},
        vision_config={**vision, "image_size": image_size, "patch_size": 8, "hidden_act": act},
        projection_dim=24,
    )


def save_random_clip(folder: Path, config: CLIPConfig, seed: int = 0) -> Path:
    """A CLIPModel with every weight perturbed (norms too), saved with its image processor."""
    torch.manual_seed(seed)
    model = CLIPModel(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    model.save_pretrained(folder)
    side = config.vision_config.image_size
    CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side}).save_pretrained(folder)
    return folder


@torch.no_grad()
def transformers_features(model: CLIPModel, pixels: torch.Tensor, tokens: torch.Tensor) -> tuple[np.ndarray, ...]:
    def normalised(output: object) -> np.ndarray:
        features = output if isinstance(output, torch.Tensor) else output.pooler_output  # transformers 4 / 5
        return torch.nn.functional.normalize(features, dim=-1).numpy()

    model.eval()
    return normalised(model.get_image_features(pixel_values=pixels)), normalised(model.get_text_features(tokens))


@torch.no_grad()
def open_clip_features(bundle: ClipBundle, pixels: torch.Tensor, tokens: torch.Tensor) -> tuple[np.ndarray, ...]:
    bundle.model.eval()
    image = bundle.model.encode_image(pixels, normalize=True).numpy()
    return image, bundle.model.encode_text(tokens, normalize=True).numpy()


def assert_same_embeddings(bundle: ClipBundle, model: CLIPModel) -> None:
    side = bundle.model.visual.image_size[0]
    pixels = torch.randn(3, 3, side, side, generator=torch.Generator().manual_seed(1))
    tokens = bundle.tokenizer(TEXTS)
    ours, theirs = open_clip_features(bundle, pixels, tokens), transformers_features(model, pixels, tokens)
    for name, a, b in zip(("image", "text"), ours, theirs):
        assert np.abs(a - b).max() <= TOLERANCE, f"{name} embeddings differ by {np.abs(a - b).max():.2e}"


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_a_transformers_checkpoint_becomes_an_open_clip_model_embedding_the_same(tmp_path: Path, act: str) -> None:
    folder = save_random_clip(tmp_path / "hf", small_clip_config(act))
    bundle = create_base_model("modaclip-tiny", str(folder), seed=0)  # arch is the checkpoint's, not this one
    assert bundle.model_cfg["quick_gelu"] is (act == "quick_gelu")
    assert_same_embeddings(bundle, CLIPModel.from_pretrained(folder))
    assert bundle.meta["pretrained"] == str(folder)


def test_token_ids_and_pixels_match_transformers_processing(tmp_path: Path) -> None:
    folder = save_random_clip(tmp_path / "hf", small_clip_config("gelu"))
    bundle = create_base_model("none", str(folder), seed=0)
    export_transformers(folder_of(bundle, tmp_path), tmp_path / "out")
    processor = CLIPProcessor.from_pretrained(tmp_path / "out")
    ids = processor.tokenizer(TEXTS, padding="max_length", truncation=True, return_tensors="np")["input_ids"]
    np.testing.assert_array_equal(ids, bundle.tokenizer(TEXTS).numpy())
    np.testing.assert_array_equal(ids, ClipTokenizer.default(24)(TEXTS))
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8))
    theirs = processor.image_processor(photo, return_tensors="pt")["pixel_values"][0]
    # transformers' default image processor resizes with torchvision's tensor kernels, open_clip with PIL's
    assert (theirs - bundle.preprocess(photo)).abs().mean() < 0.02


def folder_of(bundle: ClipBundle, tmp_path: Path) -> Path:
    save_model(bundle, tmp_path / "saved")
    return tmp_path / "saved"


def test_a_converted_model_saves_and_loads_back_identically(tmp_path: Path) -> None:
    folder = save_random_clip(tmp_path / "hf", small_clip_config("quick_gelu"))
    bundle = create_base_model("none", str(folder), seed=0)
    loaded = load_model(folder_of(bundle, tmp_path))
    assert loaded.model.visual.preprocess_cfg["interpolation"] == "bicubic"
    pixels, tokens = torch.randn(2, 3, 32, 32), bundle.tokenizer(TEXTS)
    for a, b in zip(open_clip_features(bundle, pixels, tokens), open_clip_features(loaded, pixels, tokens)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("source", ["modaclip-tiny", "transformers"])
def test_export_hf_loads_in_transformers_with_the_same_embeddings(tmp_path: Path, source: str) -> None:
    if source == "transformers":
        bundle = create_base_model("none", str(save_random_clip(tmp_path / "hf", small_clip_config("gelu"))), 0)
    else:
        bundle = create_base_model(source, "none", seed=3)
    export_transformers(folder_of(bundle, tmp_path), tmp_path / "out")
    assert_same_embeddings(bundle, CLIPModel.from_pretrained(tmp_path / "out"))
    card = (tmp_path / "out" / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: transformers" in card


def test_a_checkpoint_without_projections_is_refused_naming_them(tmp_path: Path) -> None:
    folder = save_random_clip(tmp_path / "hf", small_clip_config("gelu"))
    weights = load_file(str(folder / HF_WEIGHTS))
    del weights["text_projection.weight"], weights["visual_projection.weight"]
    save_file(weights, str(folder / HF_WEIGHTS))
    with pytest.raises(ModaclipError, match=r"no projection .*text_projection\.weight"):
        create_base_model("none", str(folder), seed=0)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(model_type="siglip"), "only CLIPModel"),
        (lambda c: c["vision_config"].update(hidden_act="gelu"), "one activation for both towers"),
        (lambda c: c["text_config"].update(hidden_act="relu"), "hidden_act 'relu'"),
        (lambda c: c["text_config"].update(layer_norm_eps=1e-6), "text_config.layer_norm_eps"),
        (lambda c: c["text_config"].update(vocab_size=32000), "not CLIP's 49408-token BPE"),
    ],
)
def test_configs_open_clip_cannot_match_are_refused_naming_the_key(tmp_path: Path, edit, message: str) -> None:
    folder = save_random_clip(tmp_path / "hf", small_clip_config("quick_gelu"))
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModaclipError, match=message):
        create_base_model("none", str(folder), seed=0)


def test_preprocessing_open_clip_cannot_match_is_refused(tmp_path: Path) -> None:
    folder = save_random_clip(tmp_path / "hf", small_clip_config("gelu"))
    CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    with pytest.raises(ModaclipError, match="size 40 and crop_size 32"):
        create_base_model("none", str(folder), seed=0)


def test_a_hub_id_offline_fails_in_one_line_saying_how_to_pass_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModaclipError, match="Hub cannot be reached") as caught:
        create_base_model("none", "hf:patrickjohncyh/fashion-clip", seed=0)
    assert "\n" not in str(caught.value) and "set model.pretrained to DIR" in str(caught.value)


@pytest.mark.slow
def test_a_vit_b_32_shaped_checkpoint_converts_exactly(tmp_path: Path) -> None:
    """OpenAI's ViT-B/32 layout (transformers' CLIPConfig defaults: 224 px, patch 32, 12+12 layers, 512-d)."""
    folder = save_random_clip(tmp_path / "hf", CLIPConfig())
    bundle = create_base_model("none", str(folder), seed=0)
    assert bundle.model_cfg["vision_cfg"] == {
        "image_size": 224,
        "patch_size": 32,
        "width": 768,
        "layers": 12,
        "head_width": 64,
        "mlp_ratio": 4.0,
    }
    assert_same_embeddings(bundle, CLIPModel.from_pretrained(folder))


def test_sharded_weights_convert_and_other_weight_files_are_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    torch.manual_seed(0)
    model = CLIPModel(small_clip_config("gelu"))
    model.save_pretrained(folder, max_shard_size="1MB")
    assert (folder / "model.safetensors.index.json").is_file()
    save_file({"unrelated": torch.zeros(1)}, str(folder / "open_clip_model.safetensors"))  # as some Hub repos have
    assert_same_embeddings(create_base_model("none", str(folder), seed=0), model)
