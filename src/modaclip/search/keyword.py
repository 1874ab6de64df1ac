"""BM25 keyword scores over product text, and reciprocal rank fusion with vector search.

Written in numpy rather than taken from a library: product texts are a name and a few attribute
words, the index is a posting list per term (a few lines), and it scores every product in one
vectorised pass, which is what fusion with a filter mask needs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from modaclip.core.errors import ModaclipError

TOKEN = re.compile(r"\w+")
RRF_K = 60  # the constant of Cormack et al. (2009): damps the weight of the very first ranks


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


class BM25:
    """Okapi BM25 (k1, b) over a fixed list of documents; `scores` gives one score per document."""

    def __init__(self, documents: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        vocabulary: dict[str, int] = {}
        doc_of, term_of = [], []
        for doc, text in enumerate(documents):
            for token in tokenize(text):
                doc_of.append(doc)
                term_of.append(vocabulary.setdefault(token, len(vocabulary)))
        self.vocabulary, self.num_docs = vocabulary, len(documents)
        if not self.num_docs:
            raise ModaclipError("BM25 needs at least one document")
        pairs = np.array([term_of, doc_of], dtype=np.int64).reshape(2, -1)
        (terms, docs), tf = np.unique(pairs, axis=1, return_counts=True)
        length = np.bincount(np.asarray(doc_of, dtype=np.int64), minlength=self.num_docs).astype(np.float64)
        norm = k1 * (1 - b + b * length / max(length.mean(), 1e-9))
        df = np.bincount(terms, minlength=len(vocabulary))
        idf = np.log1p((self.num_docs - df + 0.5) / (df + 0.5))
        self.weights = (idf[terms] * tf * (k1 + 1) / (tf + norm[docs])).astype(np.float32)
        self.docs = docs
        self.starts = np.concatenate([[0], np.cumsum(df)])  # pairs are sorted by term, so each term is one slice

    def scores(self, query: str) -> np.ndarray:
        """float32 [num_docs]; a query word absent from every document adds nothing."""
        result = np.zeros(self.num_docs, dtype=np.float32)
        for token in set(tokenize(query)):
            term = self.vocabulary.get(token)
            if term is not None:
                span = slice(self.starts[term], self.starts[term + 1])
                result[self.docs[span]] += self.weights[span]
        return result


def reciprocal_rank_fusion(rankings: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, fused scores) of the k best rows by sum of 1 / (RRF_K + rank) over the rankings.

    A row missing from a ranking gets nothing from it. Ties go to the row ranked first by the
    first ranking (the vector one), so fusion never reorders equal evidence arbitrarily.
    """
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking.tolist(), start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank)
    best = sorted(fused.items(), key=lambda item: -item[1])[:k]
    return np.array([row for row, _ in best], dtype=np.int64), np.array([score for _, score in best])
