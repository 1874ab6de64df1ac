"""What every stage shares: typed params, the one error type, catalog columns and parquet I/O, metrics,
atomic writes, and the edge where a stage meets the user."""

from modaclip.core.atomic import atomic_directory, atomic_file, write_json
from modaclip.core.catalog_io import read_catalog, write_parts
from modaclip.core.config import Params, load_params
from modaclip.core.errors import ModaclipError
from modaclip.core.stage_runner import run

__all__ = [
    "ModaclipError",
    "Params",
    "atomic_directory",
    "atomic_file",
    "load_params",
    "read_catalog",
    "run",
    "write_json",
    "write_parts",
]
