"""What does the in-place check cost? The CPU time a training step spends in it.

    python -m ack_numpy.lab.bench.inplace_check [--steps 20] [--batch 64] [--out FILE]

The autograd engine refuses a backward whose arrays changed after the forward pass
(`saved_state` at each recorded op, `check_unchanged` before each op's backward, in
autograd.py). This command runs whole training steps (forward, loss, backward, Adam) of
each timed model on random images, one BLAS thread, and adds up the CPU time spent
inside those two functions, next to the CPU time of the whole step, in the same steps.
CPU time (not wall time) because it does not count waiting for a core on a shared
machine; the share printed is the check's time over the step's time.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from ... import autograd, optim
from ...autograd import Tensor
from ...functional import cross_entropy
from ...models import build_model
from .compare import THIS_CHECKOUT, describe_checkout
from .report import print_and_save
from .training import TIMED_MODELS


def cpu_timed(function, spent: list[float]):
    """`function`, adding the CPU seconds of each call to spent[0]."""
    def timed(*args):
        start = time.process_time()
        try:
            return function(*args)
        finally:
            spent[0] += time.process_time() - start
    return timed


def measure(model_name: str, steps: int, batch: int, spent: list[float]) -> tuple[float, float]:
    """(CPU seconds per step, CPU seconds per step inside the check), after 3 warm-up steps."""
    rng = np.random.default_rng(0)
    x, y = rng.random((batch, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, batch)
    model = build_model(model_name, seed=0)
    optimizer = optim.Adam(model.parameters())

    def step():
        optimizer.zero_grad()
        cross_entropy(model(Tensor(x)), y).backward()
        optimizer.step()

    for _ in range(3):
        step()
    spent[0] = 0.0
    start = time.process_time()
    for _ in range(steps):
        step()
    return (time.process_time() - start) / steps, spent[0] / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ack_numpy.lab.bench.inplace_check",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model (after 3 warm-up steps)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", help="also write the record to this file")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        parser.error("--steps and --batch must be positive")
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        print("note: run with OPENBLAS_NUM_THREADS=1 for CPU times that do not count idle BLAS threads",
              file=sys.stderr)
    command = "python -m ack_numpy.lab.bench.inplace_check " + " ".join(argv if argv is not None else sys.argv[1:])
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [f"# {command}", f"# {started}, {describe_checkout(THIS_CHECKOUT)}",
             f"# CPU ms per training step (forward, loss, backward, Adam), mean over {args.steps} steps of batch "
             f"{args.batch}; load average at the start {' '.join(f'{v:.2f}' for v in os.getloadavg())} (2 CPUs)", ""]
    spent = [0.0]
    originals = autograd.saved_state, autograd.check_unchanged
    # The instrument wraps the two functions while it measures; nothing else changes.
    autograd.saved_state, autograd.check_unchanged = (cpu_timed(f, spent) for f in originals)
    try:
        results = {name: measure(name, args.steps, args.batch, spent) for name in TIMED_MODELS}
    finally:
        autograd.saved_state, autograd.check_unchanged = originals
    for name, (step, check) in results.items():
        lines.append(f"{name:15s} step {step * 1e3:7.2f} ms CPU, in the in-place check {check * 1e3:6.2f} ms "
                     f"({100 * check / step:4.1f}%)")
    print_and_save("\n".join(lines) + "\n", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
