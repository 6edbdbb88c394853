"""Timing on a shared machine: medians over round-robin repeats, and im2col/col2im timed in place.

`time_round_robin` times every case once per round (wall clock, CPU time, page faults),
so a burst of load from another process hits all cases alike; `timing_im2col_col2im`
adds up the wall time the layers spend inside im2col and col2im while it is active.
"""
from __future__ import annotations

import contextlib
import resource
import statistics
import time
from typing import Callable

from ...functional import adaptive as adaptive_module
from ...functional import conv as conv_module

MIN_REPEATS = 3  # timed repeats behind every median, however short the time budget (parts 1-4)


def summarize(seconds: list[float]) -> dict:
    """Median and spread of repeated timings (seconds)."""
    q1, _, q3 = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else (seconds[0],) * 3
    return {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds),
            "q1": q1, "q3": q3, "repeats": len(seconds)}


def page_faults() -> int:
    """Page faults of this process so far: pages the kernel had to map on first touch."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


# Seconds spent inside im2col and col2im while `timing_im2col_col2im` is active.
PIECE_SECONDS = {"im2col": 0.0, "col2im": 0.0}
# The names the layers call them by: conv2d uses its own (i, j, n) copies (conv.py).
PIECE_FUNCTIONS = {"im2col": ("im2col", "im2col_batch_last"), "col2im": ("col2im", "col2im_batch_last")}


def _timed(name: str, function: Callable) -> Callable:
    def timed_function(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            PIECE_SECONDS[name] += time.perf_counter() - start
    return timed_function


@contextlib.contextmanager
def timing_im2col_col2im():
    """While active, every call the layers make to im2col or col2im adds its wall time to
    PIECE_SECONDS. It swaps the names conv.py and adaptive.py imported for timed wrappers
    (put back on exit), so the pieces are timed inside a real forward+backward, with the
    operands where the layer leaves them: dP^T is still in the cache when col2im reads
    it, which timing col2im alone on a stored array would miss."""
    originals = [(module, name, piece, getattr(module, name))
                 for module in (conv_module, adaptive_module) for piece, names in PIECE_FUNCTIONS.items()
                 for name in names if hasattr(module, name)]
    for module, name, piece, function in originals:
        setattr(module, name, _timed(piece, function))
    try:
        yield
    finally:
        for module, name, _, function in originals:
            setattr(module, name, function)


def time_round_robin(cases: dict[str, Callable[[], object]], rounds: int,
                     budget: float = float("inf")) -> dict[str, dict[str, list]]:
    """Time every case once per round, after one untimed warm-up round; up to `rounds`
    rounds, fewer (but at least MIN_REPEATS) if `budget` seconds run out.

    Interleaving (rather than 20 x case 1, then 20 x case 2) spreads the load from other
    processes evenly over the cases, so ratios between them are fair. For every call it
    records the wall clock ("wall"), the CPU time of this process ("cpu", all threads),
    the page faults ("faults": fresh memory the kernel had to map, a hidden cost of
    allocating new arrays) and the wall time spent inside im2col and col2im."""
    for fn in cases.values():
        fn()
    records = {name: {"wall": [], "cpu": [], "faults": [], **{p: [] for p in PIECE_SECONDS}} for name in cases}
    start = time.perf_counter()
    with timing_im2col_col2im():
        for done in range(rounds):
            if done >= MIN_REPEATS and time.perf_counter() - start > budget:
                break
            for name, fn in cases.items():
                pieces = dict(PIECE_SECONDS)
                faults, wall, cpu = page_faults(), time.perf_counter(), time.process_time()
                fn()
                records[name]["cpu"].append(time.process_time() - cpu)
                records[name]["wall"].append(time.perf_counter() - wall)
                records[name]["faults"].append(page_faults() - faults)
                for piece, seconds in PIECE_SECONDS.items():
                    records[name][piece].append(seconds - pieces[piece])
    return records
