"""Files: how a path is printed in a message, and the one way the package replaces a file.

    quote_path       a path as every message prints it
    atomic_write     write a file under a temporary name beside it, then rename it over the old one

Every writer in the package (checkpoints, a run's config.json and metrics.csv, the MNIST
download, the kernel record, figures and the lab's reports) goes through `atomic_write`,
so a crash, a full disk or kill -9 in the middle of a write leaves the previous file whole
and a reader never sees half a file.

Temp files and the one clean-up rule: the temp file of `folder/name` is
`folder/.name.<pid>.<random>.tmp`: hidden, in the same folder (a rename is atomic only
within one file system), unique to the writer (two processes or threads writing one name
never share a temp file), and named after the process that writes it. Nothing ever reads
a temp file. A writer that dies mid-write (kill -9, power cut) leaves its temp file
behind; the next write to the same name removes every such file whose process no longer
runs, and leaves those of live processes alone (POSIX; elsewhere they stay, harmless).
"""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import secrets
import shlex
from pathlib import Path
from typing import IO, Iterator


def quote_path(path) -> str:
    """A path as messages print it: quoted when it holds spaces or other characters a shell
    would split on (a stray trailing space becomes visible), so it can be pasted back."""
    return shlex.quote(str(path))


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", durable: bool = False, **open_args) -> Iterator[IO]:
    """Open a temp file beside `path` for writing; when the block ends without an exception,
    rename it over `path` (os.replace: atomic on POSIX and Windows). On any exception the temp
    file is removed and `path` is as it was.

        with atomic_write(folder / "metrics.csv", "w", newline="") as f:
            f.write(text)

    mode: "wb" or "w" (text; `open_args` such as newline= go to open()). The file object's
    `name` is the temp file's path, for a check that reads the bytes back before the rename.
    The result gets the permissions any new file gets (0o666 minus the umask), whatever the
    old file had. A folder that does not exist, or is a file, raises the OSError open() raises.

    durable=True also calls fsync twice, for files whose loss costs more than a rerun of one
    command (a checkpoint holds hours of training, a download needs the network):
    - the temp file's data before the rename: file systems may write the rename to disk
      before the data, so after a power cut the name could hold an empty or partial file;
    - the folder after the rename: the rename itself is a change to the folder, and only
      reaches the disk with it.
    Other files (config.json and metrics.csv are copies of the checkpoint; figures and
    reports are outputs of a command) skip both: an fsync can take tens of milliseconds.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    remove_dead_writers_temp_files(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, {"wb": "xb", "w": "x"}[mode], **open_args) as f:  # "x": never an existing file
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        # Name the file the reader asked for: not the temp file, and not nothing (a failed
        # write, on a full disk say, names no file at all).
        if isinstance(err, OSError) and err.filename in (str(tmp), tmp, None) and err.errno is not None:
            raise type(err)(err.errno, err.strerror, str(path)) from err
        raise
    if durable:
        _fsync_folder(path.parent)


def remove_dead_writers_temp_files(path: str | Path) -> None:
    """Delete the temp files `.name.<pid>...tmp` beside `path` whose process no longer runs."""
    path = Path(path)
    if os.name != "posix" or not path.parent.is_dir():
        return
    prefix = f".{path.name}."
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = tmp.name[len(prefix) : -len(".tmp")].split(".")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_runs(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except (ProcessLookupError, OverflowError):  # no such process (or no such pid at all)
        return False
    except OSError:
        return True  # it exists but belongs to someone else
    return True


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":  # a folder cannot be opened for fsync on Windows
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_in_the_way(path: str | Path) -> Path | None:
    """The first of `path` and its parents that exists and is not a folder: the file that
    stops a folder from being made there (None if there is none)."""
    return next((p for p in (Path(path), *Path(path).parents) if p.exists() and not p.is_dir()), None)


def check_output_file(path: str | Path, what: str = "this file") -> None:
    """Raise the OSError that writing `path` with atomic_write would raise, before the work
    that produces its content: a missing or unwritable folder, a folder in its place, or a
    device or pipe (/dev/full, a FIFO), which a rename would replace instead of writing to."""
    path = Path(path)
    folder = path.resolve().parent
    if not folder.is_dir():
        in_the_way = file_in_the_way(folder)
        if in_the_way is not None:
            raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder", str(in_the_way))
        raise FileNotFoundError(errno.ENOENT, f"no such folder for {what}", str(folder))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    if path.exists() and not path.is_file():
        raise OSError(errno.EINVAL, "is not a regular file (a device or a pipe?); give a file name", str(path))
    if not os.access(folder, os.W_OK):
        raise PermissionError(errno.EACCES, "cannot write in this folder", str(folder))
