"""Search an embedded catalog by text: load once, query many (used by the CLI, notebooks and services)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from modaclip.catalog_io import read_catalog
from modaclip.clip_model import ClipBundle, encode_texts, load_model
from modaclip.embedding import load_embeddings
from modaclip.errors import ModaclipError
from modaclip.grid import GridCell, retrieval_grid
from modaclip.metrics import top_k
from modaclip.schema import ATTRIBUTE_COLUMNS

DEFAULT_MODEL_DIR = Path("models/finetuned")
DEFAULT_EMBEDDINGS_DIR = Path("data/embeddings")
DEFAULT_CATALOG_DIR = Path("data/clean")
INFO_COLUMNS = ["id", "productDisplayName", *ATTRIBUTE_COLUMNS]


@dataclass(frozen=True)
class SearchHit:
    id: int
    score: float
    name: str
    attributes: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": round(self.score, 6), "name": self.name, **self.attributes}


class CatalogSearch:
    """A model, the catalog's embeddings made with that model, and the catalog's attributes."""

    def __init__(self, bundle: ClipBundle, ids: np.ndarray, vectors: np.ndarray, info: pd.DataFrame, catalog_dir: Path) -> None:
        self.bundle, self.ids, self.vectors = bundle, ids, vectors
        self.info = info.set_index("id", drop=False)
        self.catalog_dir = catalog_dir

    @classmethod
    def open(
        cls,
        model_dir: str | Path = DEFAULT_MODEL_DIR,
        embeddings_dir: str | Path = DEFAULT_EMBEDDINGS_DIR,
        catalog_dir: str | Path = DEFAULT_CATALOG_DIR,
    ) -> CatalogSearch:
        ids, vectors, _ = load_embeddings(embeddings_dir, model_dir)
        bundle = load_model(model_dir)
        info = read_catalog(catalog_dir, columns=INFO_COLUMNS)
        return cls(bundle, ids, np.asarray(vectors), info, Path(catalog_dir))

    def __len__(self) -> int:
        return len(self.ids)

    def search_text(self, queries: Sequence[str], k: int = 10) -> list[list[SearchHit]]:
        """The k best products for each query, all queries embedded in one pass."""
        self._check_k(k)
        for query in queries:
            if not query.strip():
                raise ModaclipError("empty search query")
        scores = encode_texts(self.bundle, list(queries)) @ self.vectors.T
        ranked = top_k(scores, k)
        return [self._hits(row_scores, row) for row_scores, row in zip(scores, ranked)]

    def images(self, product_ids: Sequence[int]) -> dict[int, bytes]:
        """Encoded images of the given products (read from the catalog only for these ids)."""
        frame = read_catalog(self.catalog_dir, columns=["id", "image"], ids=product_ids)
        return dict(zip(frame["id"].astype(int), frame["image"]))

    def grid(self, queries: Sequence[str], results: Sequence[Sequence[SearchHit]]) -> Image.Image:
        """A picture of each query's hits: one row per query, score and name under each image."""
        images = self.images([hit.id for hits in results for hit in hits])
        rows = [
            (query, [GridCell(images[hit.id], f"{hit.score:.2f} {hit.name}") for hit in hits])
            for query, hits in zip(queries, results)
        ]
        return retrieval_grid(rows)

    def _check_k(self, k: int) -> None:
        if not 1 <= k <= len(self):
            raise ModaclipError(f"k must be between 1 and the catalog size ({len(self)}), got {k}")

    def _hits(self, scores: np.ndarray, ranked: np.ndarray) -> list[SearchHit]:
        hits = []
        for index in ranked:
            product_id = int(self.ids[index])
            row = self.info.loc[product_id]
            attributes = {col: _plain(row[col]) for col in ATTRIBUTE_COLUMNS}
            hits.append(SearchHit(product_id, float(scores[index]), _plain(row["productDisplayName"]) or "", attributes))
        return hits


def _plain(value: Any) -> Any:
    """JSON-ready value: NaN/None become None, numpy scalars become Python ones."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value
