"""`modaclip serve`: the HTTP API and search page over one loaded catalog."""

from modaclip.serve.app import create_app, serve

__all__ = ["create_app", "serve"]
