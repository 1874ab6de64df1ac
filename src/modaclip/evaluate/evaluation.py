"""Benchmarks of a model on the test split: text->image, image->image, zero-shot classification and
Marqo's KAGL protocol, plus zero-shot classification of labelled sets from outside the catalog.

Every function takes embeddings and labels and returns plain numbers, so the same protocol runs
for the base and the fine-tuned model and the two are compared like for like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from modaclip.core.catalog_io import part_files, read_catalog
from modaclip.core.config import EvaluateParams, Params
from modaclip.core.errors import ModaclipError
from modaclip.core.metrics import (
    accuracy,
    count_relevant,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    relevance,
    top_k,
    weighted_f1,
)
from modaclip.core.schema import ATTRIBUTE_COLUMNS
from modaclip.embed.embedding import load_embeddings
from modaclip.evaluate.kagl import evaluate_kagl, kagl_counts
from modaclip.evaluate.labelled_sets import LabelledImages, open_labelled_sets
from modaclip.model.clip_model import ClipBundle, create_base_model, encode_images, encode_texts, load_model
from modaclip.model.zero_shot import predict_labels


@dataclass(frozen=True)
class TestSet:
    """The test split's labels and a model's embeddings of its images and query captions."""

    items: pd.DataFrame
    image_vectors: np.ndarray
    query_vectors: np.ndarray


def attribute_keys(items: pd.DataFrame, columns: Sequence[str]) -> list[tuple]:
    missing = [c for c in columns if c not in items.columns]
    if missing:
        raise ModaclipError(f"evaluate.relevance_attributes: unknown column(s) {missing}")
    return list(items[list(columns)].itertuples(index=False, name=None))


def text_to_image(test: TestSet, params: EvaluateParams) -> tuple[dict[str, float], list[float]]:
    """Metrics, and Recall@k for k = 1..max(recall_ks) for the curve."""
    n = len(test.items)
    max_k = min(max(params.recall_ks), n)
    ranked = top_k(test.query_vectors @ test.image_vectors.T, max_k)
    own = np.arange(n)
    own_hits = relevance(ranked, own, own)
    own_count = count_relevant(own, own)
    keys = attribute_keys(test.items, params.relevance_attributes)
    attr_hits = relevance(ranked, keys, keys)
    attr_count = count_relevant(keys, keys)
    metrics = {f"recall@{k}": recall_at_k(own_hits, own_count, k) for k in params.recall_ks if k <= max_k}
    k10 = min(10, max_k)
    metrics[f"ndcg@{k10}"] = ndcg_at_k(own_hits, own_count, k10)
    metrics[f"attribute_precision@{k10}"] = precision_at_k(attr_hits, k10)
    metrics[f"attribute_ndcg@{k10}"] = ndcg_at_k(attr_hits, attr_count, k10)
    curve = [recall_at_k(own_hits, own_count, k) for k in range(1, max_k + 1)]
    return metrics, curve


def image_to_image(test: TestSet) -> dict[str, float]:
    """Precision@10 of visually similar products: same articleType, and same articleType and colour."""
    n = len(test.items)
    if n < 2:
        return {}
    k = min(10, n - 1)
    ranked = top_k(test.image_vectors @ test.image_vectors.T, k, exclude_self=True)
    result = {}
    for name, columns in {
        "articleType": ["articleType"],
        "articleType_baseColour": ["articleType", "baseColour"],
    }.items():
        keys = attribute_keys(test.items, columns)
        result[f"precision@{k}_{name}"] = precision_at_k(relevance(ranked, keys, keys), k)
    return result


def zero_shot(
    bundle: ClipBundle, test: TestSet, labels_by_field: dict[str, list[str]], templates: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Classify each test image among a field's labels by prompt similarity (the FashionCLIP protocol).

    Images without a value for the field are left out of that field's figures.
    """
    result = {}
    for field, labels in labels_by_field.items():
        labelled = test.items[field].notna().to_numpy()
        if not labelled.any():
            continue
        predicted = predict_labels(bundle, test.image_vectors[labelled], labels, templates)
        truth = test.items.loc[labelled, field].astype(str).tolist()
        result[field] = {
            "accuracy": accuracy(truth, predicted),
            "weighted_f1": weighted_f1(truth, predicted),
            "classes": len(labels),
        }
    return result


def classify_labelled_set(bundle: ClipBundle, labelled: LabelledImages, templates: Sequence[str]) -> dict[str, float]:
    """Zero-shot accuracy and weighted F1 on a set from outside the catalog, among that set's own classes."""
    images = encode_images(bundle, labelled.images, progress=len(labelled.images) > 1000)
    truth = np.asarray(labelled.class_names)[labelled.labels].tolist()
    predicted = predict_labels(bundle, images, labelled.class_names, templates)
    return {"accuracy": accuracy(truth, predicted), "weighted_f1": weighted_f1(truth, predicted)}


def evaluate_model(
    bundle: ClipBundle,
    test: TestSet,
    labels_by_field: dict[str, list[str]],
    params: EvaluateParams,
    labelled_sets: Sequence[LabelledImages] = (),
) -> tuple[dict[str, Any], list[float]]:
    t2i, curve = text_to_image(test, params)
    metrics = {
        "text_to_image": t2i,
        "image_to_image": image_to_image(test),
        "zero_shot": zero_shot(bundle, test, labels_by_field, params.zero_shot_templates),
        "kagl": evaluate_kagl(bundle, test.items, test.image_vectors, params),
        "zero_shot_sets": {s.name: classify_labelled_set(bundle, s, params.zero_shot_templates) for s in labelled_sets},
    }
    return metrics, curve


def delta(base: dict[str, Any], tuned: dict[str, Any]) -> dict[str, Any]:
    """tuned - base for every number the two share, nested the same way."""
    out = {}
    for key, value in tuned.items():
        if isinstance(value, dict):
            out[key] = delta(base.get(key, {}), value)
        elif key in base and key != "classes":
            out[key] = value - base[key]
    return out


def recall_curve_rows(base: list[float], tuned: list[float]) -> list[dict[str, float]]:
    return [{"k": k, "base": b, "finetuned": t} for k, (b, t) in enumerate(zip(base, tuned), start=1)]


def zero_shot_labels(catalog_dir: str | Path, fields: Sequence[str]) -> dict[str, list[str]]:
    """Every value a field takes anywhere in the clean catalog: the classes zero-shot chooses among."""
    unknown = [f for f in fields if f not in ATTRIBUTE_COLUMNS]
    if unknown:
        raise ModaclipError(
            f"evaluate.zero_shot_fields: unknown attribute(s) {unknown} (known: {list(ATTRIBUTE_COLUMNS)})"
        )
    catalog = read_catalog(catalog_dir, columns=list(fields))
    return {field: sorted(catalog[field].dropna().astype(str).unique()) for field in fields}


def compare_base_and_finetuned(
    model_dir: str | Path, embeddings_dir: str | Path, catalog_dir: str | Path, params: Params
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """metrics/eval.json's content and the Recall@k curve rows, base and fine-tuned side by side."""
    labelled_sets = open_labelled_sets(params.evaluate.zero_shot_sets)
    # Some catalogs have no productDisplayName at all; KAGL's title task then has no queries.
    titles = ["productDisplayName"] if "productDisplayName" in pq.read_schema(part_files(catalog_dir)[0]).names else []
    items = read_catalog(catalog_dir, columns=["id", *ATTRIBUTE_COLUMNS, *titles, "captions", "image"], split="test")
    if len(items) == 0:
        raise ModaclipError(f"{catalog_dir}: the test split is empty; raise caption.test_fraction")
    labels = zero_shot_labels(catalog_dir, params.evaluate.zero_shot_fields)
    queries = [captions[0] for captions in items["captions"]]

    tuned = load_model(model_dir)
    ids, vectors, _ = load_embeddings(embeddings_dir, model_dir)
    position = pd.Series(np.arange(len(ids)), index=ids)
    tuned_test = TestSet(items, np.asarray(vectors[position.loc[items["id"]].to_numpy()]), encode_texts(tuned, queries))

    base = create_base_model(params.model.arch, params.model.pretrained, params.train.seed)
    base_test = TestSet(items, encode_images(base, items["image"].tolist()), encode_texts(base, queries))

    base_metrics, base_curve = evaluate_model(base, base_test, labels, params.evaluate, labelled_sets)
    tuned_metrics, tuned_curve = evaluate_model(tuned, tuned_test, labels, params.evaluate, labelled_sets)
    report = {
        "test_items": len(items),
        "kagl": kagl_counts(items, params.evaluate.kagl_label_fields),
        "zero_shot_sets": {s.name: s.summary() for s in labelled_sets},
        "base": base_metrics,
        "finetuned": tuned_metrics,
        "delta": delta(base_metrics, tuned_metrics),
    }
    return report, recall_curve_rows(base_curve, tuned_curve)
