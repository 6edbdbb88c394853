"""One BLAS thread or all cores, on a quiet machine and beside one busy process.

    python -m ack_numpy.lab.bench.threads [--repeats 3] [--out FILE]

What a user of `train` sees: each case is the command line itself in a fresh process,
`python -m ack_numpy train --model adaptive-lenet --epochs 1 --limit-train 6400
--limit-test 1000 --threads T`, and the figure is training images per second of that
epoch (metrics.csv's seconds, the evaluation left out). T is 1 and the machine's core
count, alternating, `--repeats` times each; first with nothing else started by this
command ("as found": the load average printed says how quiet the machine really was),
then beside one more busy process (a single-threaded float32 matrix product in a loop, as
another user's job would be). The ratio is median(T = 1) / median(all cores) images/s:
below 1 means all cores are slower. `ack_numpy/runtime.py` chooses the default from this.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .compare import THIS_CHECKOUT, describe_checkout
from .report import print_and_save

PROJECT_ROOT = Path(__file__).resolve().parents[3]
IMAGES = 6400
BUSY = ("import numpy as np\n"
        "a = np.random.default_rng(0).random((512, 512), dtype=np.float32)\n"
        "while True:\n    a @ a\n")


def child_env(threads: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env.update(OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def images_per_second(threads: int, out: Path) -> float:
    """One epoch of `train` on IMAGES images with --threads `threads`; images/s of its training."""
    command = [sys.executable, "-m", "ack_numpy", "train", "--model", "adaptive-lenet", "--epochs", "1",
               "--limit-train", str(IMAGES), "--limit-test", "1000", "--threads", str(threads),
               "--out", str(out), "--overwrite"]
    subprocess.run(command, env=child_env(None), capture_output=True, text=True, check=True)
    with open(out / "metrics.csv") as f:
        row = list(csv.DictReader(f))[-1]
    return IMAGES / float(row["seconds"])


def measure(repeats: int, cores: int, folder: Path) -> dict[int, list[float]]:
    rates: dict[int, list[float]] = {1: [], cores: []}
    for _ in range(repeats):
        for threads in (1, cores):  # alternating, so that a change of load hits both alike
            rates[threads].append(images_per_second(threads, folder / f"t{threads}"))
    return rates


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="also write the record to this file")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [f"# python -m ack_numpy.lab.bench.threads --repeats {args.repeats}"
             + (f" --out {args.out}" if args.out else ""),
             f"# {started}, {describe_checkout(THIS_CHECKOUT)}",
             f"# {cores} CPUs; adaptive-lenet, one epoch of {IMAGES} images; training images/s, "
             f"median (min-max) of {args.repeats}, T = 1 and T = {cores} alternating"]
    with tempfile.TemporaryDirectory() as tmp:
        for condition in ("as found", "beside one more busy process"):
            busy = None
            if condition != "as found":
                busy = subprocess.Popen([sys.executable, "-c", BUSY], env=child_env("1"))
            try:
                before = load()
                rates = measure(args.repeats, cores, Path(tmp))
                after = load()
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            one, every = statistics.median(rates[1]), statistics.median(rates[cores])
            lines.append(f"{condition} (load average {before} at start, {after} at end):")
            for threads in (1, cores):
                r = rates[threads]
                lines.append(f"  --threads {threads}: {statistics.median(r):7.0f} images/s "
                             f"({min(r):.0f}-{max(r):.0f})")
            lines.append(f"  one thread / all cores: {one / every:.2f}x")
    print_and_save("\n".join(lines) + "\n", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
