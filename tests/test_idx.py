import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from modaclip.core.errors import ModaclipError
from modaclip.evaluate.mnist_idx import read_idx


def idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_reads_ubyte_images_raw_and_gzip(tmp_path: Path, compress: bool) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(images, 0x08)
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if compress else data)
    np.testing.assert_array_equal(read_idx(path), images)


def test_reads_big_endian_int32_and_float(tmp_path: Path) -> None:
    ints = np.array([1, -2, 70000], dtype=np.int32)
    floats = np.array([[0.5, -1.25]], dtype=np.float32)
    (tmp_path / "ints").write_bytes(idx_bytes(ints, 0x0C))
    (tmp_path / "floats").write_bytes(idx_bytes(floats, 0x0D))
    np.testing.assert_array_equal(read_idx(tmp_path / "ints"), ints)
    np.testing.assert_array_equal(read_idx(tmp_path / "floats"), floats)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x02\x08\x01" + struct.pack(">I", 1) + b"\x00", "not an IDX file"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x02" + struct.pack(">I", 2), "header cut short"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00\x01", r"header says shape \(5,\)"),
    ],
    ids=["magic", "type", "short-header", "size"],
)
def test_bad_files_name_the_file_and_the_fault(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(data)
    with pytest.raises(ModaclipError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_missing_and_corrupt_gzip(tmp_path: Path) -> None:
    with pytest.raises(ModaclipError, match="IDX file not found"):
        read_idx(tmp_path / "absent")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 400) + bytes(400))[:30])
    with pytest.raises(ModaclipError, match="corrupt gzip"):
        read_idx(tmp_path / "cut.gz")
