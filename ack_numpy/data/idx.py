"""The IDX file format (the format MNIST ships in): reading it.

An IDX file is a tiny header followed by the raw array, C order, big-endian:

    bytes 0-1   0x00 0x00
    byte  2     dtype code (see IDX_DTYPES)
    byte  3     ndim, the number of dimensions
    then        ndim big-endian uint32 sizes, one per dimension
    then        prod(sizes) * itemsize bytes of data

Files are often gzip-compressed (`.gz`). We detect compression by the gzip magic
bytes 1f 8b, not by the file name, so a renamed file still loads.

Reading is split in two, so that `mnist.py` can decompress once, hash those bytes
and parse the very same bytes:

    read_idx_bytes(path) -> bytes        (file -> checked, decompressed bytes)
    parse_idx(data, source) -> ndarray   (bytes -> array)

Every problem raises `DataFormatError`, naming the file and what is wrong. The
reader never trusts the header's sizes: it refuses a header that declares more than
`max_bytes` (MAX_PAYLOAD_BYTES, or what the caller knows the file should hold) before
reading any of the payload, and reads in bounded chunks, so memory never grows past
what the file really holds and the header allows.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

# IDX dtype code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),  # unsigned byte
    0x09: np.dtype(">i1"),  # signed byte
    0x0B: np.dtype(">i2"),  # short
    0x0C: np.dtype(">i4"),  # int
    0x0D: np.dtype(">f4"),  # float
    0x0E: np.dtype(">f8"),  # double
}

GZIP_MAGIC = b"\x1f\x8b"
MAX_NDIM = 16  # the format allows 255; anything past a handful is a corrupt header
MAX_PAYLOAD_BYTES = 2**31  # refuse to load more than 2 GiB: no genuine IDX file is that big
_CHUNK = 1 << 20  # read compressed streams 1 MiB at a time


class DataFormatError(ValueError):
    """A data file is missing, corrupt, or not what we expected.

    The message always names the file and the problem, and says what to do.
    """


# --------------------------------------------------------------------------- reading


@contextlib.contextmanager
def open_maybe_gzip(path: PathLike) -> Iterator[BinaryIO]:
    """Open `path` for binary reading, transparently decompressing gzip.

    Compression is detected by the magic bytes 1f 8b, whatever the file is called.
    Raises DataFormatError if the file does not exist or cannot be opened.
    """
    path = Path(path)
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise DataFormatError(f"{path}: file not found") from None
    except OSError as err:
        raise DataFormatError(f"{path}: cannot open file ({err.strerror or err})") from None
    with raw:
        is_gzip = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if is_gzip:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                yield stream
        else:
            yield raw


def _parse_magic(magic: bytes, source: str) -> tuple[np.dtype, int]:
    """Decode the 4 magic bytes 00 00 <dtype code> <ndim>; returns (dtype, ndim)."""
    if len(magic) < 4:
        raise DataFormatError(
            f"{source}: header truncated: an IDX file starts with 4 magic bytes, "
            f"found only {len(magic)}"
        )
    if magic[0] != 0 or magic[1] != 0:
        raise DataFormatError(
            f"{source}: wrong magic number {magic[:4].hex(' ')}: an IDX file starts "
            f"with 00 00 <dtype> <ndim>; this is not an IDX file (or it is corrupt)"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataFormatError(
            f"{source}: unknown IDX dtype code 0x{code:02X} (known codes: {known})"
        )
    if ndim == 0 or ndim > MAX_NDIM:
        raise DataFormatError(
            f"{source}: header declares {ndim} dimensions; expected 1 to {MAX_NDIM}"
        )
    return IDX_DTYPES[code], ndim


def _parse_header(head: bytes, source: str) -> tuple[np.dtype, tuple[int, ...]]:
    """Decode a full IDX header (magic + ndim uint32 sizes); returns (dtype, shape).

    `head` may be longer than the header; the extra bytes are ignored.
    """
    dtype, ndim = _parse_magic(head[:4], source)
    size_bytes = head[4 : 4 + 4 * ndim]
    if len(size_bytes) < 4 * ndim:
        raise DataFormatError(
            f"{source}: header truncated: {ndim} dimensions need {4 + 4 * ndim} "
            f"header bytes, found only {4 + len(size_bytes)}"
        )
    return dtype, struct.unpack(f">{ndim}I", size_bytes)


def _payload_nbytes(dtype: np.dtype, shape: tuple[int, ...], source: str,
                    max_bytes: int = MAX_PAYLOAD_BYTES, kind: str = "an IDX file") -> int:
    """Bytes of data the header promises, refusing more than `max_bytes` before any allocation."""
    nbytes = dtype.itemsize
    for size in shape:  # Python ints: no overflow, unlike np.prod
        nbytes *= size
    if nbytes > max_bytes:
        raise DataFormatError(
            f"{source}: header declares shape {shape} of {dtype.name}, "
            f"i.e. {nbytes:,} bytes, more than {kind} holds ({max_bytes:,} bytes); "
            f"the header is corrupt or the file is not {kind}"
        )
    return nbytes


def _read_bounded(stream: BinaryIO, n: int) -> list[bytes]:
    """Read up to `n` bytes in bounded chunks, stopping early at end of stream.

    Memory used is at most what the stream really holds, never the `n` a corrupt
    header may claim.
    """
    chunks: list[bytes] = []
    remaining = n
    while remaining > 0:
        chunk = stream.read(min(remaining, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks


def read_idx_bytes(path: PathLike, max_bytes: int = MAX_PAYLOAD_BYTES, kind: str = "an IDX file") -> bytes:
    """Read an IDX file (raw or gzip) and return its complete decompressed bytes.

    The header is decoded first; a payload above `max_bytes` is refused before it is
    read (the message says the file is not `kind`). The data length the header promises
    is checked against what the file really holds (truncated or trailing bytes are
    errors), reading at most one byte more than promised. Use `parse_idx` to turn the
    bytes into an array.
    """
    source = str(path)
    try:
        with open_maybe_gzip(path) as stream:
            magic = stream.read(4)
            _, ndim = _parse_magic(magic, source)
            head = magic + stream.read(4 * ndim)
            dtype, shape = _parse_header(head, source)
            expected = _payload_nbytes(dtype, shape, source, max_bytes, kind)
            chunks = _read_bounded(stream, expected + 1)  # +1 detects trailing bytes
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        # The three ways the gzip module reports a damaged compressed stream.
        raise DataFormatError(
            f"{source}: corrupt or truncated gzip data ({type(err).__name__}: {err}); "
            f"re-download or re-copy the file"
        ) from None
    except OSError as err:
        raise DataFormatError(f"{source}: cannot read file ({err})") from None
    _check_payload_length(sum(map(len, chunks)), expected, dtype, shape, source)
    return b"".join([head, *chunks])


def _check_payload_length(
    found: int, expected: int, dtype: np.dtype, shape: tuple[int, ...], source: str
) -> None:
    if found < expected:
        raise DataFormatError(
            f"{source}: data truncated: header declares shape {shape} of "
            f"{dtype.name}, i.e. {expected:,} bytes after the header, but only "
            f"{found:,} bytes are present"
        )
    if found > expected:
        raise DataFormatError(
            f"{source}: trailing bytes: header declares shape {shape} of "
            f"{dtype.name}, i.e. {expected:,} bytes after the header, but more "
            f"bytes follow them (a wrong header, or two files run together)"
        )


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file into an array.

    Args:
        data: the whole file content, header included.
        source: name used in error messages (usually the file path).
    Returns:
        array of the shape in the header, native-endian dtype, owning its memory.
    """
    dtype, shape = _parse_header(data[: 4 + 4 * MAX_NDIM], source)
    header_len = 4 + 4 * len(shape)
    expected = _payload_nbytes(dtype, shape, source)
    _check_payload_length(len(data) - header_len, expected, dtype, shape, source)
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    # astype copies: the result is native-endian and does not pin `data` in memory.
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw, into a NumPy array.

    Returns an array of the shape stored in the header (e.g. (60000, 28, 28) uint8
    for MNIST training images), with a native-endian dtype.
    Raises DataFormatError, naming the file, for any missing or malformed file.
    """
    return parse_idx(read_idx_bytes(path), str(path))
