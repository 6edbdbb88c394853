"""The files of one run folder, and the rule that one process at a time writes them.

    checkpoint.npz   weights, optimiser state, position, settings and metrics so far:
                     the source of truth, replaced atomically (see checkpoint.py)
    config.json      the settings of the run, a copy for people and tools to read
    metrics.csv      one row per finished epoch, a copy of the rows in the checkpoint
    .lock            the pid of the process training into the folder, while it runs

config.json and metrics.csv are rewritten from the checkpoint whenever a run starts or
resumes, so a kill between two writes can leave them behind the checkpoint until the
next `--resume`, never for good.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import json
import math
import os
from pathlib import Path

from .files import atomic_write, quote_path

try:
    import fcntl  # POSIX; elsewhere runs are not locked
except ImportError:  # pragma: no cover - Windows
    fcntl = None

CHECKPOINT_NAME = "checkpoint.npz"
METRICS_NAME = "metrics.csv"
CONFIG_NAME = "config.json"
LOCK_NAME = ".lock"
METRIC_FIELDS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "lr"]


class RunFolderBusy(RuntimeError):
    """Another live process is training into the same folder."""


def run_folder(path: str | Path) -> Path:
    """The run folder, whether given as the folder or as the checkpoint.npz inside it."""
    path = Path(path)
    return path.parent if path.name == CHECKPOINT_NAME and path.is_file() else path


def make_folder(out: Path) -> list[Path]:
    """Make `out` (and its parents) and check that we can write there; return the folders made,
    deepest first, so that a run that fails before saving anything can take them away again."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder", str(out))
    made = [folder for folder in (out, *out.parents) if not folder.exists()]
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise PermissionError(errno.EACCES, "cannot write in this folder", str(out))
    return made


def remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):  # not empty, or gone: leave it
            folder.rmdir()


# ----------------------------------------------------------------------------- config.json, metrics.csv
def write_run_files(out: Path, config: dict, rows: list[dict]) -> None:
    """Rewrite config.json and metrics.csv from what the checkpoint holds (or a new run starts with)."""
    with atomic_write(out / CONFIG_NAME, "w") as f:
        f.write(json.dumps(config, indent=2) + "\n")
    write_metrics(out / METRICS_NAME, rows)


def write_metrics(path: Path, rows: list[dict]) -> None:
    write_rows(path, rows, METRIC_FIELDS)


def write_rows(path: Path, rows: list[dict], fields: list[str]) -> None:
    """A CSV file of `rows` with the columns `fields`, written atomically (files.atomic_write)."""
    with atomic_write(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a metrics.csv as dicts of floats (epoch as int). A file cut short or edited
    into something else (a row with missing or extra cells, a word where a number goes)
    raises ValueError naming the file and the row."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    found = []
    for n, row in enumerate(rows, start=2):  # line 1 is the header
        if None in row or None in row.values():  # DictReader: extra cells under None, missing ones as None
            cells = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None) or [])
            raise ValueError(f"{path}, line {n}: {cells} cells where the header has "
                             f"{len([k for k in row if k is not None])} (cut short or edited?)")
        try:
            values = {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
        except ValueError:
            raise ValueError(f"{path}, line {n}: not a row of numbers (cut short or edited?)") from None
        problem = impossible_metric(values, expected_epoch=len(found) + 1)
        if problem:
            raise ValueError(f"{path}, line {n}: {problem} (edited?)")
        found.append(values)
    return found


def impossible_metric(row: dict, expected_epoch: int) -> str | None:
    """What no training writes into a metrics row: epochs out of order, an accuracy outside
    0..1, a loss, time or learning rate that is negative or not finite."""
    if "epoch" in row and row["epoch"] != expected_epoch:
        return f"epoch {row['epoch']} where epoch {expected_epoch} comes"
    for name, value in row.items():
        if name == "epoch":
            continue
        if not math.isfinite(value) or value < 0:
            return f"{name} {value:g} is not a finite number >= 0"
        if name.endswith("_acc") and value > 1:
            return f"{name} {value:g} is not an accuracy between 0 and 1"
    return None


# ----------------------------------------------------------------------------- one writer at a time
class RunLock:
    """Held while a process trains into `folder`: a second writer is refused with one line.

    The lock is an flock on folder/.lock, which holds the owner's pid for the message. The
    kernel releases an flock when its process dies (even by kill -9), so the file a killed
    run leaves behind is simply taken over by the next run; a finished run removes it."""

    def __init__(self, folder: Path):
        self.folder, self.path, self.fd = folder, folder / LOCK_NAME, None

    def __enter__(self) -> "RunLock":
        if fcntl is None:
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunFolderBusy(f"{quote_path(self.folder)} is in use by another training run (pid {owner}); "
                                    f"wait for it to finish, or choose another --out") from None
            # The owner before us may have removed the file between our open and our flock.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as err:  # a full disk: name the file, as every other write does
            os.close(fd)
            raise type(err)(err.errno, err.strerror, str(self.path)) from None
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()  # while still locked, so nobody takes a file about to vanish
            os.close(self.fd)
            self.fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
