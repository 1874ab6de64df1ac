"""Zero-shot classification among free-text labels: the one predictor training, evaluation, the CLI and
the server use, and the default prompt they share. Any query `Embedder` does: a loaded model, or the
ONNX towers (no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modaclip.core.errors import ModaclipError
from modaclip.model.embedders import Embedder

DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {label}",)  # CLIP's prompt; params.yaml's evaluate default too
LABEL_FIELD = "{label}"


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
        check_template(template)
    similarity = label_similarities(embedder, embedder.embed_images([image]), labels, templates)[0]
    logits = similarity * embedder.logit_scale
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    order = np.argsort(-similarity, kind="stable")
    return [(labels[i], float(similarity[i]), float(probabilities[i])) for i in order]


def classification_json(ranked: Sequence[tuple[str, float, float]]) -> dict[str, Any]:
    """`classify_image`'s ranking as the CLI's --json and the server's /api/classify print it."""
    return {
        "labels": [
            {"label": label, "score": round(score, 6), "probability": round(probability, 6)}
            for label, score, probability in ranked
        ]
    }


def check_template(template: str) -> None:
    if LABEL_FIELD not in template:
        raise ModaclipError(f"--template {template!r}: must contain {LABEL_FIELD}")


def fill_template(template: str, label: str) -> str:
    """The prompt for one label: every `{label}` replaced, any other brace kept as written.

    Plain substitution, never `str.format`: a template may come from an HTTP client, and a format
    string such as `{label:>300000000}` would allocate hundreds of MB per prompt.
    """
    return template.replace(LABEL_FIELD, label)


def class_embeddings(embedder: Embedder, labels: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """One unit vector per label: the mean of its prompts' embeddings (CLIP's prompt ensembling)."""
    prompts = [fill_template(template, label.lower()) for label in labels for template in templates]
    vectors = embedder.embed_texts(prompts).reshape(len(labels), len(templates), -1).mean(axis=1)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def label_similarities(
    embedder: Embedder, image_vectors: np.ndarray, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES
) -> np.ndarray:
    """Cosine similarity [images, labels] of unit image vectors to each label's class embedding."""
    return image_vectors @ class_embeddings(embedder, labels, templates).T


def predict_labels(
    embedder: Embedder, image_vectors: np.ndarray, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES
) -> list[str]:
    """Each image's zero-shot label: the one whose class embedding is most similar to it."""
    similarities = label_similarities(embedder, image_vectors, labels, templates)
    return np.asarray(labels)[np.argmax(similarities, axis=1)].tolist()
