"""modaclip: fine-tune open_clip on fashion catalogs and search them."""

from modaclip.core.errors import ModaclipError

__all__ = ["ModaclipError"]
__version__ = "0.1.0"
