"""Part 4 of the benchmark: whole training steps, each (model, batch size) in a fresh process.

`training_benchmarks` starts one subprocess per (model, batch size); each runs
`train_step_worker`, so that the peak memory it reports (`peak_rss_bytes`) is its own.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from ... import functional as F
from ..allocator import keep_freed_memory
from ...autograd import Tensor
from .timing import MIN_REPEATS, page_faults, summarize

TIMED_MODELS = ("lenet", "adaptive-lenet")
EPOCH_IMAGES = 60_000  # the MNIST training set


def peak_rss_bytes() -> int:
    """The most physical memory this process has held so far.

    On Linux this is VmHWM from /proc/self/status, the high-water mark of the process's
    own memory. (resource.getrusage's ru_maxrss would be wrong in a subprocess: Linux
    carries the parent's resident size at the fork over into the child's ru_maxrss.)
    Elsewhere it is ru_maxrss (bytes on macOS)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024                  # reported in kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def graph_dtypes(loss: Tensor) -> list[str]:
    """The dtypes of every array in a graph: each tensor's data and gradient."""
    arrays = [a for node in loss.topological_order() for a in (node.data, node.grad) if a is not None]
    return sorted({str(a.dtype) for a in arrays})


def train_step_worker(model_name: str, batch_size: int, steps: int, warmup: int,
                      budget: float = float("inf"), seed: int = 0) -> dict:
    """Time up to `steps` training steps (after `warmup`) of one model in this process.

    Meant to run in a fresh process (see `training_benchmarks`), so that the peak RSS
    (`peak_rss_bytes`: the most physical memory the process ever held, interpreter and
    libraries included) belongs to this model and batch size alone.
    One more step then runs under tracemalloc, whose peak counts only the arrays (NumPy
    reports its allocations to it), and its graph gives the dtype of every array in it,
    besides the parameters, gradients and Adam moments. The batch is synthetic: speed and
    memory do not depend on pixel values, and the dataset (60,000 x 784 float32 = 188 MB
    in a real run) is left out of the figure."""
    from ... import optim
    from ...models import build_model
    from ...train import train_step

    keep_freed_memory()  # as a training run does (cli.main)
    rss_at_start = peak_rss_bytes()
    rng = np.random.default_rng(seed)
    model = build_model(model_name, seed=seed)
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    x = rng.random((batch_size, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=batch_size)
    for _ in range(warmup):
        train_step(model, optimizer, x, y)
    seconds, faults, start = [], page_faults(), time.perf_counter()
    while len(seconds) < steps and (len(seconds) < MIN_REPEATS or time.perf_counter() - start < budget):
        step_start = time.perf_counter()
        train_step(model, optimizer, x, y)
        seconds.append(time.perf_counter() - step_start)
    faults = (page_faults() - faults) / len(seconds)
    peak_rss = peak_rss_bytes()

    # One more step, written out (the calls of train.train_step) to keep its graph for the dtypes.
    tracemalloc.start()
    loss = F.cross_entropy(model(Tensor(x)), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    state = [p.data for p in model.parameters()] + [p.grad for p in model.parameters()] + optimizer.m + optimizer.v
    dtypes = sorted(set(graph_dtypes(loss)) | {str(a.dtype) for a in state if a is not None})
    median = statistics.median(seconds)
    return {"model": model_name, "batch_size": batch_size, "step_seconds": summarize(seconds),
            "images_per_second": batch_size / median, "epoch_seconds": EPOCH_IMAGES * median / batch_size,
            "page_faults_per_step": faults, "peak_rss_bytes": peak_rss, "rss_at_start_bytes": rss_at_start,
            "tracemalloc_peak_bytes": traced_peak, "dtypes": dtypes}


def child_env(extra: dict | None = None) -> dict:
    """This environment, plus the folder holding ack_numpy on PYTHONPATH (works without pip install)."""
    package_parent = str(Path(__file__).resolve().parents[3])  # this file is <folder>/ack_numpy/lab/bench/training.py
    env = dict(os.environ, **(extra or {}))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
    return env


def training_benchmarks(batches: tuple, steps: int, warmup: int, budget: float = float("inf")) -> list[dict]:
    """Part 4: one fresh subprocess per (model, batch size)."""
    results = []
    for model_name in TIMED_MODELS:
        for batch_size in batches:
            code = ("import json; from ack_numpy.lab.bench.training import train_step_worker; print(json.dumps("
                    f"train_step_worker({model_name!r}, {batch_size}, {steps}, {warmup}, {budget!r})))")
            done = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"bench: the training-step subprocess for {model_name} at batch "
                                   f"{batch_size} failed:\n{done.stderr.strip()}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results
