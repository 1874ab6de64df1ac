"""Search an embedded catalog: text and image queries, attribute filters, BM25 fusion, result grids."""

from modaclip.search.engine import CatalogSearch, SearchHit
from modaclip.search.filters import parse_filters

__all__ = ["CatalogSearch", "SearchHit", "parse_filters"]
