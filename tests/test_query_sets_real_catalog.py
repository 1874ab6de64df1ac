"""Judged query sets on the real Kaggle photos in ../shared/data/fashion-products, by params alone: a
subset of the catalog (data.limit), the BEIR set of tests/data/query_sets/fashion-products (real product
ids, judged from styles.csv by make_fashion_products.py) and the generated shoppers' set, scored as the
promotion gate scores production. Skips where ../shared/data is absent (a user's clone)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TEST_ARCH

from modaclip.core.catalog_io import write_parts
from modaclip.core.config import CaptionParams, DataParams, EmbedParams, EvaluateParams, Params
from modaclip.curate.clean_and_caption import clean_and_caption
from modaclip.embed.embedding import embed_catalog
from modaclip.evaluate.evaluation import evaluate_saved_model
from modaclip.evaluate.query_sets import judged_sets
from modaclip.ingest.sources import read_source
from modaclip.model.clip_model import create_base_model, save_model

REPO = Path(__file__).resolve().parents[1]
REAL_CATALOG = REPO.parent / "shared" / "data" / "fashion-products"
JUDGED = REPO / "tests" / "data" / "query_sets" / "fashion-products"
LIMIT = 300

pytestmark = pytest.mark.skipif(
    not REAL_CATALOG.is_dir(),
    reason=f"real catalog not here ({REAL_CATALOG}); a user's clone has no ../shared/data",
)


@pytest.fixture(scope="module")
def real_clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("real")
    write_parts(read_source(DataParams(source=f"dir:{REAL_CATALOG}", limit=LIMIT)), root / "raw")
    clean_and_caption(root / "raw", root / "clean", CaptionParams())
    return root / "clean"


def test_real_catalog_judged_sets_by_params_alone(real_clean: Path, tmp_path: Path) -> None:
    params = Params(evaluate=EvaluateParams(query_sets=[f"beir:{JUDGED}", "shoppers:40"]))
    _, summaries = judged_sets(params, real_clean)
    judged = summaries["fashion-products"]
    # the set judges all 2,898 products; a 300-product subset lacks most of them, and says how many
    assert judged["queries"] == 12 and judged["judgments"] == 737
    assert 0 < judged["judgments_not_in_catalog"] < judged["judgments"]
    assert judged["scored_queries"] <= 12 and summaries["shoppers"]["scored_queries"] == 40

    save_model(create_base_model(TEST_ARCH, "none", seed=0), tmp_path / "model")
    embed_catalog(tmp_path / "model", real_clean, tmp_path / "embeddings", EmbedParams(batch_size=64))
    report, _ = evaluate_saved_model(tmp_path / "model", tmp_path / "embeddings", real_clean, params)
    for name in ("fashion-products", "shoppers"):
        figures = report["finetuned"]["query_sets"][name]
        assert all(0.0 <= value <= 1.0 for mode in figures.values() for value in mode.values())
    # an untrained model ranks by chance; BM25 over the products' attribute words finds the judged ones
    real = report["finetuned"]["query_sets"]["fashion-products"]
    assert real["hybrid"]["ndcg@10"] > real["vector"]["ndcg@10"]
