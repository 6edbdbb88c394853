"""Part 4 of the benchmark: whole training steps, each (model, batch, threads) in a fresh process.

`training_benchmarks` runs step_worker.py once per case in a subprocess: so that the peak
memory it reports is its own, and so that BLAS can be given its thread count (BLAS reads
OPENBLAS_NUM_THREADS once, at import). Every case runs with one thread and with the
library's default (all cores); `step_speedups` pairs them up.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TIMED_MODELS = ("lenet", "adaptive-lenet", "plain-small")
EPOCH_IMAGES = 60_000  # the MNIST training set
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
THREADS = ("1", "all")  # one BLAS thread; every core
WORKER = Path(__file__).resolve().parent / "step_worker.py"


def child_env(extra: dict | None = None) -> dict:
    """This environment, plus the folder holding ack_numpy on PYTHONPATH (works without pip install)."""
    package_parent = str(Path(__file__).resolve().parents[3])  # this file is <folder>/ack_numpy/lab/bench/training.py
    env = dict(os.environ, **(extra or {}))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
    return env


def thread_env(threads: str, engine_folder: str | Path | None = None) -> dict:
    """The environment of a worker: BLAS threads set to 1, or unset ("all"), and the engine
    imported from `engine_folder` (a checkout; default: this one)."""
    env = {k: v for k, v in child_env().items() if k not in THREAD_VARIABLES}
    if threads != "all":
        env.update({k: threads for k in THREAD_VARIABLES})
    if engine_folder is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(engine_folder).resolve()), env["PYTHONPATH"]])
    return env


def run_worker(settings: dict, threads: str, engine_folder: str | Path | None = None) -> dict:
    """One step_worker.py run in a fresh process; returns its figures, with the thread setting."""
    done = subprocess.run([sys.executable, str(WORKER), json.dumps(settings)],
                          env=thread_env(threads, engine_folder), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench: the training-step subprocess for {settings['model']} at batch "
                           f"{settings['batch']} ({threads} threads) failed:\n{done.stderr.strip()}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]), threads=threads)


def training_benchmarks(batches: tuple, steps: int, warmup: int, budget: float = float("inf"),
                        profile_steps: int = 5, eval_images: int = 10_000) -> list[dict]:
    """Part 4: every (model, batch, threads) in its own process. The evaluation pass over
    `eval_images` runs in the first batch size's process only (its speed does not depend
    on the training batch)."""
    results = []
    for model in TIMED_MODELS:
        for batch in batches:
            for threads in THREADS:
                settings = dict(model=model, batch=batch, steps=steps, warmup=warmup, budget=budget,
                                profile_steps=profile_steps, eval_images=eval_images if batch == batches[0] else 0)
                results.append(run_worker(settings, threads))
    return results


def step_speedups(results: list[dict]) -> dict[tuple, float]:
    """(model, batch) -> one-thread step time / all-cores step time, from the medians."""
    by_case = {(r["model"], r["batch_size"], r["threads"]): r["step_seconds"]["median"] for r in results}
    return {(m, b): by_case[(m, b, "1")] / by_case[(m, b, "all")]
            for (m, b, t) in by_case if t == "all" and (m, b, "1") in by_case}
