"""Labelled image sets from outside the training catalog, for zero-shot classification benchmarks.

`evaluate.zero_shot_sets` lists them as `<scheme>:<folder>`; each scheme is one loader function
and one line in `LOADERS`. Images come back as encoded bytes, the form `encode_images` takes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from modaclip.core.errors import ModaclipError
from modaclip.evaluate.mnist_idx import read_idx

# Fashion-MNIST's classes in label order (Zalando Research's README).
FMNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FMNIST_IMAGES = "t10k-images-idx3-ubyte"
FMNIST_LABELS = "t10k-labels-idx1-ubyte"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})


@dataclass(frozen=True, kw_only=True)
class LabelledImages:
    """One benchmark set: image i is encoded in images[i] and belongs to class_names[labels[i]]."""

    name: str
    source: str
    class_names: list[str]
    images: list[bytes]
    labels: np.ndarray

    def summary(self) -> dict[str, object]:
        return {"source": self.source, "images": len(self.images), "classes": len(self.class_names)}


def load_fmnist(folder: Path, limit: int | None) -> tuple[list[str], list[bytes], np.ndarray]:
    """The Fashion-MNIST test set from its original IDX files (`.gz` or not), greyscale turned RGB."""
    images = read_idx(_find_idx(folder, FMNIST_IMAGES))
    labels = read_idx(_find_idx(folder, FMNIST_LABELS))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ModaclipError(f"{folder}: expected [N, H, W] images and N labels, got {images.shape} and {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(FMNIST_CLASSES)):
        raise ModaclipError(
            f"{folder}: labels must be 0-{len(FMNIST_CLASSES) - 1}, found {labels.min()}-{labels.max()}"
        )
    keep = subsample(len(labels), limit)
    encoded = [_png_bytes(Image.fromarray(images[i].astype(np.uint8), mode="L").convert("RGB")) for i in keep]
    return list(FMNIST_CLASSES), encoded, labels[keep].astype(np.int64)


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise ModaclipError(f"{folder}: neither {stem}.gz nor {stem} found (the Fashion-MNIST test files)")


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def load_image_folder(folder: Path, limit: int | None) -> tuple[list[str], list[bytes], np.ndarray]:
    """One sub-folder per class, named for the class; files that are not images are ignored."""
    files_by_class = {
        sub.name: sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for sub in sorted(folder.iterdir())
        if sub.is_dir()
    }
    files_by_class = {name: files for name, files in files_by_class.items() if files}
    if len(files_by_class) < 2:
        raise ModaclipError(
            f"{folder}: an image folder needs at least two class sub-folders with images, found {list(files_by_class)}"
        )
    class_names = list(files_by_class)
    files = [(path, label) for label, name in enumerate(class_names) for path in files_by_class[name]]
    keep = subsample(len(files), limit)
    return class_names, [files[i][0].read_bytes() for i in keep], np.array([files[i][1] for i in keep], dtype=np.int64)


def subsample(count: int, limit: int | None) -> np.ndarray:
    """Sorted indices of a reproducible random subset of `limit` items (all when limit is None)."""
    if limit is None or limit >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, size=limit, replace=False))


Loader = Callable[[Path, int | None], tuple[list[str], list[bytes], np.ndarray]]
LOADERS: dict[str, Loader] = {"fmnist": load_fmnist, "imagefolder": load_image_folder}


def parse_spec(spec: str, where: str) -> tuple[str, Path]:
    """(scheme, folder) of `<scheme>:<folder>`; `where` names the parameter for error messages."""
    scheme, sep, folder = spec.partition(":")
    if not sep or not folder:
        raise ModaclipError(f"{where}: {spec!r} is not <scheme>:<folder> (schemes: {', '.join(LOADERS)})")
    if scheme not in LOADERS:
        raise ModaclipError(f"{where}: unknown scheme {scheme!r} in {spec!r} (schemes: {', '.join(LOADERS)})")
    return scheme, Path(folder)


def set_name(scheme: str, folder: Path) -> str:
    """The set's key in metrics/eval.json: `fmnist`, or the image folder's own name."""
    return "fmnist" if scheme == "fmnist" else folder.name


def open_labelled_sets(
    specs: Sequence[str], limit: int | None = None, param: str = "evaluate.zero_shot_sets"
) -> list[LabelledImages]:
    """Load every listed set; a folder that does not exist is an error, never a silent skip.

    Someone who lists a set expects its numbers, and a missing section in eval.json is easy to
    overlook in `dvc metrics show`, so the stage stops and names the parameter and the folder.
    """
    sets: list[LabelledImages] = []
    for position, spec in enumerate(specs):
        where = f"{param}[{position}]"
        scheme, folder = parse_spec(spec, where)
        if not folder.is_dir():
            raise ModaclipError(f"{where}: folder {folder} not found (from {spec!r}); fix the path or remove the entry")
        name = set_name(scheme, folder)
        if any(existing.name == name for existing in sets):
            raise ModaclipError(f"{where}: a second set named {name!r} (from {spec!r}); each set needs its own name")
        class_names, images, labels = LOADERS[scheme](folder, limit)
        sets.append(LabelledImages(name=name, source=spec, class_names=class_names, images=images, labels=labels))
    return sets
