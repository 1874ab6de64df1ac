"""Search an embedded catalog: load once, query many (used by the CLI, notebooks and services).

Text-to-image (`search_text`), image-to-image (`similar`), both with attribute filters; text
search can fuse the vector ranking with BM25 over product names and attributes (`hybrid=True`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from modaclip.core.catalog_io import part_files, read_catalog
from modaclip.core.config import IndexParams
from modaclip.core.errors import ModaclipError
from modaclip.core.fields import TITLE_COLUMN
from modaclip.core.metrics import top_k
from modaclip.core.paths import CATALOG_DIR, EMBEDDINGS_DIR, MODEL_DIR
from modaclip.core.schema import ATTRIBUTE_COLUMNS
from modaclip.embed.index import INDEX_FILE, load_index, search_index
from modaclip.embed.stored import TOWERS_DIR, check_embedded_with, image_key, read_embeddings
from modaclip.model.embedders import Embedder, open_embedder
from modaclip.model.image_input import decode_image
from modaclip.search.filters import FILTERABLE_COLUMNS, AttributeFilter, filter_mask
from modaclip.search.grid import GridCell, retrieval_grid
from modaclip.search.keyword import BM25, reciprocal_rank_fusion

INFO_COLUMNS = ["id", TITLE_COLUMN, *ATTRIBUTE_COLUMNS]
HYBRID_DEPTH = 100  # candidates each ranking contributes to reciprocal rank fusion


@dataclass(frozen=True)
class SearchHit:
    id: int
    score: float
    name: str
    attributes: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The hit as the CLI's --json and the server's API print it (the server adds an image URL)."""
        return {"id": self.id, "score": round(self.score, 6), "name": self.name, "attributes": self.attributes}


class CatalogSearch:
    """A model's query embedder, the catalog's embeddings and index made with that model, and its attributes.

    `info` row i describes embedding row i, so a filter mask over `info` is a mask over the index.
    """

    def __init__(
        self,
        embedder: Embedder,
        ids: np.ndarray,
        vectors: np.ndarray,
        *,
        info: pd.DataFrame,
        catalog_dir: Path,
        index: faiss.Index | None = None,
        index_params: IndexParams = IndexParams(),
        image_keys: np.ndarray | None = None,
    ) -> None:
        self.embedder, self.ids, self.vectors = embedder, ids, vectors
        self.image_keys = image_keys
        self.info = info.reset_index(drop=True)
        self.catalog_dir = catalog_dir
        self.index = index if index is not None else _flat_index(vectors)
        self.index_params = index_params
        self.row_of = pd.Series(np.arange(len(ids)), index=ids)
        self._bm25: BM25 | None = None
        # Column arrays for building hits: `info.iloc[row]` costs ~150 us a row, most of a cached query's time.
        self._hit_columns = {c: self.info[c].to_numpy() for c in (TITLE_COLUMN, *ATTRIBUTE_COLUMNS)}

    @classmethod
    def open(
        cls,
        model_dir: str | Path = MODEL_DIR,
        embeddings_dir: str | Path = EMBEDDINGS_DIR,
        catalog_dir: str | Path = CATALOG_DIR,
    ) -> CatalogSearch:
        """Open the model's embeddings and catalog; queries are embedded with the embed stage's ONNX towers
        when they are there (no torch), else with the model in torch (`model.embedders.open_embedder`)."""
        embeddings = read_embeddings(embeddings_dir)
        check_embedded_with(embeddings, embeddings_dir, model_dir)
        meta = embeddings.meta
        embedder = open_embedder(model_dir, Path(embeddings_dir) / TOWERS_DIR, meta["model_sha256"])
        params = IndexParams.model_validate({k: v for k, v in meta.get("index", {}).items() if k != "type"})
        index = load_index(Path(embeddings_dir) / INDEX_FILE, params) if "index" in meta else None
        info = _aligned_info(catalog_dir, embeddings.ids)
        return cls(
            embedder,
            embeddings.ids,
            embeddings.vectors,
            info=info,
            catalog_dir=Path(catalog_dir),
            index=index,
            index_params=params,
            image_keys=embeddings.image_keys,
        )

    @classmethod
    def from_vectors(
        cls, embedder: Embedder, ids: np.ndarray, vectors: np.ndarray, catalog_dir: str | Path
    ) -> CatalogSearch:
        """Exact search over given vectors of catalog products: a model's embeddings that no embed stage stored."""
        return cls(
            embedder, np.asarray(ids), vectors, info=_aligned_info(catalog_dir, ids), catalog_dir=Path(catalog_dir)
        )

    def __len__(self) -> int:
        return len(self.ids)

    def search_text(
        self, queries: Sequence[str], k: int = 10, filters: Sequence[AttributeFilter] = (), hybrid: bool = False
    ) -> list[list[SearchHit]]:
        """The k best products for each query, all queries embedded in one pass."""
        self.check_text_search(queries, k)
        allowed = filter_mask(self.info, filters)
        return self.rank_text(queries, self.embedder.embed_texts(queries), k, allowed=allowed, hybrid=hybrid)

    def check_text_search(self, queries: Sequence[str], k: int) -> None:
        """The errors `search_text` raises before any work: no query, an empty one, k out of range."""
        self._check_k(k)
        if not queries:
            raise ModaclipError("no search query given")
        for number, query in enumerate(queries, start=1):
            if not query.strip():
                raise ModaclipError(f"empty search query (query {number})")

    def rank_text(
        self,
        queries: Sequence[str],
        query_vectors: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None,
        hybrid: bool = False,
    ) -> list[list[SearchHit]]:
        """`search_text` once its queries are embedded and its filters made a row mask (`filter_mask`).

        A server embeds queries its own way (batched across requests) and then ranks here.
        """
        if not hybrid:
            return self._search_vectors(query_vectors, k, allowed)
        depth = max(k, HYBRID_DEPTH)
        vector_hits = self._ranked_rows(query_vectors, min(depth, len(self)), allowed)
        results = []
        for query, (rows, _) in zip(queries, vector_hits):
            keyword_rows = self._keyword_rows(query, depth, allowed)
            fused, scores = reciprocal_rank_fusion([rows, keyword_rows], k)
            results.append(self._hits(fused, scores))
        return results

    def similar(
        self, image_or_id: bytes | int, k: int = 10, filters: Sequence[AttributeFilter] = ()
    ) -> list[SearchHit]:
        """The k products most similar to a catalog product or to an image's bytes, the product itself excluded.

        An image whose bytes are a catalog product's stored photo is that product: searching with
        it gives the same hits as its id, not the product itself first at score 1.
        """
        self._check_k(k)
        return self.rank_similar(image_or_id, k, filter_mask(self.info, filters))

    def rank_similar(self, image_or_id: bytes | int, k: int, allowed: np.ndarray | None) -> list[SearchHit]:
        """`similar` once its filters made a row mask (`filter_mask`): a server checks them first, as the
        client's errors, and then ranks here."""
        if isinstance(image_or_id, bytes):
            same = self._rows_of_image(image_or_id)
            if not len(same):
                return self._search_vectors(self.embedder.embed_images([image_or_id]), k, allowed)[0]
            return self._similar_to_rows(same, k, allowed)
        row = self.row_of.get(int(image_or_id))
        if row is None:
            raise ModaclipError(f"product id {image_or_id} is not in the catalog")
        return self._similar_to_rows(np.array([row]), k, allowed)

    def products_with_image(self, image: bytes) -> list[int]:
        """Ids of the catalog products whose stored photo is exactly these bytes (usually none or one)."""
        return self.ids[self._rows_of_image(image)].tolist()

    def _rows_of_image(self, image: bytes) -> np.ndarray:
        """Embedding rows whose stored image has these bytes, by the digest the embed stage recorded."""
        if self.image_keys is None:
            return np.empty(0, dtype=np.int64)
        return np.flatnonzero(self.image_keys == image_key(image))

    def _similar_to_rows(self, rows: np.ndarray, k: int, allowed: np.ndarray | None) -> list[SearchHit]:
        """Hits for the stored vector of rows[0], leaving out every row in `rows` (the query itself)."""
        query = np.asarray(self.vectors[rows[:1]], dtype=np.float32)
        if allowed is None:  # a few extra hits from the plain index, then drop the query's own rows
            found, scores = self._ranked_rows(query, min(k + len(rows), len(self)), None)[0]
            keep = ~np.isin(found, rows)
            return self._hits(found[keep][:k], scores[keep][:k])
        allowed = allowed.copy()
        allowed[rows] = False
        return self._search_vectors(query, k, allowed)[0]

    def _search_vectors(self, query_vectors: np.ndarray, k: int, allowed: np.ndarray | None) -> list[list[SearchHit]]:
        return [self._hits(rows, scores) for rows, scores in self._ranked_rows(query_vectors, k, allowed)]

    def _ranked_rows(
        self, query_vectors: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(rows, scores) per query: the k best allowed rows, fewer only when fewer are allowed.

        Unfiltered: the index. Filtered to at most `exact_below` rows: exact inner products over
        just those rows, which is exact and cheap. Filtered to more: the index with an ID selector,
        and for any query where the approximate walk came back short, the exact search instead.
        Filtered to none: empty results.
        """
        if allowed is None:
            scores, rows = search_index(self.index, query_vectors, k)
            return [(r, s) for r, s in zip(rows, scores)]
        count = int(allowed.sum())
        if not count:  # filters that each match but not together: no hits, not a k=0 search
            return [(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)) for _ in query_vectors]
        k = min(k, count)
        if count <= self.index_params.exact_below:
            return self._exact_subset(query_vectors, k, np.flatnonzero(allowed))
        scores, rows = search_index(self.index, query_vectors, k, allowed)
        results = [(r, s) for r, s in zip(rows, scores)]
        short = [q for q, (r, _) in enumerate(results) if (r < 0).any()]
        if short:
            exact = self._exact_subset(query_vectors[short], k, np.flatnonzero(allowed))
            for q, result in zip(short, exact):
                results[q] = result
        return results

    def _exact_subset(self, query_vectors: np.ndarray, k: int, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        scores = query_vectors @ np.asarray(self.vectors[rows], dtype=np.float32).T
        ranked = top_k(scores, k)
        return [(rows[r], s[r]) for r, s in zip(ranked, scores)]

    def _keyword_rows(self, query: str, depth: int, allowed: np.ndarray | None) -> np.ndarray:
        """Rows with a positive BM25 score for the query, best first, at most `depth`."""
        if self._bm25 is None:
            self._bm25 = BM25(product_texts(self.info))
        scores = self._bm25.scores(query)
        if allowed is not None:
            scores[~allowed] = 0.0
        matching = int((scores > 0).sum())
        if not matching:
            return np.empty(0, dtype=np.int64)
        return top_k(scores[None, :], min(depth, matching))[0]

    def images(self, product_ids: Sequence[int]) -> dict[int, bytes]:
        """Encoded images of the given products (read from the catalog only for these ids)."""
        frame = read_catalog(self.catalog_dir, columns=["id", "image"], ids=product_ids)
        return dict(zip(frame["id"].astype(int), frame["image"]))

    def grid(
        self,
        queries: Sequence[str],
        results: Sequence[Sequence[SearchHit]],
        highlight: Sequence[Sequence[bool]] | None = None,
    ) -> Image.Image:
        """A picture of each query's hits: one row per query, score and name under each image;
        `highlight[q][i]` draws a coloured border around hit i of query q."""
        images = self.images([hit.id for hits in results for hit in hits])
        flags = highlight or [[False] * len(hits) for hits in results]
        rows = [
            (query, [GridCell(images[h.id], f"{h.score:.2f} {h.name}", marked) for h, marked in zip(hits, marks)])
            for query, hits, marks in zip(queries, results, flags)
        ]
        return retrieval_grid(rows)

    def _check_k(self, k: int) -> None:
        if not 1 <= k <= len(self):
            raise ModaclipError(f"k must be between 1 and the catalog size ({len(self)}), got {k}")

    def _hits(self, rows: np.ndarray, scores: np.ndarray) -> list[SearchHit]:
        hits = []
        for row, score in zip(rows.tolist(), scores.tolist()):
            if row < 0:
                continue
            attributes = {col: json_value(self._hit_columns[col][row]) for col in ATTRIBUTE_COLUMNS}
            hits.append(
                SearchHit(
                    int(self.ids[row]),
                    float(score),
                    json_value(self._hit_columns[TITLE_COLUMN][row]) or "",
                    attributes,
                )
            )
        return hits


def product_texts(info: pd.DataFrame) -> list[str]:
    """Name and attribute values of each product: what keyword search matches against."""
    columns = [c for c in [TITLE_COLUMN, *ATTRIBUTE_COLUMNS] if c in info.columns]
    return info[columns].fillna("").astype(str).agg(" ".join, axis=1).tolist()


def read_image_file(path: str | Path) -> bytes:
    """The bytes of an image file; anything PIL cannot decode is an error naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
        decode_image(data)
    except FileNotFoundError as err:
        raise ModaclipError(f"{path}: no such file") from err
    except IsADirectoryError as err:
        raise ModaclipError(f"{path}: is a folder, not an image") from err
    except (UnidentifiedImageError, OSError) as err:
        raise ModaclipError(f"{path}: not an image ({err.__class__.__name__})") from err
    return data


def _flat_index(vectors: np.ndarray) -> faiss.Index:
    """An exact index over vectors, for embeddings folders written before the embed stage built one."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def _aligned_info(catalog_dir: str | Path, ids: np.ndarray) -> pd.DataFrame:
    """Catalog attributes in embedding row order; a product without a catalog row means stale embeddings."""
    available = set(pq.read_schema(part_files(catalog_dir)[0]).names)
    columns = [c for c in dict.fromkeys([*INFO_COLUMNS, *FILTERABLE_COLUMNS]) if c in available]
    info = read_catalog(catalog_dir, columns=columns).drop_duplicates("id").set_index("id", drop=False)
    missing = np.setdiff1d(ids, info.index.to_numpy())
    if len(missing):
        raise ModaclipError(
            f"{catalog_dir}: {len(missing)} embedded product(s) (e.g. id {missing[0]}) are not in the catalog; "
            "run `dvc repro embed`"
        )
    return info.loc[ids].reset_index(drop=True)


def json_value(value: Any) -> Any:
    """JSON-ready: missing values (None, NaN, pandas NA or NaT) become None, numpy scalars Python ones."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value
