"""Do the onnxruntime and torch query paths rank the catalog alike? Top-10 ids for 50 queries, both ways.

    PYTHONPATH=src python benchmarks/onnx_parity.py [--model models/finetuned] [--embeddings data/embeddings] \\
        [--catalog data/clean] [--queries 50]

The queries are the first captions of evenly spaced catalog products. Each is embedded by the
saved model in torch and by the ONNX towers in `EMBEDDINGS/onnx`, searched in the same index, and
the two top-10 id lists compared. Prints how many lists are identical, the largest difference
between the two embeddings, and any query whose lists differ. Not a timing: fine on a busy machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from modaclip.core.catalog_io import read_catalog
from modaclip.embed.stored import TOWERS_DIR
from modaclip.model.embedders import TorchEmbedder
from modaclip.model.onnx_runtime import OnnxEmbedder
from modaclip.search.engine import CatalogSearch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/finetuned"))
    parser.add_argument("--embeddings", type=Path, default=Path("data/embeddings"))
    parser.add_argument("--catalog", type=Path, default=Path("data/clean"))
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    engine = CatalogSearch.open(args.model, args.embeddings, args.catalog)
    captions = read_catalog(args.catalog, columns=["captions"])["captions"]
    queries = [captions.iloc[int(i)][0] for i in np.linspace(0, len(captions) - 1, args.queries)]
    torch_vectors = TorchEmbedder(args.model).embed_texts(queries)
    onnx_vectors = OnnxEmbedder(args.embeddings / TOWERS_DIR).embed_texts(queries)
    with_torch = engine.rank_text(queries, torch_vectors, args.k, allowed=None)
    with_onnx = engine.rank_text(queries, onnx_vectors, args.k, allowed=None)
    differ = [(q, a, b) for q, a, b in zip(queries, with_torch, with_onnx) if [h.id for h in a] != [h.id for h in b]]
    print(f"{len(queries) - len(differ)} of {len(queries)} top-{args.k} id lists identical")
    print(f"largest embedding difference: {np.abs(torch_vectors - onnx_vectors).max():.2e}")
    for query, a, b in differ:
        print(f"  {query!r}: torch {[h.id for h in a]} onnxruntime {[h.id for h in b]}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
