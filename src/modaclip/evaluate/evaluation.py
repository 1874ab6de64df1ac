"""Benchmarks of a model on the test split: text->image, image->image, zero-shot classification and
Marqo's KAGL protocol, plus zero-shot classification of labelled sets from outside the catalog and
search of the whole catalog with judged query sets (query_sets.py).

The retrieval metrics (`text_to_image`, `image_to_image`) take embeddings and labels and return
plain numbers; the zero-shot and KAGL tasks also take the model, to encode their prompts and the
outside sets' images. So the same protocol runs for the base and the fine-tuned model and the two
are compared like for like. The figures that are a mean over test products also keep their value
per product (`ModelEvaluation.per_product`): the promotion gate's paired bootstrap resamples them
(registry/promotion.py).

The I/O is in the functions at the end: `read_test_split` and `zero_shot_labels` read the clean
catalog, `embedded_test_set` loads a saved model and its stored catalog embeddings, and
`evaluate_saved_model` and `compare_base_and_finetuned` (the stage's and the gate's entry points)
read, load and score.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from modaclip.core.catalog_io import part_files, read_catalog, read_catalog_fields
from modaclip.core.config import EvaluateParams, Params
from modaclip.core.errors import ModaclipError
from modaclip.core.fields import TITLE_COLUMN, CatalogFields, Column
from modaclip.core.metrics import (
    accuracy,
    count_relevant,
    ndcg_per_query,
    precision_per_query,
    query_mean,
    recall_at_k,
    recall_per_query,
    relevance,
    top_k,
    weighted_f1,
)
from modaclip.core.schema import ATTRIBUTE_COLUMNS
from modaclip.embed.stored import image_key, load_embeddings
from modaclip.evaluate.kagl import evaluate_kagl, kagl_counts
from modaclip.evaluate.labelled_sets import LabelledImages, open_labelled_sets
from modaclip.evaluate.query_sets import base_catalog_search, judged_sets, score_query_sets, stored_catalog_search
from modaclip.model.clip_model import ClipBundle, create_base_model, encode_images, encode_texts, load_model
from modaclip.model.zero_shot import predict_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedSplit:
    """The test split's labels and a model's embeddings of its images and query captions."""

    items: pd.DataFrame
    image_vectors: np.ndarray
    query_vectors: np.ndarray


def attribute_keys(items: pd.DataFrame, columns: Sequence[Column]) -> list[tuple]:
    missing = [c for c in columns if c not in items.columns]
    if missing:
        raise ModaclipError(f"evaluate.relevance_attributes: unknown column(s) {missing}")
    return list(items[list(columns)].itertuples(index=False, name=None))


@dataclass
class ModelEvaluation:
    """One model's figures (a section of eval.json), its Recall@k curve, and the per-product values behind
    the figures that are a mean over test products: {"text_to_image.recall@10": array over test items, ...},
    NaN where a product does not count (no relevant item, no label)."""

    metrics: dict[str, Any]
    curve: list[float]
    per_product: dict[str, np.ndarray] = field(default_factory=dict)


def means(per_product: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: query_mean(values, name) for name, values in per_product.items()}


def text_to_image(
    test: EmbeddedSplit, params: EvaluateParams, catalog: CatalogFields
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Per-product values of each metric, and Recall@k for k = 1..max(recall_ks) for the curve."""
    n = len(test.items)
    max_k = min(max(params.recall_ks), n)
    ranked = top_k(test.query_vectors @ test.image_vectors.T, max_k)
    own = np.arange(n)
    own_hits = relevance(ranked, own, own)
    own_count = count_relevant(own, own)
    keys = attribute_keys(test.items, catalog.resolve_all(params.relevance_attributes))
    attr_hits = relevance(ranked, keys, keys)
    attr_count = count_relevant(keys, keys)
    values = {f"recall@{k}": recall_per_query(own_hits, own_count, k) for k in params.recall_ks if k <= max_k}
    k10 = min(10, max_k)
    values[f"ndcg@{k10}"] = ndcg_per_query(own_hits, own_count, k10)
    values[f"attribute_precision@{k10}"] = precision_per_query(attr_hits, k10)
    values[f"attribute_ndcg@{k10}"] = ndcg_per_query(attr_hits, attr_count, k10)
    curve = [recall_at_k(own_hits, own_count, k) for k in range(1, max_k + 1)]
    return values, curve


def image_to_image(test: EmbeddedSplit, catalog: CatalogFields) -> dict[str, np.ndarray]:
    """Precision@10 of visually similar products per product: same type, and same type and colour (the
    catalog's columns for those roles: articleType and baseColour in the Kaggle layout)."""
    n = len(test.items)
    kind, colour = catalog.column("type"), catalog.column("colour")
    if n < 2 or kind is None:
        return {}
    k = min(10, n - 1)
    ranked = top_k(test.image_vectors @ test.image_vectors.T, k, exclude_self=True)
    result = {}
    for columns in ([kind], [kind, colour] if colour else None):
        if columns:
            keys = attribute_keys(test.items, columns)
            result[f"precision@{k}_{'_'.join(columns)}"] = precision_per_query(relevance(ranked, keys, keys), k)
    return result


def zero_shot(
    bundle: ClipBundle, test: EmbeddedSplit, labels_by_field: dict[Column, list[str]], templates: Sequence[str]
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Classify each test image among a field's labels by prompt similarity (the FashionCLIP protocol).

    Images without a value for the field are left out of that field's figures (NaN per product).
    Returns the figures and each field's per-product correctness ("articleType.accuracy": 1.0 / 0.0 / NaN).
    """
    result, per_product = {}, {}
    for field_name, labels in labels_by_field.items():
        labelled = test.items[field_name].notna().to_numpy()
        if not labelled.any():
            continue
        predicted = np.asarray(predict_labels(bundle, test.image_vectors[labelled], labels, templates))
        truth = test.items.loc[labelled, field_name].astype(str).to_numpy()
        correct = np.full(len(test.items), np.nan)
        correct[labelled] = predicted == truth
        per_product[f"{field_name}.accuracy"] = correct
        result[field_name] = {
            "accuracy": query_mean(correct, f"{field_name} accuracy"),
            "weighted_f1": weighted_f1(truth.tolist(), predicted.tolist()),
            "classes": len(labels),
        }
    return result, per_product


def classify_labelled_set(bundle: ClipBundle, labelled: LabelledImages, templates: Sequence[str]) -> dict[str, float]:
    """Zero-shot accuracy and weighted F1 on a set from outside the catalog, among that set's own classes."""
    images = encode_images(bundle, labelled.images, progress=len(labelled.images) > 1000)
    truth = np.asarray(labelled.class_names)[labelled.labels].tolist()
    predicted = predict_labels(bundle, images, labelled.class_names, templates)
    return {"accuracy": accuracy(truth, predicted), "weighted_f1": weighted_f1(truth, predicted)}


def evaluate_model(
    bundle: ClipBundle,
    test: EmbeddedSplit,
    *,
    labels_by_field: dict[Column, list[str]],
    params: EvaluateParams,
    catalog: CatalogFields,
    labelled_sets: Sequence[LabelledImages] = (),
) -> ModelEvaluation:
    t2i, curve = text_to_image(test, params, catalog)
    i2i = image_to_image(test, catalog)
    zero_shot_figures, zero_shot_values = zero_shot(bundle, test, labels_by_field, params.zero_shot_templates)
    metrics = {
        "text_to_image": means(t2i),
        "image_to_image": means(i2i),
        "zero_shot": zero_shot_figures,
        "kagl": evaluate_kagl(bundle, test.items, test.image_vectors, params),
        "zero_shot_sets": {s.name: classify_labelled_set(bundle, s, params.zero_shot_templates) for s in labelled_sets},
    }
    per_product = {
        **{f"text_to_image.{name}": values for name, values in t2i.items()},
        **{f"image_to_image.{name}": values for name, values in i2i.items()},
        **{f"zero_shot.{name}": values for name, values in zero_shot_values.items()},
    }
    return ModelEvaluation(metrics, curve, per_product)


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


def zero_shot_labels(catalog_dir: str | Path, fields: Sequence[Column]) -> dict[Column, list[str]]:
    """Every value a field takes anywhere in the clean catalog: the classes zero-shot chooses among."""
    unknown = [f for f in fields if f not in ATTRIBUTE_COLUMNS]
    if unknown:
        raise ModaclipError(
            f"evaluate.zero_shot_fields: unknown attribute(s) {unknown} (known: {list(ATTRIBUTE_COLUMNS)})"
        )
    catalog = read_catalog(catalog_dir, columns=list(fields))
    return {field: sorted(catalog[field].dropna().astype(str).unique()) for field in fields}


def read_test_items(catalog_dir: str | Path) -> pd.DataFrame:
    """The test split with the columns evaluation reads."""
    # Some catalogs have no productDisplayName at all; KAGL's title task then has no queries.
    titles = [TITLE_COLUMN] if TITLE_COLUMN in pq.read_schema(part_files(catalog_dir)[0]).names else []
    items = read_catalog(catalog_dir, columns=["id", *ATTRIBUTE_COLUMNS, *titles, "captions", "image"], split="test")
    if len(items) == 0:
        raise ModaclipError(f"{catalog_dir}: the test split is empty; raise caption.test_fraction")
    return items


def read_test_split(
    catalog_dir: str | Path, params: EvaluateParams
) -> tuple[pd.DataFrame, CatalogFields, dict[Column, list[str]]]:
    """The test split, the catalog's fields, and the zero-shot labels of each column `params` names for it."""
    items = read_test_items(catalog_dir)
    catalog = read_catalog_fields(catalog_dir)
    zero_shot_columns = catalog.resolve_all(params.zero_shot_fields)
    log.info("catalog fields: %s", catalog.describe())
    relevance = catalog.resolve_all(params.relevance_attributes)
    log.info("zero-shot fields: %s; relevance attributes: %s", zero_shot_columns, relevance)
    return items, catalog, zero_shot_labels(catalog_dir, zero_shot_columns)


def query_captions(items: pd.DataFrame) -> list[str]:
    """Each product's text query: its first caption."""
    return [captions[0] for captions in items["captions"]]


def split_digest(items: pd.DataFrame) -> str:
    """blake2b of the test products' ids and image digests, in id order: equal digests, same test set."""
    digest = hashlib.blake2b(digest_size=16)
    for product_id, image in sorted(zip(items["id"].tolist(), items["image"])):
        digest.update(f"{product_id}:{image_key(image)};".encode())
    return digest.hexdigest()


def embedded_test_set(
    model_dir: str | Path, embeddings_dir: str | Path, items: pd.DataFrame
) -> tuple[ClipBundle, EmbeddedSplit]:
    """A saved model and its test set: image vectors from its catalog embeddings, query captions encoded now."""
    bundle = load_model(model_dir)
    ids, vectors, _ = load_embeddings(embeddings_dir, model_dir)
    position = pd.Series(np.arange(len(ids)), index=ids)
    missing = ~items["id"].isin(position.index)
    if missing.any():
        raise ModaclipError(
            f"{embeddings_dir}: no vector for test product(s) {items['id'][missing].head(5).tolist()}; "
            "embed the current catalog with this model"
        )
    image_vectors = np.asarray(vectors[position.loc[items["id"]].to_numpy()])
    return bundle, EmbeddedSplit(items, image_vectors, encode_texts(bundle, query_captions(items)))


def per_product_table(items: pd.DataFrame, evaluations: dict[str, ModelEvaluation]) -> pd.DataFrame:
    """One row per test product: its id, then each model's per-product values named by their eval.json path."""
    columns = {
        f"{model}.{name}": values
        for model, evaluation in evaluations.items()
        for name, values in evaluation.per_product.items()
    }
    return pd.DataFrame({"id": items["id"].to_numpy(), **columns})


def evaluate_saved_model(
    model_dir: str | Path, embeddings_dir: str | Path, catalog_dir: str | Path, params: Params
) -> tuple[dict[str, Any], pd.DataFrame]:
    """One saved model on the catalog's current test split, as the `evaluate` stage scores the fine-tuned one.

    The report has eval.json's shape without the base model ({"test_items", "test_digest", "finetuned"}),
    so the same dotted paths name the same figures; the table holds the per-product values.
    """
    query_sets, _ = judged_sets(params, catalog_dir)
    items, catalog, labels = read_test_split(catalog_dir, params.evaluate)
    bundle, test = embedded_test_set(model_dir, embeddings_dir, items)
    labelled_sets = open_labelled_sets(params.evaluate.zero_shot_sets)
    evaluation = evaluate_model(
        bundle, test, labels_by_field=labels, params=params.evaluate, catalog=catalog, labelled_sets=labelled_sets
    )
    evaluation.metrics["query_sets"] = score_query_sets(
        query_sets, bundle, lambda: stored_catalog_search(bundle, model_dir, embeddings_dir, catalog_dir)
    )
    report = {"test_items": len(items), "test_digest": split_digest(items), "finetuned": evaluation.metrics}
    return report, per_product_table(items, {"finetuned": evaluation})


def compare_base_and_finetuned(
    model_dir: str | Path, embeddings_dir: str | Path, catalog_dir: str | Path, params: Params
) -> tuple[dict[str, Any], list[dict[str, float]], pd.DataFrame]:
    """eval.json's content, the Recall@k curve rows and the per-product values: base and fine-tuned side by side."""
    labelled_sets = open_labelled_sets(params.evaluate.zero_shot_sets)
    query_sets, query_summaries = judged_sets(params, catalog_dir)
    items, catalog, labels = read_test_split(catalog_dir, params.evaluate)
    tuned, tuned_test = embedded_test_set(model_dir, embeddings_dir, items)
    base = create_base_model(params.model.arch, params.model.pretrained, params.train.seed)
    base_test = EmbeddedSplit(
        items, encode_images(base, items["image"].tolist()), encode_texts(base, query_captions(items))
    )

    evaluations = {
        "base": evaluate_model(
            base,
            base_test,
            labels_by_field=labels,
            params=params.evaluate,
            catalog=catalog,
            labelled_sets=labelled_sets,
        ),
        "finetuned": evaluate_model(
            tuned,
            tuned_test,
            labels_by_field=labels,
            params=params.evaluate,
            catalog=catalog,
            labelled_sets=labelled_sets,
        ),
    }
    base_metrics, tuned_metrics = evaluations["base"].metrics, evaluations["finetuned"].metrics
    base_metrics["query_sets"] = score_query_sets(query_sets, base, lambda: base_catalog_search(base, catalog_dir))
    tuned_metrics["query_sets"] = score_query_sets(
        query_sets, tuned, lambda: stored_catalog_search(tuned, model_dir, embeddings_dir, catalog_dir)
    )
    report = {
        "test_items": len(items),
        "test_digest": split_digest(items),
        "kagl": kagl_counts(items, params.evaluate.kagl_label_fields),
        "zero_shot_sets": {s.name: s.summary() for s in labelled_sets},
        "query_sets": query_summaries,
        "base": base_metrics,
        "finetuned": tuned_metrics,
        "delta": delta(base_metrics, tuned_metrics),
    }
    curve = recall_curve_rows(evaluations["base"].curve, evaluations["finetuned"].curve)
    return report, curve, per_product_table(items, evaluations)
