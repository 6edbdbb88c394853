"""Benchmarks: how fast are the layers, next to what this machine's BLAS can do?

`python -m ack_numpy bench [--quick] [--json F] [--threads N]` measures, in one run:

1. the ceiling: the float32 rate of a large square matrix product (n x n) @ (n x n),
   2*n^3 FLOPs, about the fastest arithmetic NumPy does on this machine;
2. `conv2d` and `adaptive_conv2d`, forward and forward+backward, on two reference
   shapes (SHAPES in layers.py): time, useful FLOPs (counted analytically, see
   `conv2d_flops` and `adaptive_conv2d_flops` in flops.py), GFLOP/s and the fraction
   of the ceiling;
3. for the same layers, how the forward+backward time splits into im2col, col2im,
   the matrix products and the rest (im2col and col2im timed inside the layer's own
   calls, the products alone on the same shapes);
4. whole training steps (forward, loss, backward, Adam) of `lenet`, `adaptive-lenet` and
   `plain-small` at two batch sizes, with one BLAS thread and with all cores: time,
   images per second, useful FLOPs per step (counted analytically from the layers'
   shapes, `layer_step_flops` in flops.py), GFLOP/s, the fraction of the ceiling
   measured in the same process, the speedup from one thread to all cores, peak memory,
   where the time of a step goes by op (every layer's forward and backward, the loss,
   Adam, the rest), and the no-gradient evaluation pass (images per second). Each case
   runs step_worker.py in a fresh subprocess, so that its memory peak and thread count
   are its own. `python -m ack_numpy.lab.bench.compare OTHER_CHECKOUT` runs the same
   worker against two checkouts, interleaved (compare.py).

Timing on a shared machine. Every figure is a median over repeats after a warm-up,
printed with its spread (min-max). Parts 1-3 run round-robin: each round times every
case once, so a burst of load from another process hits all cases alike and the ratios
(fraction of the ceiling, shares of a layer's time) stay fair. Each call is timed by the
wall clock and by the CPU time of the process: when other processes compete for the
cores, wall time includes waiting for a core, CPU time does not. The header prints the
load average. BLAS may use every core; `--threads 1` reruns the benchmark with
OPENBLAS_NUM_THREADS=1, which is much steadier when the cores are shared.

Reading order:

    flops.py      the useful FLOPs of each layer, counted by hand
    timing.py     round-robin timing, and im2col/col2im timed inside the layers' own calls
    layers.py     parts 1-3: the ceiling, the layers, the split of their time
    step_worker.py  part 4 in one process: one model's training step, by op, and evaluation
    training.py   part 4: every (model, batch, threads) in a fresh process
    compare.py    part 4 for two checkouts, interleaved: the before/after record
    report.py     the printed report
    __init__.py   (this file) the modes, one whole run, and the command's entry point
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

from ... import __version__
from ...files import atomic_write, check_output_file
from ...runtime import keep_freed_memory
from .layers import SHAPES, TINY_SHAPES, layer_benchmarks
from .report import format_report
from .training import child_env, training_benchmarks

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

# How much work each mode does. Parts 1-3: up to `rounds` timed rounds after a warm-up
# round, stopping early (after at least MIN_REPEATS) once `budget` seconds have passed.
# Part 4: up to `steps` timed training steps after `warmup`, stopping early (after at
# least MIN_REPEATS) after `step_budget` seconds. The budgets keep the run short when the machine is slow or busy.
MODES = {
    "full": dict(shapes=SHAPES, ceiling_n=1024, rounds=101, budget=40.0,
                 batches=(64, 128), warmup=2, steps=60, step_budget=8.0, profile_steps=7, eval_images=10_000),
    "quick": dict(shapes=SHAPES, ceiling_n=1024, rounds=7, budget=6.0,
                  batches=(64, 128), warmup=1, steps=8, step_budget=1.5, profile_steps=3, eval_images=2_000),
    "tiny": dict(shapes=TINY_SHAPES, ceiling_n=64, rounds=3, budget=1.0,
                 batches=(2, 4), warmup=1, steps=3, step_budget=0.5, profile_steps=1, eval_images=20),
}


def _blas_threads() -> str:
    set_vars = [f"{k}={os.environ[k]}" for k in BLAS_THREAD_VARIABLES if k in os.environ]
    return ", ".join(set_vars) if set_vars else "library default (" + ", ".join(BLAS_THREAD_VARIABLES) + " unset)"


def run_benchmark(mode: str = "full") -> dict:
    """All four parts in one run; returns every figure (what --json writes)."""
    settings = MODES[mode]
    freed_memory_kept = keep_freed_memory()  # as a training run does (cli.cmd_train)
    start, load_start = time.perf_counter(), os.getloadavg()
    result = {"mode": mode, "shapes": settings["shapes"]}
    result.update(layer_benchmarks(settings["shapes"], settings["rounds"], settings["ceiling_n"], settings["budget"]))
    result["training"] = training_benchmarks(settings["batches"], settings["steps"], settings["warmup"],
                                             settings["step_budget"], settings["profile_steps"],
                                             settings["eval_images"])
    result["environment"] = {
        "ack_numpy": __version__, "numpy": np.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "cpu_count": os.cpu_count(), "blas_threads": _blas_threads(),
        "blas_threads_set": any(k in os.environ for k in BLAS_THREAD_VARIABLES),
        "freed_memory_kept": freed_memory_kept,
        "load_average": list(load_start), "load_average_end": list(os.getloadavg()),
    }
    result["seconds"] = time.perf_counter() - start
    return result


def main(quick: bool = False, tiny: bool = False, json_path: str | None = None, threads: int | None = None) -> int:
    """What `python -m ack_numpy bench` runs. With `threads`, the benchmark reruns itself in
    a subprocess whose BLAS uses that many threads (BLAS reads the setting once, at import)."""
    if json_path:  # a path that cannot be written should fail now, not after minutes of timing
        check_output_file(json_path, "the --json file")
    if threads is not None and os.environ.get("OPENBLAS_NUM_THREADS") != str(threads):
        argv = [sys.executable, "-m", "ack_numpy", "bench", "--threads", str(threads)]
        argv += ["--quick"] * quick + ["--tiny"] * tiny + (["--json", json_path] if json_path else [])
        return subprocess.run(argv, env=child_env({k: str(threads) for k in BLAS_THREAD_VARIABLES})).returncode
    result = run_benchmark("tiny" if tiny else "quick" if quick else "full")
    print(format_report(result))
    if json_path:
        with atomic_write(json_path, "w") as f:
            f.write(json.dumps(result, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0
