"""Marqo's KAGL retrieval protocol (github.com/marqo-ai/marqo-FashionCLIP, configs/KAGL.json) on our test split.

- title -> product: each productDisplayName is a query and its own product the one answer, searched
  among the test images: Recall@1, Recall@10 and MRR.
- label -> product: each value of a label column (masterCategory is Marqo's "category", subCategory
  its "sub-category", articleType its "fine-category", baseColour its "color") is a query, every
  test product with that value is relevant: P@1, P@10 and MRR, averaged over the labels. Marqo's
  documents for these tasks are normalise(0.9 image + 0.1 title) embeddings; ours too, with the
  title weight in params, and the image alone for a product without a title.

Marqo's eval retrieves 10 results per query (Ks = 1, 10), so MRR counts a first hit below rank 10
as 0; we do the same so the figures compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from modaclip.core.config import EvaluateParams
from modaclip.core.errors import ModaclipError
from modaclip.core.fields import TITLE_COLUMN
from modaclip.core.metrics import mean_reciprocal_rank, precision_at_k, recall_at_k, relevance, top_k
from modaclip.core.schema import ATTRIBUTE_COLUMNS
from modaclip.model.clip_model import ClipBundle, encode_texts

RETRIEVAL_DEPTH = 10


def title_to_product(
    title_vectors: np.ndarray, title_rows: Sequence[int], image_vectors: np.ndarray
) -> dict[str, float]:
    """Query i is the title of gallery item title_rows[i]; that item is its only relevant answer."""
    depth = min(RETRIEVAL_DEPTH, len(image_vectors))
    ranked = top_k(title_vectors @ image_vectors.T, depth)
    rel = relevance(ranked, list(title_rows), list(range(len(image_vectors))))
    one_each = np.ones(len(title_rows), dtype=np.int64)
    metrics = {f"recall@{k}": recall_at_k(rel, one_each, k) for k in (1, RETRIEVAL_DEPTH) if k <= depth}
    metrics["mrr"] = mean_reciprocal_rank(rel)
    return metrics


def label_to_product(
    label_vectors: np.ndarray, labels: Sequence[str], doc_vectors: np.ndarray, item_labels: Sequence
) -> dict[str, float]:
    """One query per label; each metric is the mean over labels, so rare labels weigh as much as common ones."""
    depth = min(RETRIEVAL_DEPTH, len(doc_vectors))
    ranked = top_k(label_vectors @ doc_vectors.T, depth)
    rel = relevance(ranked, list(labels), list(item_labels))
    return {
        "p@1": precision_at_k(rel, 1),
        f"p@{RETRIEVAL_DEPTH}": precision_at_k(rel, RETRIEVAL_DEPTH),
        "mrr": mean_reciprocal_rank(rel),
    }


def product_vectors(
    image_vectors: np.ndarray, title_vectors: np.ndarray, title_rows: Sequence[int], text_weight: float
) -> np.ndarray:
    """Unit vectors of (1 - w) image + w title, Marqo's documents for label queries; the image alone where no title."""
    docs = np.array(image_vectors, dtype=np.float32)
    rows = np.asarray(title_rows, dtype=np.int64)
    docs[rows] = (1.0 - text_weight) * docs[rows] + text_weight * title_vectors
    return docs / np.linalg.norm(docs, axis=1, keepdims=True)


def titles(items: pd.DataFrame) -> tuple[list[int], list[str]]:
    """(row, productDisplayName) of the test items that have a non-blank one."""
    if TITLE_COLUMN not in items.columns:
        return [], []
    named = [
        (row, str(name).strip())
        for row, name in enumerate(items[TITLE_COLUMN])
        if isinstance(name, str) and name.strip()
    ]
    return [row for row, _ in named], [name for _, name in named]


def query_labels(items: pd.DataFrame, fields: Sequence[str]) -> dict[str, list[str]]:
    """Each field's values among the test items: every such label has at least one relevant product."""
    unknown = [f for f in fields if f not in ATTRIBUTE_COLUMNS or f not in items.columns]
    if unknown:
        raise ModaclipError(
            f"evaluate.kagl_label_fields: unknown attribute(s) {unknown} (known: {list(ATTRIBUTE_COLUMNS)})"
        )
    return {field: sorted(items[field].dropna().astype(str).unique()) for field in fields}


def label_prompts(labels: Sequence[str], template: str) -> list[str]:
    if "{label}" not in template:
        raise ModaclipError(f"evaluate.kagl_label_template: {template!r} has no {{label}} placeholder")
    return [template.format(label=label) for label in labels]


def evaluate_kagl(
    bundle: ClipBundle, items: pd.DataFrame, image_vectors: np.ndarray, params: EvaluateParams
) -> dict[str, Any]:
    """Both KAGL tasks for one model; adds only text encodings (titles and label prompts) to the images it has."""
    rows, names = titles(items)
    title_vectors = encode_texts(bundle, names)
    result: dict[str, Any] = {"text_to_image": title_to_product(title_vectors, rows, image_vectors) if rows else {}}
    docs = product_vectors(image_vectors, title_vectors, rows, params.kagl_doc_text_weight)
    result["label_to_product"] = {}
    for field, labels in query_labels(items, params.kagl_label_fields).items():
        if labels:
            label_vectors = encode_texts(bundle, label_prompts(labels, params.kagl_label_template))
            result["label_to_product"][field] = label_to_product(label_vectors, labels, docs, item_labels(items, field))
    return result


def item_labels(items: pd.DataFrame, field: str) -> list[str | None]:
    """The field's value of each item as text, None where missing (a missing label is relevant to nothing)."""
    return [str(value) if pd.notna(value) else None for value in items[field]]


def kagl_counts(items: pd.DataFrame, fields: Sequence[str]) -> dict[str, Any]:
    """The model-independent size of each task: queries asked, and test rows left out of title -> product."""
    rows, _ = titles(items)
    labels = query_labels(items, fields)
    return {
        "title_queries": len(rows),
        "rows_without_title": len(items) - len(rows),
        "label_queries": {f: len(v) for f, v in labels.items()},
    }
