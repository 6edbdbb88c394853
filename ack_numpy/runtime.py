"""The two settings of the Python process, not of the maths: BLAS threads and the allocator.

Neither changes a number the engine computes beyond float32 rounding; both change how fast
it runs. This file is their one owner; who applies them:

BLAS threads: `use_blas_threads`, applied by the command line to every command but bench
(`cli.main`) and by the tutorials (`tutorials/tutorial_setup.py`). reproduce and study
also start the processes that train or time with OPENBLAS_NUM_THREADS=1 (lab/runner.py,
lab/compute.py), so a report re-evaluates each checkpoint with the arithmetic it was
trained with; bench uses the BLAS default unless `--threads N` reruns it with
OPENBLAS_NUM_THREADS=N (lab/bench/__init__.py). The default is one thread. Measured
on the project's 2-core machine, the same command side by side:
- quiet, then beside one busy process (data/bench/threads-quiet-and-loaded.txt, one run,
  5 alternating repeats each): adaptive-lenet trained at 3,816 images/s with one thread
  and 3,891 with two when the machine was quiet (load average below 1: 0.98x, within the
  noise), and at 4,227 against 1,424 beside one more busy process (two threads 3.0x slower).
- shared with other work (load average 10-15; data/bench/threads-under-load.txt):
  adaptive-lenet trained at 1,147 images/s with one thread and 117 with two, 9.8x
  slower; beside one more busy process, 194 against 29 (6.7x). The two BLAS threads of
  each product wait for each other whenever one of them is descheduled.
- quiet, one step timed at a time (data/bench/bench-whole-step-quick.txt): a training step
  at batch 64 took 10.3 ms with one thread and 8.5 ms with two (1.21x faster), at batch
  128 15.0 and 16.0 ms (0.93x); lenet gains up to 1.6x (data/bench/README.md).
One thread loses at most that where the machine is free, and never the 3-10x where it is busy. More threads, explicitly:
`--threads N` on train, evaluate, visualize and explore, or OPENBLAS_NUM_THREADS=N (OMP_NUM_THREADS=N) in
the environment, which is respected when --threads is not given; the Python library on its
own (`import ack_numpy`) leaves the BLAS as NumPy set it up.

Allocator: `keep_freed_memory`, applied by the processes that train: the `train` command
(new and resumed runs), the studies' run processes and the bench's. The library's `train()`
itself leaves the process as it found it, so a tutorial, a notebook or a script that calls
it changes no setting it did not ask for (call `keep_freed_memory()` first to have it). Every forward and backward pass makes fresh arrays of megabytes
(im2col matrices, blocks of Z^T and GP^T, gradients) and frees them a few milliseconds
later. By default glibc's malloc (the allocator NumPy uses on Linux) gives large freed
blocks back to the operating system: blocks above its mmap threshold (128 KiB at first)
are unmapped when freed, and the top of the heap is trimmed once more than its trim
threshold is free. The next array of that size then gets new pages from the OS, and the
first write to each 4 KiB page is a page fault. `keep_freed_memory` raises both thresholds
with `mallopt`, so freed blocks stay in the process and the next array reuses pages that
are already mapped. Measured (data/bench/allocator-train.txt): training adaptive-lenet,
the first epoch took 14.6-15.0 s with glibc's defaults and 6.8-7.7 s with this setting;
the second 7.9 s against 6.7-7.7 s (glibc raises its thresholds by itself as it sees large
blocks freed); peak memory did not grow (558 against 561 MB). That is why it is applied
where training happens, and nowhere else: the price is that the process holds on to its
peak memory until it ends instead of shrinking between steps. `python -m ack_numpy bench`
prints the page faults per call and per training step (compare ACK_KEEP_FREED_MEMORY=0).
It is glibc (Linux) only; elsewhere it does nothing. Set ACK_KEEP_FREED_MEMORY=0 (or
false, no, off) to run with glibc's defaults.

Performance note: the BLAS thread count is changed through OpenBLAS's own
`openblas_set_num_threads`, found in the OpenBLAS library NumPy has loaded (Linux: listed
in /proc/self/maps). With another BLAS (Accelerate, MKL) or elsewhere it does nothing and
says so by returning False; set OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS
before Python starts instead.
"""
from __future__ import annotations

import ctypes
import os
import platform

DEFAULT_BLAS_THREADS = 1
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# OpenBLAS's setter, by the names NumPy's builds give it (scipy-openblas in NumPy >= 2,
# the 64-bit-integer build of NumPy 1.x, a plain build).
OPENBLAS_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                    "openblas_set_num_threads64_", "openblas_set_num_threads")

# mallopt's parameter numbers, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# 32 MiB is as high as glibc's own adaptive threshold ever goes on 64-bit machines; arrays
# larger than this (the 188 MB training set, say) are still mapped and unmapped as usual.
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 256 * 1024 * 1024  # free memory the heap may keep at its top before giving any back
ALLOCATOR_SWITCH = "ACK_KEEP_FREED_MEMORY"


def chosen_blas_threads(threads: int | None) -> int | None:
    """The thread count to apply: `threads` if given (--threads), else None when the user
    set a thread variable in the environment (the BLAS has already read it), else 1."""
    if threads is not None:
        return threads
    if any(os.environ.get(name, "").strip() for name in THREAD_VARIABLES):
        return None
    return DEFAULT_BLAS_THREADS


def use_blas_threads(threads: int | None = None) -> bool:
    """Set the number of threads NumPy's OpenBLAS uses for matrix products in this process:
    `threads`, or (None) what `chosen_blas_threads` says. Returns True if a count was set."""
    count = chosen_blas_threads(threads)
    if count is None:
        return False
    import numpy  # noqa: F401  (loads the BLAS library, whose setter is called below)

    for lib in _loaded_openblas():
        for name in OPENBLAS_SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(count)
                return True
    return False


def _loaded_openblas() -> list[ctypes.CDLL]:
    """The OpenBLAS libraries mapped into this process (Linux only; [] elsewhere)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1].lower()}
    except OSError:
        return []
    return [ctypes.CDLL(path) for path in sorted(paths)]


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks for reuse. Returns True if the setting is now
    in force, False if it was switched off (ACK_KEEP_FREED_MEMORY=0, false, no or off) or
    this is not glibc."""
    switched_off = os.environ.get(ALLOCATOR_SWITCH, "1").strip().lower() in ("0", "false", "no", "off")
    if switched_off or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the C library already loaded into this process
    # Setting either threshold also stops glibc from adapting them (its "dynamic" threshold).
    mmap_ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    trim_ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return mmap_ok and trim_ok
