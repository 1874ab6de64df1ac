"""`modaclip serve`: the HTTP API and search page over a loaded catalog, following production."""

from modaclip.serve.app import create_app
from modaclip.serve.follow import serve

__all__ = ["create_app", "serve"]
