"""`modaclip serve`: the HTTP API and search page over a loaded catalog, following production.

The names load on first use (PEP 562), so the CLI reads `serve.limits` (plain numbers) for its
flags without importing the web libraries.
"""

from __future__ import annotations

from modaclip.core.lazy_face import lazy_names

_HOMES = {"create_app": "app", "serve": "follow"}
__all__ = sorted(_HOMES)
__getattr__ = lazy_names(__name__, _HOMES)
