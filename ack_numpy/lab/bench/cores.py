"""Does a second core help? Three kinds of work, each with one thread and with all cores.

    python -m ack_numpy.lab.bench.cores [--repeats 15] [--out FILE]

1. A float32 matrix product (1024 x 1024) @ (1024 x 1024): BLAS's own threads. BLAS reads
   its thread count once, at import, so each setting runs in a fresh process.
2. Arithmetic-bound elementwise work: np.sin over 8M float32 numbers (tens of operations
   per number read), the array split in halves over two Python threads (NumPy releases
   the GIL inside the loop).
3. Memory-bound elementwise work, split the same way: out = a + b over 8M numbers (one
   add per 12 bytes moved).
4. col2im's shifted adds on LeNet's second layer (batch 64), split over channels: 25
   strided adds of an 8 MB matrix into a 0.7 MB gradient that stays in cache.

If 2. gains and 3. does not, the threads do run side by side and memory traffic is the
limit for streaming work. 4. is one of the engine's own steps, timed alone. Figures:
median (min-max) over interleaved repeats.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .report import print_and_save

ELEMENTS = 8_000_000
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def median_range(seconds: list[float]) -> str:
    return f"{1e3 * statistics.median(seconds):8.3f} ms ({1e3 * min(seconds):.3f}-{1e3 * max(seconds):.3f})"


def matmul_seconds(repeats: int) -> list[float]:
    """Timings of the 1024^3 float32 product in this process, after one warm-up."""
    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    a @ a
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        seconds.append(time.perf_counter() - start)
    return seconds


def matmul_seconds_in_fresh_process(threads: str, repeats: int) -> list[float]:
    """matmul_seconds with BLAS set to `threads` ("1" or "all"), which it reads at import."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    if threads != "all":
        env.update(OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "ack_numpy.lab.bench.cores", "--matmul-only", "--repeats", str(repeats)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def split_in_two(pool: ThreadPoolExecutor, work, n: int) -> None:
    """work(first half) here and work(second half) on the pool's thread, at the same time."""
    other = pool.submit(work, slice(n // 2, n))
    work(slice(0, n // 2))
    other.result()


def elementwise_cases(pool: ThreadPoolExecutor) -> dict:
    """{name: (one-thread function, two-thread function)} for cases 2 to 4."""
    rng = np.random.default_rng(0)
    a, b = rng.random(ELEMENTS, dtype=np.float32), rng.random(ELEMENTS, dtype=np.float32)
    out = np.empty_like(a)

    def sine(part=slice(None)):
        np.sin(a[part], out=out[part])

    def add(part=slice(None)):
        np.add(a[part], b[part], out=out[part])

    # col2im of LeNet's second layer, batch 64, in conv2d's (c, u, v, i, j, n) layout.
    c, m, size, n = 20, 5, 12, 64
    o = size - m + 1
    cols6 = rng.random((c, m, m, o, o, n), dtype=np.float32)
    dx = np.zeros((c, size, size, n), dtype=np.float32)

    def col2im_adds(channels=slice(None)):
        dx[channels] = 0
        for u in range(m):
            for v in range(m):
                dx[channels, u : u + o, v : v + o] += cols6[channels, u, v]

    return {f"np.sin, {ELEMENTS:,} float32 (arithmetic-bound)": (sine, lambda: split_in_two(pool, sine, ELEMENTS)),
            f"a + b, {ELEMENTS:,} float32 (memory-bound)": (add, lambda: split_in_two(pool, add, ELEMENTS)),
            "col2im adds, LeNet layer 2, batch 64": (col2im_adds, lambda: split_in_two(pool, col2im_adds, c))}


def measure(repeats: int) -> dict:
    results = {"matmul 1024^3 float32 (BLAS threads)": {"1": matmul_seconds_in_fresh_process("1", repeats),
                                                         "all": matmul_seconds_in_fresh_process("all", repeats)}}
    with ThreadPoolExecutor(max_workers=1) as pool:
        cases = elementwise_cases(pool)
        timings = {name: {"1": [], "2": []} for name in cases}
        for _ in range(repeats):                      # interleaved: a burst of load hits every case alike
            for name, (one, two) in cases.items():
                for label, function in (("1", one), ("2", two)):
                    start = time.perf_counter()
                    function()
                    timings[name][label].append(time.perf_counter() - start)
    results.update(timings)
    return results


def report(results: dict, command: str) -> str:
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    lines = [f"# {command}  ({os.cpu_count()} CPUs; load average at the end {load})",
             "# median (min-max) over interleaved repeats; speedup = median with one thread / median with more",
             ""]
    for name, by_threads in results.items():
        (_, one), (more_label, more) = by_threads.items()
        speedup = statistics.median(one) / statistics.median(more)
        more_name = "all cores" if more_label == "all" else f"{more_label} threads"
        lines.append(f"{name}")
        lines.append(f"   1 thread      {median_range(one)}")
        lines.append(f"   {more_name:13s} {median_range(more)}   speedup {speedup:.2f}x")
    return "\n".join(lines) + "\n"


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ack_numpy.lab.bench.cores", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=15)
    parser.add_argument("--out", help="also write the report to this file")
    parser.add_argument("--matmul-only", action="store_true", help=argparse.SUPPRESS)  # the fresh process of case 1
    args = parser.parse_args(argv)
    if args.matmul_only:
        print(json.dumps(matmul_seconds(args.repeats)))
        return 0
    command = "python -m ack_numpy.lab.bench.cores " + " ".join(argv if argv is not None else sys.argv[1:])
    print_and_save(report(measure(args.repeats), command.strip()), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
