"""ONNX towers: onnxruntime embeds as torch does, numpy preprocessing is open_clip's, and embed writes them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TEST_ARCH
from open_clip.tokenizer import SimpleTokenizer
from PIL import Image

from modaclip.core.config import EmbedParams
from modaclip.core.errors import ModaclipError
from modaclip.embed.embedding import embed_catalog
from modaclip.embed.stored import TOWERS_DIR, read_embeddings
from modaclip.model.clip_model import ClipBundle, create_base_model, encode_images, encode_texts, save_model
from modaclip.model.image_input import pixels
from modaclip.model.onnx_export import export_towers
from modaclip.model.onnx_runtime import TOWERS_CONFIG, OnnxEmbedder
from modaclip.model.towers import TextTower

QUERIES = ["red dress", "a photo of a women black casual leather handbag", "", "Women\u2019s &amp; MEN'S shoes"]


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bundle() -> ClipBundle:
    return create_base_model(TEST_ARCH, "none", seed=5)


@pytest.fixture(scope="module")
def towers(bundle: ClipBundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("towers")
    export_towers(bundle, directory, "sha")
    return directory


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("size", [(90, 40), (40, 90), (32, 32), (33, 200)])
def test_numpy_preprocessing_equals_open_clips(size: tuple[int, int], interpolation: str) -> None:
    from open_clip.transform import PreprocessCfg, image_transform_v2

    cfg = PreprocessCfg(size=32, interpolation=interpolation)
    image = photo(*size)
    expected = image_transform_v2(cfg, is_train=False)(image).numpy()
    np.testing.assert_allclose(
        pixels(image, 32, mean=cfg.mean, std=cfg.std, interpolation=interpolation), expected, atol=1e-6
    )


def test_the_unpadded_text_tower_equals_encode_text(bundle: ClipBundle) -> None:
    tokens = bundle.tokenizer(QUERIES)
    length = int(tokens.argmax(dim=-1).max()) + 1
    tower = TextTower(bundle.model.eval())
    assert tower.unpadded
    with torch.no_grad():
        np.testing.assert_allclose(tower(tokens[:, :length]), encode_texts(bundle, QUERIES), atol=1e-5)


def test_onnxruntime_embeds_texts_and_images_as_torch_does(bundle: ClipBundle, towers: Path) -> None:
    embedder = OnnxEmbedder(towers)
    for texts in (QUERIES, QUERIES[:1], [" ".join(["long"] * 60)]):  # several lengths, one batch cut at the context
        assert np.abs(embedder.embed_texts(texts) - encode_texts(bundle, texts)).max() <= 1e-4
    images = [png(photo(70, 50, seed)) for seed in range(3)]
    assert np.abs(embedder.embed_images(images) - encode_images(bundle, images)).max() <= 1e-4
    assert embedder.embed_texts([]).shape == (0, bundle.model_cfg["embed_dim"])


def test_the_towers_settings_say_what_a_runtime_needs(towers: Path, bundle: ClipBundle) -> None:
    settings = json.loads((towers / TOWERS_CONFIG).read_text())
    assert settings["context_length"] == bundle.model_cfg["text_cfg"]["context_length"]
    assert settings["image"]["size"] == bundle.model_cfg["vision_cfg"]["image_size"]
    assert settings["model_sha256"] == "sha" and settings["text_cuts_padding"] is True


def test_a_model_with_another_tokenizer_is_not_exported(bundle: ClipBundle, tmp_path: Path) -> None:
    other = ClipBundle(
        bundle.model,
        preprocess_train=bundle.preprocess_train,
        preprocess=bundle.preprocess,
        tokenizer=SimpleTokenizer(context_length=24, clean="canonicalize"),  # drops punctuation: other ids
        model_cfg=bundle.model_cfg,
    )
    with pytest.raises(ModaclipError, match="tokenizer"):
        export_towers(other, tmp_path, "sha")


def test_embed_writes_the_towers_and_reuses_them_for_the_same_model(tmp_path: Path, clean_dir: Path) -> None:
    save_model(create_base_model(TEST_ARCH, "none", seed=0), tmp_path / "model")
    params = EmbedParams(batch_size=64)
    first = embed_catalog(tmp_path / "model", clean_dir, tmp_path / "emb", params, towers=True)
    assert first["onnx"] == "exported"
    embedder = OnnxEmbedder(tmp_path / "emb" / TOWERS_DIR)
    assert embedder.model_sha256 == read_embeddings(tmp_path / "emb").meta["model_sha256"]
    again = embed_catalog(tmp_path / "model", clean_dir, tmp_path / "emb", params, towers=True)
    assert again["onnx"] == "reused" and again["reused"] == again["count"]
    assert (tmp_path / "emb" / TOWERS_DIR / "text_tower.onnx").is_file()
