"""What a person at the terminal sees and does during a training run.

    Progress      the status line: batches, images/s, loss, ETA (rewritten in place on a
                  terminal, a plain line every 30 s in a log file)
    StopOnSignals Ctrl-C, SIGTERM or SIGHUP as a request to stop between two batches, where
                  the state is consistent enough to save (see train.py, which uses both)
    silence_stdout  after the reader of stdout went away
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time


def _progress_seconds(default: float) -> float:
    """Seconds between progress lines: $ACK_PROGRESS_SECONDS if set, else `default`."""
    text = os.environ.get("ACK_PROGRESS_SECONDS", "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"ACK_PROGRESS_SECONDS must be a number of seconds, got {text!r}") from None


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """One status line per epoch (batches, images/s, loss, ETA).

    On a terminal the line is rewritten in place with '\\r' twice a second; in a log file
    (not a terminal) a plain line is written every 30 seconds instead, so logs stay short.
    `every` (or the environment variable ACK_PROGRESS_SECONDS) sets another interval."""

    def __init__(self, stream=None, every: float | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.in_place = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every if every is not None else _progress_seconds(0.5 if self.in_place else 30.0)
        self.last = 0.0
        self.open = False  # a line rewritten in place is waiting for its newline

    def start_epoch(self, first_batch: int) -> None:
        self.start, self.first_batch = time.perf_counter(), first_batch
        self.last = self.start

    def update(self, epoch: int, epochs: int, batch: int, batches: int, images_per_s: float, loss: float) -> None:
        now = time.perf_counter()
        if now - self.last < self.every and batch < batches:
            return
        if not self.in_place and batch == batches:
            return  # the epoch summary follows at once
        self.last = now
        eta = (batches - batch) * (now - self.start) / max(batch - self.first_batch, 1)
        line = (f"epoch {epoch}/{epochs}  batch {batch}/{batches}  {images_per_s:6.0f} img/s  "
                f"loss {loss:.4f}  ETA {_format_seconds(eta)}")
        self._write(f"\r{line}  " if self.in_place else line + "\n")
        self.open = self.in_place

    def end_epoch(self) -> None:
        if self.open:
            self._write("\n")
            self.open = False

    def _write(self, text: str) -> None:
        # A closed terminal or pipe (`2>&1 | head`) must not stop training: stop writing.
        if self.stream is None:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.stream = None


# ----------------------------------------------------------------------------- Ctrl-C, SIGTERM, SIGHUP
# The signals that ask a training run to stop: Ctrl-C at a terminal, SIGTERM from a cluster
# scheduler or `kill`, SIGHUP when the terminal closes. Exit codes follow the shell's 128 + N.
STOP_SIGNALS = {"SIGINT": "Ctrl-C", "SIGTERM": "SIGTERM", "SIGHUP": "SIGHUP"}


class StopOnSignals:
    """While training, turn Ctrl-C, SIGTERM and SIGHUP into a request to stop between two batches.

    A KeyboardInterrupt raised in the middle of a step could leave some weights updated and
    others not, and a checkpoint of that state would match no point of a real run. So the
    first signal only sets `signum`; the loop looks at it before each batch (`check`), where
    the state is consistent, and saves. A second signal stops at once (`hard`) without
    saving: the last checkpoint stays as it was. Before the loop sets `deferred` (while the
    data loads) a signal stops at once, as Ctrl-C does anywhere else.

    A signal that the process was started with ignored (Ctrl-C for a background job, SIGHUP
    under nohup) stays ignored; only the main thread may set handlers."""

    def __init__(self):
        self.signum: int | None = None
        self.hard = False
        self.deferred = False  # until the loop starts, there is nothing to save: stop at once
        self.previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        """How the user stopped the run: "Ctrl-C", "SIGTERM" or "SIGHUP"."""
        return STOP_SIGNALS.get(signal.Signals(self.signum).name, "a signal") if self.requested else ""

    def __enter__(self) -> "StopOnSignals":
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in STOP_SIGNALS:
            signum = getattr(signal, name, None)  # SIGHUP does not exist on Windows
            if signum is None:
                continue
            default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
            if signal.getsignal(signum) is default:
                self.previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def _on_signal(self, signum, frame) -> None:
        if self.requested or not self.deferred:
            self.hard = self.requested
            self.signum = self.signum or signum
            raise KeyboardInterrupt
        self.signum = signum

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was asked for (called between two batches)."""
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}


def silence_stdout() -> None:
    """Send the rest of this process's stdout to /dev/null, after its reader went away (a closed
    pipe or terminal), so that later prints and Python's flush at exit raise nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
