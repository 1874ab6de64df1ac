import numpy as np
import pandas as pd
import pytest
from conftest import TEST_ARCH

from modaclip.core.config import EvaluateParams
from modaclip.core.errors import ModaclipError
from modaclip.evaluate.kagl import (
    evaluate_kagl,
    kagl_counts,
    label_prompts,
    label_to_product,
    product_vectors,
    query_labels,
    title_to_product,
    titles,
)
from modaclip.model.clip_model import create_base_model


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_title_to_product_on_four_products() -> None:
    images = np.stack([unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1), unit(1, 1, 0)])
    queries = np.stack(
        [
            unit(1, 0, 0),  # product 0: its own image first -> rank 1
            unit(1, 0.2, 0),  # product 1: scores 0.98, 0.20, 0, 0.83 -> order 0, 3, 1 -> rank 3
            unit(0, -1, 0),  # product 2: 0 and 2 tie at 0, the lower index first -> rank 2
        ]
    )
    metrics = title_to_product(queries, [0, 1, 2], images)
    assert metrics.keys() == {"recall@1", "mrr"}, "Recall@10 is undefined on a gallery of 4"
    assert metrics["recall@1"] == pytest.approx(1 / 3)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)


def test_title_found_below_rank_ten_counts_zero_as_in_marqos_eval() -> None:
    images = np.eye(12, dtype=np.float32)
    last = np.arange(12, 0, -1, dtype=np.float32)  # product 0 ranked 12th for its own title
    last[0] = 0.0
    queries = np.stack([last / np.linalg.norm(last), images[5]])
    metrics = title_to_product(queries, [0, 5], images)
    assert metrics == pytest.approx({"recall@1": 0.5, "recall@10": 0.5, "mrr": 0.5})


def test_label_to_product_averages_over_labels() -> None:
    docs = np.eye(4, dtype=np.float32)
    item_labels = ["a", "a", "b", None]
    queries = np.array(
        [
            [0.5, 0.0, 0.9, 0.3],  # "a": ranks b, a, None, a -> hits at 2 and 4: P@1 0, P@10 2/10, RR 1/2
            [0.0, 0.0, 1.0, 0.0],  # "b": the one b first -> P@1 1, P@10 1/10, RR 1
        ],
        dtype=np.float32,
    )
    metrics = label_to_product(queries, ["a", "b"], docs, item_labels)
    assert metrics == pytest.approx({"p@1": 0.5, "p@10": 0.15, "mrr": 0.75})


def test_products_mix_image_and_title_only_where_there_is_a_title() -> None:
    images = np.stack([unit(1, 0), unit(1, 0)])
    docs = product_vectors(images, np.stack([unit(0, 1)]), [1], text_weight=0.1)
    np.testing.assert_allclose(docs[0], [1, 0])
    np.testing.assert_allclose(docs[1], unit(0.9, 0.1), rtol=1e-6)


def test_rows_without_a_title_are_left_out_and_counted() -> None:
    items = pd.DataFrame(
        {
            "productDisplayName": ["Red Dress", None, "  ", np.nan, "Blue Jeans"],
            "masterCategory": ["Apparel", "Apparel", None, "Footwear", "Apparel"],
        }
    )
    assert titles(items) == ([0, 4], ["Red Dress", "Blue Jeans"])
    assert query_labels(items, ["masterCategory"]) == {"masterCategory": ["Apparel", "Footwear"]}
    assert kagl_counts(items, ["masterCategory"]) == {
        "title_queries": 2,
        "rows_without_title": 3,
        "label_queries": {"masterCategory": 2},
    }


def test_bad_kagl_params_name_the_parameter() -> None:
    with pytest.raises(ModaclipError, match=r"evaluate\.kagl_label_fields: unknown attribute"):
        query_labels(pd.DataFrame({"masterCategory": ["x"]}), ["category"])
    with pytest.raises(ModaclipError, match=r"evaluate\.kagl_label_template"):
        label_prompts(["Apparel"], "a photo of apparel")
    assert label_prompts(["Apparel"], "a photo of {label}") == ["a photo of Apparel"]


def test_catalog_without_titles_still_gets_label_tasks() -> None:
    bundle = create_base_model(TEST_ARCH, "none", seed=0)
    items = pd.DataFrame(
        {
            "masterCategory": ["Apparel", "Footwear", "Apparel"],
            "subCategory": ["Topwear", "Shoes", None],
            "baseColour": ["Red", "Red", "Blue"],
        }
    )
    images = np.random.default_rng(0).normal(size=(3, bundle.model_cfg["embed_dim"])).astype(np.float32)
    result = evaluate_kagl(bundle, items, images / np.linalg.norm(images, axis=1, keepdims=True), EvaluateParams())
    assert result["text_to_image"] == {}
    assert result["label_to_product"].keys() == {"masterCategory", "subCategory", "baseColour"}
    assert all(0.0 <= v <= 1.0 for task in result["label_to_product"].values() for v in task.values())
