"""What a person at the terminal sees and does during a training run.

    Progress      the status line: batches, images/s, loss, ETA (rewritten in place on a
                  terminal, a plain line every 30 s in a log file)
    StopOnCtrlC   Ctrl-C as a request to stop between two batches, where the state is
                  consistent enough to save (see train.py, which uses both)
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
        self.stream.write(f"\r{line}  " if self.in_place else line + "\n")
        self.stream.flush()

    def end_epoch(self) -> None:
        if self.in_place:
            self.stream.write("\n")
            self.stream.flush()


# ----------------------------------------------------------------------------- Ctrl-C
class StopOnCtrlC:
    """While training, turn Ctrl-C (SIGINT) into a request to stop between two batches.

    A KeyboardInterrupt raised in the middle of a step could leave some weights updated and
    others not, and a checkpoint of that state would match no point of a real run. So the
    first Ctrl-C only sets `requested`; the loop looks at it before each batch, where the
    state is consistent, and saves. A second Ctrl-C stops at once (`hard`) without saving:
    the last checkpoint stays as it was."""

    def __init__(self):
        self.requested = self.hard = False
        self.previous = None

    def __enter__(self) -> "StopOnCtrlC":
        # Only the main thread may set signal handlers, and a process started with Ctrl-C
        # ignored (in the background, under nohup) should go on ignoring it.
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _on_sigint(self, signum, frame) -> None:
        if self.requested:
            self.hard = True
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
