"""Zero-shot classification of one image among free-text labels (needs a model, not a catalog).

Any query `Embedder` does: a loaded model, or the ONNX towers (no torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modaclip.core.errors import ModaclipError
from modaclip.model.embedders import Embedder

DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {label}",)


def classify_image(
    embedder: Embedder, image: bytes, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES
) -> list[tuple[str, float, float]]:
    """(label, cosine similarity, probability) for every label, most likely first.

    Probabilities are the softmax of the similarities times the model's own logit scale, as CLIP
    computes them, so they compare labels of this one image, not images with each other.
    """
    labels = [label.strip() for label in labels]
    if not labels or not all(labels):
        raise ModaclipError("--labels: give at least one non-empty label")
    if len(set(labels)) != len(labels):
        raise ModaclipError(f"--labels: repeated label among {labels}")
    for template in templates:
        if "{label}" not in template:
            raise ModaclipError(f"--template {template!r}: must contain {{label}}")
    similarity = (embedder.embed_images([image]) @ class_embeddings(embedder, labels, templates).T)[0]
    logits = similarity * embedder.logit_scale
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    order = np.argsort(-similarity, kind="stable")
    return [(labels[i], float(similarity[i]), float(probabilities[i])) for i in order]


def class_embeddings(embedder: Embedder, labels: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """One unit vector per label: the mean of its prompts' embeddings (CLIP's prompt ensembling)."""
    prompts = [template.format(label=label.lower()) for label in labels for template in templates]
    vectors = embedder.embed_texts(prompts).reshape(len(labels), len(templates), -1).mean(axis=1)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
