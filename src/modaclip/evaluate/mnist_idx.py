"""Read arrays stored in the IDX format of MNIST and Fashion-MNIST, gzip-compressed or not.

The format is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values row-major. Reading it ourselves keeps the
benchmark on the original files, with no dataset hub and no extra package.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from modaclip.core.errors import ModaclipError

GZIP_MAGIC = b"\x1f\x8b"
# IDX type code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array in an IDX file; the shape comes from its header, which must match its size."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ModaclipError(f"{path}: IDX file not found") from err
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise ModaclipError(f"{path}: corrupt gzip data: {err}") from err
    return parse_idx(data, path)


def parse_idx(data: bytes, path: str | Path = "<bytes>") -> np.ndarray:
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise ModaclipError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        raise ModaclipError(f"{path}: unknown IDX type code 0x{type_code:02x}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ModaclipError(f"{path}: IDX header cut short ({len(data)} bytes for {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = np.dtype(IDX_DTYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header_size != expected:
        raise ModaclipError(
            f"{path}: header says shape {shape} ({expected} bytes of data) but the file holds {len(data) - header_size}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape).astype(dtype.newbyteorder("="))
