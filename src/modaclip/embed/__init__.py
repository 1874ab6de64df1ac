"""The embed stage: catalog vectors streamed to disk, and the faiss index over them."""

from modaclip.embed.embedding import embed_catalog, load_embeddings
from modaclip.embed.index import build_index, load_index

__all__ = ["build_index", "embed_catalog", "load_embeddings", "load_index"]
