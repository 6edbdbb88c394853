"""Keep freed memory for reuse: one setting of the C allocator that removes most page faults.

Every forward and backward pass makes fresh arrays of megabytes (im2col matrices, blocks
of Z^T and GP^T, gradients) and frees them a few milliseconds later. By default glibc's
malloc (the allocator NumPy uses on Linux) gives large freed blocks back to the operating
system: blocks above its mmap threshold (128 KiB at first) are unmapped when freed, and
the top of the heap is trimmed once more than its trim threshold is free. The next array
of that size then gets new pages from the OS, and the first write to each 4 KiB page is a
page fault: the kernel stops the program, finds a page and fills it with zeros.
`python -m ack_numpy bench` prints the page faults per call and per training step, so
you can watch them (compare a run with ACK_KEEP_FREED_MEMORY=0). Measured on the
reference machine (2 cores), the same numbers computed either way:

* one forward and backward pass of `adaptive_conv2d` on the bench's shape A: several
  thousand page faults in a fresh process (tests/test_allocator.py compares the counts),
  about 1,900 and 12.7 ms inside the bench, where earlier cases have already made glibc
  raise its threshold a little; with this setting none, and 9.9 ms
  (data/bench/bench-default-threads-allocator-off.txt against bench-default-threads.txt);
* training adaptive-lenet on MNIST (data/bench/allocator-train.txt): the first epoch
  took 14.6-15.0 s with the defaults and 6.8-7.7 s with this setting. glibc raises its
  thresholds by itself as it sees large blocks freed, so the second epoch gained less
  (7.9 s -> 6.7-7.7 s); short runs, the tutorials and the bench's fresh processes gain
  the most.

`keep_freed_memory` raises both thresholds with `mallopt`, so freed blocks stay in the
process and the next array reuses pages that are already mapped. The price is that the
process holds on to its peak memory until it ends instead of shrinking between steps;
the peak itself does not grow (compare the peak RSS columns of the two bench records).

The command line (`cli.main`), the bench (its own process and its training-step
processes) and the tutorials call it. It is glibc (Linux) only; elsewhere it does
nothing. Set ACK_KEEP_FREED_MEMORY=0 (or false, no, off) to run with glibc's defaults.
"""
from __future__ import annotations

import ctypes
import os
import platform

# mallopt's parameter numbers, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# 32 MiB is as high as glibc's own adaptive threshold ever goes on 64-bit machines; arrays
# larger than this (the 188 MB training set, say) are still mapped and unmapped as usual.
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 256 * 1024 * 1024  # free memory the heap may keep at its top before giving any back

ENV_SWITCH = "ACK_KEEP_FREED_MEMORY"


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks for reuse. Returns True if the setting is now
    in force, False if it was switched off (ACK_KEEP_FREED_MEMORY=0, false, no or off) or
    this is not glibc."""
    switched_off = os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off")
    if switched_off or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the C library already loaded into this process
    # Setting either threshold also stops glibc from adapting them (its "dynamic" threshold).
    mmap_ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    trim_ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return mmap_ok and trim_ok
