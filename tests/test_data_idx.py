"""Tests for ack_numpy/data/idx.py: IDX round trips (written by tests/idx_files.py) and every
malformed-file error."""

import gzip
import re
import struct
import time

import numpy as np
import pytest

from ack_numpy.data import DataFormatError, read_idx
from ack_numpy.data.idx import parse_idx, read_idx_bytes

from idx_files import idx_bytes, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
SHAPES = [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 2), (0, 4)]


def _random_array(dtype, shape, rng):
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    return rng.standard_normal(shape).astype(dtype)


def _write_bytes(path, data, compress=False):
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _header(code, shape):
    return struct.pack(f">BBBB{len(shape)}I", 0, 0, code, len(shape), *shape)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip(tmp_path, dtype, shape, suffix):
    rng = np.random.default_rng(42)
    array = _random_array(dtype, shape, rng)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype)
    assert back.dtype.isnative
    assert back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_gz_is_really_compressed(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros(1000, np.uint8))
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert len((tmp_path / "a.gz").read_bytes()) < 1000


def test_reads_hand_made_bytes():
    """Independent of write_idx: the bytes follow the published format."""
    # int16, shape (2, 3), big-endian values -1, 0, 1, 256, 1000, -32768
    values = [-1, 0, 1, 256, 1000, -32768]
    data = _header(0x0B, (2, 3)) + struct.pack(">6h", *values)
    array = parse_idx(data)
    np.testing.assert_array_equal(array, np.array(values, np.int16).reshape(2, 3))
    assert array.dtype == np.int16 and array.dtype.isnative
    # and write_idx produces exactly those bytes
    assert idx_bytes(array) == data


def test_gzip_detected_by_magic_not_suffix(tmp_path):
    array = np.arange(12, dtype=np.int32).reshape(3, 4)
    gz_named_plain = _write_bytes(tmp_path / "plain.idx", idx_bytes(array), compress=True)
    plain_named_gz = _write_bytes(tmp_path / "raw.gz", idx_bytes(array), compress=False)
    np.testing.assert_array_equal(read_idx(gz_named_plain), array)
    np.testing.assert_array_equal(read_idx(plain_named_gz), array)


def test_read_idx_bytes_returns_decompressed_file(tmp_path):
    array = np.arange(6, dtype=np.float64)
    write_idx(tmp_path / "a.gz", array)
    assert read_idx_bytes(tmp_path / "a.gz") == idx_bytes(array)


# --------------------------------------------------------------------- malformed files

GOOD = _header(0x08, (2, 3)) + bytes(range(6))

MALFORMED = {
    # name: (file bytes, regex the message must contain after the file name)
    "wrong_magic": (b"\x01\x02" + GOOD[2:], "wrong magic number 01 02 08 02"),
    "unknown_dtype": (b"\x00\x00\x0a\x02" + GOOD[4:], "unknown IDX dtype code 0x0A"),
    "zero_ndim": (b"\x00\x00\x08\x00", "declares 0 dimensions"),
    "absurd_ndim": (b"\x00\x00\x08\xff" + bytes(4 * 255), "declares 255 dimensions"),
    "empty_file": (b"", "header truncated.*found only 0"),
    "short_magic": (b"\x00\x00\x08", "header truncated.*found only 3"),
    "short_sizes": (GOOD[:9], "header truncated: 2 dimensions need 12 header bytes, found only 9"),
    "truncated_payload": (GOOD[:-2], "data truncated.*6 bytes after the header.*only 4 bytes"),
    "truncated_float_payload": (_header(0x0D, (4,)) + bytes(15), "float32.*16 bytes.*only 15"),
    "trailing_bytes": (GOOD + b"\x00", "trailing bytes"),
}


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_raises(tmp_path, case, compress):
    data, problem = MALFORMED[case]
    path = _write_bytes(tmp_path / f"{case}.idx", data, compress)
    with pytest.raises(DataFormatError, match=re.escape(str(path)) + ".*" + problem):
        read_idx(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.idx.gz"
    with pytest.raises(DataFormatError, match=re.escape(str(path)) + ": file not found"):
        read_idx(path)


def test_corrupt_gzip_stream(tmp_path):
    compressed = bytearray(gzip.compress(GOOD * 50))
    compressed[15:25] = b"\xff" * 10  # inside the deflate data
    path = _write_bytes(tmp_path / "bad.gz", bytes(compressed))
    with pytest.raises(DataFormatError, match=re.escape(str(path)) + ": corrupt or truncated gzip"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    compressed = gzip.compress(GOOD)
    path = _write_bytes(tmp_path / "cut.gz", compressed[:-6])  # lost the CRC/size trailer
    with pytest.raises(DataFormatError, match="cut.gz: corrupt or truncated gzip"):
        read_idx(path)


def test_garbage_after_gzip_magic(tmp_path):
    path = _write_bytes(tmp_path / "garbage.gz", b"\x1f\x8b" + bytes(range(200)))
    with pytest.raises(DataFormatError, match="garbage.gz: corrupt or truncated gzip"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_huge_declared_dims_fail_fast(tmp_path, compress):
    # 4 dims of 2**30: 2**120 bytes. Must be refused from the header alone.
    path = _write_bytes(tmp_path / "huge.idx", _header(0x0E, (2**30,) * 4) + bytes(64), compress)
    start = time.perf_counter()
    with pytest.raises(DataFormatError, match=r"huge\.idx.*more than an IDX file holds \(2,147,483,648 bytes\)"):
        read_idx(path)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_large_but_allowed_dims_with_little_data_fail_fast(tmp_path, compress):
    # 1.5 GiB declared (under the cap) but 10 bytes present: must not allocate 1.5 GiB.
    path = _write_bytes(tmp_path / "liar.idx", _header(0x08, (3 * 2**29,)) + bytes(10), compress)
    start = time.perf_counter()
    with pytest.raises(DataFormatError, match=r"liar\.idx: data truncated.*only 10 bytes"):
        read_idx(path)
    assert time.perf_counter() - start < 0.5


def test_parse_idx_checks_length_too():
    with pytest.raises(DataFormatError, match="mem: data truncated"):
        parse_idx(GOOD[:-1], "mem")
    with pytest.raises(DataFormatError, match="mem: trailing bytes"):
        parse_idx(GOOD + b"xy", "mem")
