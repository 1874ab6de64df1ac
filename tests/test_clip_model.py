import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from modaclip.core.catalog_io import read_catalog
from modaclip.core.errors import ModaclipError
from modaclip.model.clip_model import (
    ClipBundle,
    create_base_model,
    encode_images,
    encode_texts,
    load_model,
    save_model,
)


def test_same_seed_gives_the_same_random_base_model() -> None:
    a = create_base_model("modaclip-tiny", "none", seed=3)
    b = create_base_model("modaclip-tiny", "none", seed=3)
    c = create_base_model("modaclip-tiny", "none", seed=4)
    wa, wb, wc = (m.model.visual.conv1.weight for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)


def test_saved_model_loads_back_and_embeds_identically(tmp_path: Path, clean_dir: Path) -> None:
    images = read_catalog(clean_dir, ["image"])["image"].tolist()[:6]
    texts = ["a photo of a women red dresses", "black casual shoes"]
    bundle = moved_off_the_initialisation(create_base_model("modaclip-tiny", "none", seed=0))
    save_model(bundle, tmp_path / "model", {"note": "test"})
    loaded = load_model(tmp_path / "model")
    assert all(
        torch.equal(a, b) for a, b in zip(bundle.model.state_dict().values(), loaded.model.state_dict().values())
    )
    np.testing.assert_array_equal(encode_images(bundle, images), encode_images(loaded, images))
    np.testing.assert_array_equal(encode_texts(bundle, texts), encode_texts(loaded, texts))
    assert loaded.meta["note"] == "test" and loaded.meta["arch"] == "modaclip-tiny"
    vectors = encode_images(loaded, images)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def moved_off_the_initialisation(bundle: ClipBundle) -> ClipBundle:
    """Weights no fresh model has, so a load that silently falls back to a random init cannot pass for one."""
    with torch.no_grad():
        for param in bundle.model.parameters():
            param.add_(torch.randn_like(param, generator=torch.Generator().manual_seed(1)) * 0.01)
    return bundle


def test_saved_model_loads_with_plain_open_clip(tmp_path: Path) -> None:
    bundle = moved_off_the_initialisation(create_base_model("modaclip-micro", "none", seed=0))
    save_model(bundle, tmp_path / "model")
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'model'}")
    saved, loaded = bundle.model.state_dict(), model.state_dict()
    assert saved.keys() == loaded.keys()
    for name, value in saved.items():
        assert torch.equal(loaded[name], value), name


def test_saved_model_can_be_the_next_start_point(tmp_path: Path) -> None:
    bundle = create_base_model("modaclip-tiny", "none", seed=5)
    save_model(bundle, tmp_path / "model")
    again = create_base_model("modaclip-tiny", str(tmp_path / "model"), seed=0)
    assert torch.equal(again.model.visual.conv1.weight, bundle.model.visual.conv1.weight)


@pytest.mark.parametrize(
    ("arch", "pretrained", "message"),
    [
        ("no-such-arch", "none", "model.arch: unknown open_clip architecture"),
        ("modaclip-tiny", "/no/such/file.pt", "model.pretrained: '/no/such/file.pt' is neither a file nor"),
        ("ViT-B-32", "not-a-tag", "model.pretrained: 'not-a-tag' is neither a file nor an open_clip tag"),
    ],
)
def test_bad_model_params_are_named(arch: str, pretrained: str, message: str) -> None:
    with pytest.raises(ModaclipError, match=message):
        create_base_model(arch, pretrained, seed=0)


def test_not_a_saved_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModaclipError, match="not a saved model"):
        load_model(tmp_path)


def test_uncached_pretrained_tag_offline_fails_in_one_line(tmp_path: Path) -> None:
    code = (
        "from modaclip.model.clip_model import create_base_model\n"
        "from modaclip.core.stage_runner import run\n"
        "run(lambda: create_base_model('ViT-B-32', 'laion2b_s34b_b79k', 0), 'test')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "model.pretrained: cannot get the 'laion2b_s34b_b79k' weights of 'ViT-B-32'" in done.stderr
    assert "set model.pretrained to the local file path" in done.stderr
