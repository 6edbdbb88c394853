"""MNIST: where the files are, checking they are genuine, loading and downloading.

MNIST is four IDX files (see `idx.py`), usually gzip-compressed:

    train-images-idx3-ubyte   (60000, 28, 28) uint8     train-labels-idx1-ubyte  (60000,) uint8
    t10k-images-idx3-ubyte    (10000, 28, 28) uint8     t10k-labels-idx1-ubyte   (10000,) uint8

We read them ourselves (`idx.py`, gzip or raw; no dataset library). Each may be stored
as NAME.gz or as NAME (uncompressed); NAME.gz wins if both exist.

Genuine or not: the SHA-256 of each file's *decompressed* content is compared with the
reference sums in MNIST_SHA256, so every genuine copy passes whichever mirror or gzip
settings produced it, and any other file (truncated, corrupt, tampered, or another
dataset) is refused with one line naming the file.

Where we look (`find_mnist_dir`): the `data_dir` argument (`--data-dir DIR` on the
command line), then the ACK_MNIST_DIR environment variable, then `data/mnist/` in the
project root (in a source checkout only: an installed package has no project root), then
the user data folder (`$XDG_DATA_HOME/ack_numpy/mnist`, by default
`~/.local/share/ack_numpy/mnist`), then `./data/mnist`. A folder given explicitly or by ACK_MNIST_DIR must
hold all four files; we never fall back silently to data from somewhere else. A
relative ACK_MNIST_DIR is read from the current folder, so give an absolute path
(`export ACK_MNIST_DIR=/path/to/mnist`) to make it work from anywhere.

Downloading (`download_mnist`): `python -m ack_numpy download` puts the four NAME.gz files
into `--dest DIR` (or `--data-dir DIR`), else $ACK_MNIST_DIR, else the first default place
of that list (`download_folder()`: `data/mnist/` of a source checkout, else the user data
folder; an installed package never writes into its own folder); `train --download`
downloads only when no folder is named and none of the default places has MNIST, into that
same first default place. Either way the files come from the first of DEFAULT_MIRRORS that
serves a genuine copy. Each
file is streamed to a temporary file, verified, and only then renamed onto its final
name, so a failed or interrupted download leaves nothing half-written; files already
present and verified are kept. MNIST is never committed to the repository
(`data/mnist/` is git-ignored).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import socket
import threading
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..files import atomic_write
from .idx import DataFormatError, PathLike, open_maybe_gzip, parse_idx, read_idx_bytes

MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# SHA-256 of the decompressed IDX content (not of the .gz archive).
MNIST_SHA256: dict[str, str] = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
}

# The shape of each genuine file (all uint8). A header that declares more is refused
# before its payload is read, so no file makes `load_mnist` allocate more than MNIST needs.
MNIST_SHAPES: dict[str, tuple[int, ...]] = {
    "train-images-idx3-ubyte": (60000, 28, 28),
    "train-labels-idx1-ubyte": (60000,),
    "t10k-images-idx3-ubyte": (10000, 28, 28),
    "t10k-labels-idx1-ubyte": (10000,),
}

ENV_VAR = "ACK_MNIST_DIR"
DEFAULT_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
# The project root is the folder holding the `ack_numpy` package; it is a source checkout
# (with data/ beside the package) only if setup.cfg is there too, not when installed.
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent

# The largest genuine file is 47 MB decompressed, 10 MB compressed; anything far
# bigger is not MNIST, and we stop reading it rather than fill the disk or memory.
_MAX_CONTENT_BYTES = 2**27
_MAX_DOWNLOAD_BYTES = 2**27
_CHUNK = 1 << 20

HOW_TO_GET_DATA = (
    "To get MNIST: run `python -m ack_numpy download`, or copy the four files "
    "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz) into a folder and point to it with `--data-dir DIR` "
    f"or the environment variable {ENV_VAR}=DIR."
)


# --------------------------------------------------------------------------- locating


def _file_in(directory: Path, name: str) -> Optional[Path]:
    """The file for base name `name` in `directory`: NAME.gz, else NAME, else None."""
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _needed(split: Optional[str]) -> list[str]:
    """The base names a split needs ("train" or "test": its two files; None: all four)."""
    return [name for key, name in MNIST_FILES.items() if split is None or key.startswith(split)]


def _missing_files(directory: Path, split: Optional[str] = None) -> list[str]:
    """The base names (of `_needed(split)`) with no file in `directory`, as the messages print
    them: NAME[.gz], or what is there instead when a folder has taken the file's name."""
    missing = []
    for name in _needed(split):
        if _file_in(directory, name) is None:
            folders = [p.name for p in (directory / f"{name}.gz", directory / name) if p.is_dir()]
            missing.append(f"{name}[.gz]" + (f" ('{folders[0]}' is a folder, not a file)" if folders else ""))
    return missing


def _require_complete(directory: Path, where: str, split: Optional[str] = None) -> Path:
    """Return `directory` if it has the files `split` needs, else raise naming what is missing."""
    if directory.exists() and not directory.is_dir():
        raise DataFormatError(f"{directory} ({where}): is a file, not a folder. {HOW_TO_GET_DATA}")
    if not directory.is_dir():
        raise DataFormatError(f"{directory} ({where}): no such folder. {HOW_TO_GET_DATA}")
    missing = _missing_files(directory, split)
    if missing:
        raise DataFormatError(
            f"{directory} ({where}) lacks MNIST files: "
            + ", ".join(missing)
            + f". {HOW_TO_GET_DATA}"
        )
    return directory


def is_source_checkout() -> bool:
    return (PROJECT_ROOT / "setup.cfg").is_file() and (PROJECT_ROOT / "ack_numpy").is_dir()


def user_data_dir() -> Path:
    """Where an installed package keeps MNIST: $XDG_DATA_HOME/ack_numpy/mnist, by default
    ~/.local/share/ack_numpy/mnist."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base).expanduser() / "ack_numpy" / "mnist"


def download_folder() -> Path:
    """Where the `download` command puts MNIST when no --dest is given: $ACK_MNIST_DIR if it is
    set (where training will look), else the first of `default_mnist_dirs`, i.e. data/mnist
    of a source checkout, else the user data folder (also where `train --download` puts it:
    it downloads only when no folder is named, see `find_or_download_mnist`)."""
    env_dir = os.environ.get(ENV_VAR)
    return Path(os.path.abspath(Path(env_dir).expanduser())) if env_dir else default_mnist_dirs()[0]


def default_mnist_dirs() -> list[Path]:
    """Fallback places searched when neither `data_dir` nor ACK_MNIST_DIR is given."""
    dirs = [PROJECT_ROOT / "data" / "mnist"] if is_source_checkout() else []
    dirs += [user_data_dir(), Path.cwd() / "data" / "mnist"]
    # Drop duplicates, keep order; absolute, but a symlinked data/mnist keeps its own name.
    return list(dict.fromkeys(Path(os.path.abspath(d)) for d in dirs))


def find_mnist_dir(data_dir: Optional[PathLike] = None, split: Optional[str] = None) -> Path:
    """Return the directory holding the four MNIST files (or, given a split, that split's two:
    evaluating needs only the test files).

    Order: explicit `data_dir`, then $ACK_MNIST_DIR, then `default_mnist_dirs()`: `data/mnist`
    in a source checkout, the user data folder, `./data/mnist`. An explicit or environment directory that lacks files
    is an error (we do not silently use data from somewhere else).
    """
    if data_dir is not None:
        return _require_complete(Path(data_dir).expanduser(), "given as data_dir", split)
    env_dir = os.environ.get(ENV_VAR)
    if env_dir:
        return _require_complete(Path(env_dir).expanduser(), f"from ${ENV_VAR}", split)
    looked = []
    for directory in default_mnist_dirs():
        if not directory.is_dir():
            looked.append(f"{directory} (does not exist)")
            continue
        missing = _missing_files(directory, split)
        if not missing:
            return directory
        looked.append(f"{directory} (lacks {', '.join(missing)})")
    raise DataFormatError(
        f"MNIST not found: no data_dir given, ${ENV_VAR} not set, and looked in "
        + "; ".join(looked) + f". {HOW_TO_GET_DATA}"
    )


def find_or_download_mnist(data_dir: Optional[PathLike] = None) -> Path:
    """find_mnist_dir(); if no folder was named (no data_dir, no $ACK_MNIST_DIR) and none of
    the default places has MNIST, download it into `download_folder()` first.

    A folder the user named is never replaced by a download: if it lacks files, that is an error."""
    if data_dir is not None or os.environ.get(ENV_VAR):
        return find_mnist_dir(data_dir)
    try:
        return find_mnist_dir()
    except DataFormatError:
        return download_mnist()


def _mnist_path(directory: Path, name: str) -> Path:
    """Path of MNIST file `name` (a base name from MNIST_FILES) in `directory`."""
    path = _file_in(directory, name)
    if path is None:  # e.g. deleted since find_mnist_dir looked
        raise DataFormatError(f"{directory}: {name}[.gz] not found. {HOW_TO_GET_DATA}")
    return path


# --------------------------------------------------------------------------- checking


def _check_sha256(actual: str, name: str, source: PathLike) -> None:
    expected = MNIST_SHA256[name]
    if actual != expected:
        raise DataFormatError(
            f"{source}: checksum mismatch for {name}: SHA-256 of the decompressed content "
            f"is {actual}, expected {expected}. The file is corrupt or not the original "
            f"MNIST; delete it and run `python -m ack_numpy download` (or copy a good one)."
        )


def content_sha256(path: PathLike) -> str:
    """SHA-256 (hex) of a file's decompressed content, streamed in bounded chunks."""
    digest = hashlib.sha256()
    total = 0
    try:
        with open_maybe_gzip(path) as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                total += len(chunk)
                if total > _MAX_CONTENT_BYTES:
                    raise DataFormatError(
                        f"{path}: more than {_MAX_CONTENT_BYTES:,} bytes of content; "
                        f"this is not an MNIST file"
                    )
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataFormatError(f"{path}: corrupt gzip data ({type(err).__name__}: {err})") from None
    except OSError as err:
        raise DataFormatError(f"{path}: cannot read file ({err})") from None
    return digest.hexdigest()


def verify_mnist(data_dir: Optional[PathLike] = None) -> dict[str, str]:
    """Check the SHA-256 of all four MNIST files; returns {base name: "ok"}.

    Raises DataFormatError at the first missing or corrupt file.
    """
    directory = find_mnist_dir(data_dir)
    report = {}
    for name in MNIST_FILES.values():
        path = _mnist_path(directory, name)
        _check_sha256(content_sha256(path), name, path)
        report[name] = "ok"
    return report


# --------------------------------------------------------------------------- loading


def _read_checked(path: Path, name: str, verify: bool) -> np.ndarray:
    """Decompress once, hash those bytes, and parse the same bytes.

    The header is checked against the genuine file's size before the payload is read."""
    data = read_idx_bytes(path, max_bytes=math.prod(MNIST_SHAPES[name]), kind=f"MNIST's {name}")
    if verify:
        _check_sha256(hashlib.sha256(data).hexdigest(), name, path)
    return parse_idx(data, str(path))


def load_mnist(
    split: str = "train",
    data_dir: Optional[PathLike] = None,
    limit: Optional[int] = None,
    verify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load the MNIST training or test set.

    Args:
        split: "train" (60000 images) or "test" (10000 images).
        data_dir: folder with the four files; None searches (see `find_mnist_dir`).
        limit: keep only the first `limit` examples (checksums still cover the whole file).
        verify: check the SHA-256 of the decompressed content against MNIST_SHA256.
    Returns:
        images: (N, 1, 28, 28) float32 in [0, 1] (pixel / 255).
        labels: (N,) int64 in 0..9.
    """
    if split not in ("train", "test"):
        raise ValueError(f'load_mnist: split must be "train" or "test", got {split!r}')
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"load_mnist: limit must be a positive integer or None, got {limit!r}")
    directory = find_mnist_dir(data_dir, split)
    image_name, label_name = MNIST_FILES[f"{split}_images"], MNIST_FILES[f"{split}_labels"]
    image_path, label_path = _mnist_path(directory, image_name), _mnist_path(directory, label_name)
    images = _read_checked(image_path, image_name, verify)
    labels = _read_checked(label_path, label_name, verify)
    _check_shapes(images, labels, image_path, label_path)

    n = len(labels) if limit is None else min(int(limit), len(labels))
    x = images[:n].reshape(n, 1, 28, 28).astype(np.float32)
    x /= 255.0  # in place: no second 188 MB temporary for the training set
    return x, labels[:n].astype(np.int64)


def _check_shapes(images: np.ndarray, labels: np.ndarray, image_path: Path, label_path: Path) -> None:
    """Sanity checks that hold for MNIST whether or not checksums were verified."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataFormatError(
            f"{image_path}: expected uint8 images of shape (N, 28, 28), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataFormatError(
            f"{label_path}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}"
        )
    if len(images) != len(labels):
        raise DataFormatError(
            f"{image_path} holds {len(images)} images but {label_path} holds "
            f"{len(labels)} labels; the two files do not belong together"
        )
    if labels.size and labels.max() > 9:
        raise DataFormatError(
            f"{label_path}: labels must be digits 0..9, found {int(labels.max())}"
        )


# --------------------------------------------------------------------------- downloading


def _is_verified(path: Path, name: str) -> bool:
    try:
        return content_sha256(path) == MNIST_SHA256[name]
    except DataFormatError:
        return False


class _KeepConnections:
    """Mixed into urllib's HTTP and HTTPS handlers: remembers each connection they open, so
    that `_fetch`'s watchdog can shut it down while urllib waits for the status line and
    headers. Everything else is urllib's own: proxies from the environment, redirects,
    certificates."""

    def __init__(self, connections: list):
        super().__init__()
        self.connections = connections

    def do_open(self, http_class, req, **http_conn_args):
        def connection(host, **options):
            made = http_class(host, **options)
            self.connections.append(made)
            return made
        return super().do_open(connection, req, **http_conn_args)


class _HTTPHandler(_KeepConnections, urllib.request.HTTPHandler):
    pass


# A Python built without ssl has no HTTPSHandler: then only http:// mirrors can be used,
# and everything else in this module (finding and reading MNIST) still works.
if hasattr(urllib.request, "HTTPSHandler"):
    class _HTTPSHandler(_KeepConnections, urllib.request.HTTPSHandler):
        pass
else:
    _HTTPSHandler = None


def _fetch(url: str, dest_file, timeout: float, deadline: float) -> int:
    """Stream `url` into the open binary file `dest_file`; returns bytes written.

    `timeout` bounds each wait for data; `deadline` (seconds) the whole file, headers
    included, so that a mirror trickling a byte a second cannot keep the download going
    for weeks. A socket timeout cannot do that (every byte that arrives restarts it). In
    the body, read1 returns whatever one receive brings, so the deadline is checked between
    receives; while urllib connects and reads the status line and headers we cannot check
    anything, so a watchdog thread shuts the connection down once the deadline has passed
    (and keeps doing so until the fetch ends: a connection may get its socket only after
    the deadline, or a redirect open another): the read blocked in it fails at once, and we
    report the deadline, not the broken read."""
    request = urllib.request.Request(url, headers={"User-Agent": "ack_numpy"})
    connections: list = []
    handlers = [_HTTPHandler(connections)] + ([_HTTPSHandler(connections)] if _HTTPSHandler else [])
    opener = urllib.request.build_opener(*handlers)
    expired, finished = threading.Event(), threading.Event()
    total = 0

    def watch() -> None:
        if finished.wait(deadline):
            return
        expired.set()
        while not finished.wait(0.1):
            for made in connections:
                sock = made.sock  # read once: urllib sets it to None once the headers are read
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:  # already shut down or closed
                        pass

    def too_slow() -> TimeoutError:
        return TimeoutError(f"not finished after {deadline:g} s ({total:,} bytes received): too slow")

    threading.Thread(target=watch, daemon=True).start()
    try:
        with opener.open(request, timeout=timeout) as response:
            while chunk := response.read1(_CHUNK):
                total += len(chunk)
                if total > _MAX_DOWNLOAD_BYTES:
                    raise DataFormatError(f"more than {_MAX_DOWNLOAD_BYTES:,} bytes; not MNIST")
                if expired.is_set():
                    raise too_slow()
                dest_file.write(chunk)
    except (OSError, http.client.HTTPException) as err:
        if expired.is_set():
            raise too_slow() from err
        raise
    finally:
        finished.set()
    if expired.is_set():  # a connection shut down in the headers may also read as an empty body
        raise too_slow()
    return total


def _download_one(name: str, dest: Path, mirrors: Sequence[str], timeout: float, deadline: float,
                  progress: Callable[[str], object]) -> Path:
    """Fetch NAME.gz from the first mirror that serves a genuine copy.

    The bytes go to a temporary file in `dest` (files.atomic_write, durable); only a
    verified file is renamed onto the final name, so the final name never holds a
    half-written or corrupt download, and a failed attempt changes nothing.
    """
    final = dest / f"{name}.gz"
    errors, answered = [], False
    for mirror in mirrors:
        url = mirror.rstrip("/") + f"/{name}.gz"
        try:
            progress(f"downloading {url}")
            with atomic_write(final, "wb", durable=True) as f:
                nbytes = _fetch(url, f, timeout, deadline)
                f.flush()
                _check_download(Path(f.name), name)  # before the rename
            progress(f"  ok: {final} ({nbytes:,} bytes, checksum verified)")
            return final
        # URLError, HTTPError and timeouts are OSErrors; DataFormatError is a ValueError.
        except (OSError, ValueError, http.client.HTTPException) as err:
            answered |= isinstance(err, (urllib.error.HTTPError, ValueError, http.client.HTTPException))
            reason = _reason(err, url)
            errors.append(f"{url} ({reason})")
            progress(f"  failed: {reason}")
    why = "No mirror served a genuine copy." if answered else "No internet?"
    raise DataFormatError(
        f"could not download a genuine {name}.gz into {dest}; tried {'; '.join(errors)}. {why} "
        f"Copy the four MNIST files into {dest} or use --data-dir DIR (or {ENV_VAR}=DIR)."
    )


def _check_download(path: Path, name: str) -> None:
    """A downloaded NAME.gz (still under its temporary name) is a genuine one, or DataFormatError
    saying what it is instead, without naming the temporary file."""
    try:
        actual = content_sha256(path)
    except DataFormatError as err:
        raise DataFormatError(str(err).replace(f"{path}: ", "", 1)) from None
    if actual != MNIST_SHA256[name]:
        raise DataFormatError(f"checksum mismatch: the SHA-256 of its decompressed content is {actual}, "
                              f"not MNIST's {MNIST_SHA256[name]}")


def _reason(err: BaseException, url: str) -> str:
    """Why one mirror failed, in one line and without repeating its URL."""
    reason = getattr(err, "reason", None) if isinstance(err, urllib.error.URLError) else None
    text = str(reason if reason is not None else err) or type(err).__name__
    if isinstance(err, urllib.error.HTTPError):
        text = f"HTTP {err.code} {err.reason}"
    return " ".join(text.replace(f"{url}: ", "").replace(url, "the file").split())


def download_mnist(
    dest: Optional[PathLike] = None,
    mirrors: Optional[Sequence[str]] = None,
    timeout: float = 30.0,
    progress: Optional[Callable[[str], object]] = print,
    deadline: float = 600.0,
) -> Path:
    """Download the four MNIST files (as NAME.gz) into `dest` and verify them.

    Args:
        dest: target folder, created if needed; default `download_folder()`.
        mirrors: base URLs tried in order; default DEFAULT_MIRRORS.
        timeout: seconds to wait on a silent connection.
        deadline: seconds for each whole file, from one mirror (a slow mirror is left for the next).
        progress: called with one-line status messages; None for silence.
    Returns:
        the folder, ready for `load_mnist(data_dir=...)`.
    Files already present and verified are kept and not downloaded again.
    """
    dest = Path(dest) if dest is not None else download_folder()
    mirrors = list(mirrors) if mirrors is not None else list(DEFAULT_MIRRORS)
    report = progress if progress is not None else (lambda message: None)
    made = [p for p in (dest, *dest.parents) if not p.exists()]  # the folders this call makes
    dest.mkdir(parents=True, exist_ok=True)
    try:
        for name in MNIST_FILES.values():
            existing = _file_in(dest, name)
            if existing is not None and _is_verified(existing, name):
                report(f"{existing} already present, checksum ok")
                continue
            _download_one(name, dest, mirrors, timeout, deadline, report)
    except BaseException:
        for folder in made:  # a download that got nothing leaves no empty folders behind
            try:
                folder.rmdir()  # only if empty: a file that did arrive stays
            except OSError:
                break
        raise
    return dest
