"""The embed stage: catalog vectors streamed to disk, the faiss index over them, and the folder they make.

The names load on first use (PEP 562): search reads an embeddings folder through
`modaclip.embed.stored` without importing torch, which `embedding` needs.
"""

from __future__ import annotations

from modaclip.core.lazy_face import lazy_names

_HOMES = {"build_index": "index", "embed_catalog": "embedding", "load_embeddings": "stored", "load_index": "index"}
__all__ = sorted(_HOMES)
__getattr__ = lazy_names(__name__, _HOMES)
