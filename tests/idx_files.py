"""Writing IDX files, for the tests only: the package reads IDX, it never writes it.

    idx_bytes(array) -> bytes        the bytes of an uncompressed IDX file
    write_idx(path, array)           the same, gzip-compressed if path ends in .gz
"""
from __future__ import annotations

import gzip
import struct

import numpy as np

from ack_numpy.data.idx import IDX_DTYPES


def idx_bytes(array: np.ndarray) -> bytes:
    """Header 00 00 <dtype code> <ndim>, ndim big-endian uint32 sizes, then the data, big-endian."""
    array = np.asarray(array)
    codes = [code for code, dtype in IDX_DTYPES.items()
             if dtype.kind == array.dtype.kind and dtype.itemsize == array.dtype.itemsize]
    assert codes and array.ndim >= 1, f"IDX cannot hold a {array.ndim}-d {array.dtype} array"
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, codes[0], array.ndim, *array.shape)
    return header + np.ascontiguousarray(array.astype(IDX_DTYPES[codes[0]])).tobytes()


def write_idx(path, array: np.ndarray) -> None:
    data = idx_bytes(array)
    if str(path).endswith(".gz"):
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:  # mtime=0: reproducible
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
