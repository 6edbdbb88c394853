"""Does ordering the locations (i, j, n) instead of (n, i, j) pay? conv2d's forward+backward
both ways, side by side, on LeNet's two convolutions at batch 64.

    python -m ack_numpy.lab.bench.layout [--rounds 30] [--out FILE]

"batch first" is im2col.py's layout, as `conv2d_reference` and the tutorials use it: rows
in (n, i, j) order. "batch last" is what `conv2d` does (conv.py's `im2col_batch_last` and
`col2im_batch_last`): x first copied as (C, H, W, N), so that every shifted image the
copy makes (and the backward adds back) is made of runs of Wo*N contiguous numbers
instead of Wo, for a copy of x and transposing copies of the output and its gradient.
Both do the arithmetic of `conv2d` without the Tensor (the same matrix products). For
scale, the same run times a whole lenet training step (batch 64, which runs both
convolutions once forward and once backward). Figures: median (min-max) over rounds,
the cases interleaved within each round.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

from ... import optim
from ...functional import col2im, conv_output_size, im2col
from ...functional.conv import col2im_batch_last, im2col_batch_last
from ...models import build_model
from ...train import train_step
from .cores import median_range, positive_int
from .report import print_and_save

BATCH = 64
SHAPES = {"conv1 (1->20, 28x28)": (1, 28, 20), "conv2 (20->50, 12x12)": (20, 12, 50)}  # C, H=W, O; m = 5
M = 5


def conv_batch_first(x, Wf, g, m):
    """conv2d's arithmetic (functional/conv.py) without the Tensor: y, then dWf and dx from g."""
    n, o = x.shape[0], Wf.shape[0]
    ho = conv_output_size(x.shape[2], m, 1, 0)
    PT = im2col(x, m).T                                                     # (D, N*Ho*Wo)
    y = np.ascontiguousarray((Wf @ PT).reshape(o, n, ho, ho).transpose(1, 0, 2, 3))
    GT = g.transpose(1, 0, 2, 3).reshape(o, -1)
    return y, GT @ PT.T, col2im((Wf.T @ GT).T, x.shape, m)


def conv_batch_last(x, Wf, g, m):
    """The same with the locations in (i, j, n) order."""
    n, o = x.shape[0], Wf.shape[0]
    ho = conv_output_size(x.shape[2], m, 1, 0)
    PT = im2col_batch_last(x, m)                                            # (D, Ho*Wo*N)
    y = np.ascontiguousarray((Wf @ PT).reshape(o, ho, ho, n).transpose(3, 0, 1, 2))
    GT = g.transpose(1, 2, 3, 0).reshape(o, -1)
    return y, GT @ PT.T, col2im_batch_last(Wf.T @ GT, x.shape, m)


def measure(rounds: int) -> tuple[dict, list[float]]:
    rng = np.random.default_rng(0)
    cases, seconds = {}, {}
    for name, (c, h, o) in SHAPES.items():
        x = rng.random((BATCH, c, h, h), dtype=np.float32)
        Wf = rng.normal(size=(o, c * M * M)).astype(np.float32)
        g = rng.normal(size=(BATCH, o, h - M + 1, h - M + 1)).astype(np.float32)
        first, last = conv_batch_first(x, Wf, g, M), conv_batch_last(x, Wf, g, M)
        for a, b in zip(first, last):  # the same numbers, or the comparison means nothing
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(a).max())
        for layout, conv in (("batch first", conv_batch_first), ("batch last", conv_batch_last)):
            cases[(name, layout)] = (conv, x, Wf, g)
            seconds[(name, layout)] = []
    model = build_model("lenet", seed=0)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    xs, ys = rng.random((BATCH, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, size=BATCH)
    steps = []
    for _ in range(3):  # warm up: first touches of every array
        train_step(model, opt, xs, ys)
        for conv, x, Wf, g in cases.values():
            conv(x, Wf, g, M)
    for _ in range(rounds):
        for key, (conv, x, Wf, g) in cases.items():
            start = time.perf_counter()
            conv(x, Wf, g, M)
            seconds[key].append(time.perf_counter() - start)
        start = time.perf_counter()
        train_step(model, opt, xs, ys)
        steps.append(time.perf_counter() - start)
    return seconds, steps


def report(seconds: dict, steps: list[float], command: str) -> str:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    lines = [f"# {command}  (OPENBLAS_NUM_THREADS={threads}; load average at the end {load})",
             "# conv2d forward+backward (y, dW, dx) at batch 64, median (min-max) over interleaved rounds", ""]
    saved = 0.0
    for name in SHAPES:
        first, last = seconds[(name, "batch first")], seconds[(name, "batch last")]
        saved += statistics.median(first) - statistics.median(last)
        lines += [name,
                  f"   batch first (n, i, j)  {median_range(first)}",
                  f"   batch last  (i, j, n)  {median_range(last)}   "
                  f"ratio {statistics.median(first) / statistics.median(last):.2f}x"]
    step = statistics.median(steps)
    lines += ["", f"lenet training step          {median_range(steps)}",
              f"batch last would save {saved * 1e3:.3f} ms of it ({saved / step:.1%} of a step)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ack_numpy.lab.bench.layout", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=positive_int, default=30)
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args(argv)
    command = "python -m ack_numpy.lab.bench.layout " + " ".join(argv if argv is not None else sys.argv[1:])
    print_and_save(report(*measure(args.rounds), command.strip()), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
