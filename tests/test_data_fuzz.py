"""Fuzz read_idx: 1,000 damaged IDX files, each must load or raise DataFormatError.

Any other exception (IndexError, struct.error, MemoryError, zlib.error, ...) is a bug:
callers should need only one `except DataFormatError` to handle bad data.
"""

import gzip
import time

import numpy as np
import pytest

from ack_numpy.data import DataFormatError, read_idx

from idx_files import idx_bytes

N_CASES = 1000
DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def _valid_idx(rng) -> bytes:
    dtype = DTYPES[rng.integers(len(DTYPES))]
    shape = tuple(int(d) for d in rng.integers(1, 5, size=rng.integers(1, 4)))
    array = rng.integers(0, 100, size=shape).astype(dtype)
    return idx_bytes(array)


def _flip_bytes(data: bytes, rng) -> bytes:
    out = bytearray(data)
    for i in rng.integers(0, len(out), size=rng.integers(1, 4)):
        out[i] ^= int(rng.integers(1, 256))
    return bytes(out)


def _truncate(data: bytes, rng) -> bytes:
    return data[: rng.integers(0, len(data))]


def _wrong_magic(data: bytes, rng) -> bytes:
    return bytes(rng.integers(0, 256, size=4, dtype=np.uint8)) + data[4:]


def _huge_dims(data: bytes, rng) -> bytes:
    ndim = data[3]
    sizes = rng.integers(2**20, 2**32, size=ndim, dtype=np.uint64).astype(">u4")
    return data[:4] + sizes.tobytes() + data[4 + 4 * ndim :]


def _extra_bytes(data: bytes, rng) -> bytes:
    return data + bytes(rng.integers(0, 256, size=rng.integers(1, 20), dtype=np.uint8))


def _random_header_byte(data: bytes, rng) -> bytes:
    out = bytearray(data)
    out[rng.integers(0, 4)] = int(rng.integers(0, 256))
    return bytes(out)


CONTENT_MUTATIONS = [_flip_bytes, _truncate, _wrong_magic, _huge_dims, _extra_bytes, _random_header_byte]


def _make_case(rng) -> tuple[str, bytes]:
    """One damaged file: (description, bytes on disk)."""
    data = _valid_idx(rng)
    kind = rng.integers(0, 4)
    if kind == 0:  # damage the IDX content, store raw
        mutate = CONTENT_MUTATIONS[rng.integers(len(CONTENT_MUTATIONS))]
        return f"raw/{mutate.__name__}", mutate(data, rng)
    if kind == 1:  # damage the IDX content, then compress it properly
        mutate = CONTENT_MUTATIONS[rng.integers(len(CONTENT_MUTATIONS))]
        return f"gz-content/{mutate.__name__}", gzip.compress(mutate(data, rng), mtime=0)
    if kind == 2:  # damage the compressed stream itself
        mutate = [_flip_bytes, _truncate, _extra_bytes][rng.integers(3)]
        return f"gz-stream/{mutate.__name__}", mutate(gzip.compress(data, mtime=0), rng)
    garbage = bytes(rng.integers(0, 256, size=rng.integers(0, 64), dtype=np.uint8))
    return "gz-garbage", b"\x1f\x8b" + garbage


def test_fuzz_read_idx(tmp_path):
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    outcomes = {"loaded": 0, "DataFormatError": 0}
    for i in range(N_CASES):
        description, data = _make_case(rng)
        path = tmp_path / f"case{i:04d}.idx"
        path.write_bytes(data)
        try:
            result = read_idx(path)
        except DataFormatError as err:
            assert str(path) in str(err), f"case {i} ({description}): message lacks the path: {err}"
            outcomes["DataFormatError"] += 1
        except Exception as err:  # noqa: BLE001 - the point of the test
            pytest.fail(f"case {i} ({description}): {type(err).__name__}: {err}\nbytes: {data[:64].hex()}")
        else:
            assert isinstance(result, np.ndarray), f"case {i} ({description}) returned {type(result)}"
            assert result.dtype.isnative
            outcomes["loaded"] += 1
    # The mutations must actually exercise both paths, and stay quick.
    assert outcomes["DataFormatError"] > N_CASES // 2
    assert outcomes["loaded"] > 0
    assert time.perf_counter() - start < 10
