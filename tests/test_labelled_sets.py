import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, TEST_ARCH
from PIL import Image
from test_idx import idx_bytes

from modaclip.core.errors import ModaclipError
from modaclip.evaluate.evaluation import classify_labelled_set
from modaclip.evaluate.labelled_sets import FMNIST_CLASSES, FMNIST_IMAGES, FMNIST_LABELS, open_labelled_sets
from modaclip.model.clip_model import create_base_model, decode_image

REAL_FMNIST = SHARED_DATA / "fashion-mnist"


def write_fmnist(folder: Path, labels: list[int], compress: bool = True) -> Path:
    """A Fashion-MNIST-layout folder: image i is a 28x28 grey square of brightness 20 * label."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.stack([np.full((28, 28), 20 * label, dtype=np.uint8) for label in labels])
    for stem, array, code in ((FMNIST_IMAGES, images, 0x08), (FMNIST_LABELS, np.array(labels, np.uint8), 0x08)):
        data = idx_bytes(array, code)
        (folder / (f"{stem}.gz" if compress else stem)).write_bytes(gzip.compress(data) if compress else data)
    return folder


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
def test_fmnist_folder_gives_rgb_images_and_labels_in_order(tmp_path: Path, compress: bool) -> None:
    labels = [9, 0, 3, 3]
    (fmnist,) = open_labelled_sets([f"fmnist:{write_fmnist(tmp_path / 'fm', labels, compress)}"])
    assert fmnist.name == "fmnist" and fmnist.class_names == list(FMNIST_CLASSES)
    assert fmnist.class_names[0] == "T-shirt/top" and fmnist.class_names[9] == "Ankle boot"
    assert fmnist.labels.tolist() == labels
    first = decode_image(fmnist.images[0])
    assert first.mode == "RGB" and first.size == (28, 28)
    assert Image.open(io.BytesIO(fmnist.images[0])).mode == "RGB"
    assert first.getpixel((5, 5)) == (180, 180, 180)


def test_limit_takes_a_reproducible_subset(tmp_path: Path) -> None:
    spec = f"fmnist:{write_fmnist(tmp_path / 'fm', list(range(10)) * 3)}"
    (a,), (b,) = open_labelled_sets([spec], limit=7), open_labelled_sets([spec], limit=7)
    assert len(a.images) == 7 and a.labels.tolist() == b.labels.tolist()


def test_image_folder_classes_are_sub_folders(tmp_path: Path) -> None:
    for name, colour in (("Shoes", "red"), ("Tops", "blue")):
        (tmp_path / "shop" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), colour).save(tmp_path / "shop" / name / f"{i}.png")
    (tmp_path / "shop" / "Tops" / "notes.txt").write_text("not an image")
    (shop,) = open_labelled_sets([f"imagefolder:{tmp_path / 'shop'}"])
    assert shop.name == "shop" and shop.class_names == ["Shoes", "Tops"]
    assert shop.labels.tolist() == [0, 0, 1, 1]
    assert decode_image(shop.images[3]).getpixel((0, 0)) == (0, 0, 255)


def test_image_folder_with_one_class_is_refused(tmp_path: Path) -> None:
    (tmp_path / "one" / "Tops").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "one" / "Tops" / "a.png")
    with pytest.raises(ModaclipError, match="at least two class sub-folders"):
        open_labelled_sets([f"imagefolder:{tmp_path / 'one'}"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fmnist:/no/such/folder", r"evaluate.zero_shot_sets\[0\]: folder /no/such/folder not found"),
        ("mnist:/tmp", "unknown scheme 'mnist'"),
        ("fmnist", "is not <scheme>:<folder>"),
    ],
)
def test_bad_specs_stop_with_the_parameter_named(spec: str, message: str) -> None:
    with pytest.raises(ModaclipError, match=message):
        open_labelled_sets([spec])


def test_fmnist_folder_without_the_files(tmp_path: Path) -> None:
    with pytest.raises(ModaclipError, match="t10k-images-idx3-ubyte"):
        open_labelled_sets([f"fmnist:{tmp_path}"])


def test_two_sets_with_one_name_are_refused(tmp_path: Path) -> None:
    folder = write_fmnist(tmp_path / "fm", [1, 2])
    with pytest.raises(ModaclipError, match=r"zero_shot_sets\[1\]: a second set named 'fmnist'"):
        open_labelled_sets([f"fmnist:{folder}", f"fmnist:{folder}"])


@pytest.mark.skipif(
    not REAL_FMNIST.is_dir(),
    reason=f"real Fashion-MNIST files not here ({REAL_FMNIST}); a user's clone has no ../shared/data",
)
def test_real_fashion_mnist_zero_shot_with_a_tiny_model() -> None:
    (fmnist,) = open_labelled_sets([f"fmnist:{REAL_FMNIST}"], limit=200)
    assert len(fmnist.images) == 200 and fmnist.labels.shape == (200,)
    assert set(fmnist.labels.tolist()) <= set(range(10)) and len(set(fmnist.labels.tolist())) >= 8
    assert decode_image(fmnist.images[0]).size == (28, 28)
    metrics = classify_labelled_set(create_base_model(TEST_ARCH, "none", seed=0), fmnist, ["a photo of a {label}"])
    assert set(metrics) == {"accuracy", "weighted_f1"}
    assert 0.0 <= metrics["weighted_f1"] <= 1.0 and 0.0 <= metrics["accuracy"] <= 1.0
