"""Assign each product to train, val or test by a hash of its id.

A product's split depends only on its id, the salt and the fractions, never on which other
products are in the catalog, so adding products later never moves an old one to another split
(and never leaks a test product into training).
"""

import hashlib
from collections.abc import Iterable

import numpy as np
import pandas as pd

from modaclip.core.config import parse_params
from modaclip.core.errors import ModaclipError

SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_SALT = "modaclip"


def assign_splits(ids: pd.Series, val_fraction: float, test_fraction: float, salt: str = DEFAULT_SALT) -> pd.Series:
    """The split of every id, indexed like `ids`; ids are compared as str, so 123 == "123".

    The fractions are held to `CaptionParams`' limits, which the caption stage has checked already.
    """
    parse_params({"caption": {"val_fraction": val_fraction, "test_fraction": test_fraction}}, source="assign_splits")
    missing = int(ids.isna().sum())
    if missing:
        raise ModaclipError(f"cannot assign splits: {missing} product ids are missing")
    unit = unit_hashes((str(product_id) for product_id in ids), salt)
    labels = _labels(unit, val_fraction, test_fraction)
    return pd.Series(labels, index=ids.index, dtype=str, name="split")


def unit_hashes(keys: Iterable[str], salt: str) -> np.ndarray:
    """Each key's first 8 bytes of sha1(f"{salt}:{key}") as a big-endian integer / 2**64."""
    prefixes = b"".join(hashlib.sha1(f"{salt}:{key}".encode()).digest()[:8] for key in keys)
    return np.frombuffer(prefixes, dtype=">u8").astype(np.float64) / 2.0**64


def _labels(unit: np.ndarray, val_fraction: float, test_fraction: float) -> np.ndarray:
    """Test takes the bottom of [0, 1), val the next slice, train the rest."""
    return np.where(
        unit < test_fraction,
        "test",
        np.where(unit < test_fraction + val_fraction, "val", "train"),
    )
