"""The download stage: read a raw catalog from any source (`data.source`) into our columns."""

from modaclip.ingest.sources import read_source
from modaclip.ingest.synthetic import generate_catalog

__all__ = ["generate_catalog", "read_source"]
