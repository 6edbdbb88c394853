"""Does a second core help? Three kinds of work, each with one thread and with all cores.

    python -m ack_numpy.lab.bench.cores [--repeats 15] [--out FILE]

1. A float32 matrix product (1024 x 1024) @ (1024 x 1024): BLAS's own threads. BLAS reads
   its thread count once, at import, so each setting runs in a fresh process.
2. Arithmetic-bound elementwise work: np.sin over 8M float32 numbers (tens of operations
   per number read), the array split in halves over two Python threads (NumPy releases
   the GIL inside the loop).
3. Memory-bound elementwise work, split the same way: out = a + b over 8M numbers (one
   add per 12 bytes moved), and col2im's shifted adds on LeNet's second layer (batch 64),
   split over channels.

If 2. gains and 3. does not, the threads do run side by side and the memory traffic is
the limit: splitting im2col, col2im, pooling or Adam over the cores cannot make them
faster on that machine. Figures: median (min-max) over repeats, interleaved.
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

import numpy as np

ELEMENTS = 8_000_000


def median_range(seconds: list[float]) -> str:
    return f"{1e3 * statistics.median(seconds):8.3f} ms ({1e3 * min(seconds):.3f}-{1e3 * max(seconds):.3f})"


def matmul_seconds(threads: str, repeats: int) -> list[float]:
    """Median-ready timings of the 1024^3 product in a fresh process with the given BLAS threads."""
    code = (f"import json, time, numpy as np\n"
            f"a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32); a @ a\n"
            f"t = []\n"
            f"for _ in range({repeats}):\n"
            f"    s = time.perf_counter(); a @ a; t.append(time.perf_counter() - s)\n"
            f"print(json.dumps(t))")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    if threads != "all":
        env.update(OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def split_in_two(pool: ThreadPoolExecutor, work, n: int) -> None:
    """work(first half) here and work(second half) on the pool's thread, at the same time."""
    other = pool.submit(work, slice(n // 2, n))
    work(slice(0, n // 2))
    other.result()


def elementwise_cases(pool: ThreadPoolExecutor) -> dict:
    """{name: (one-thread function, two-thread function)} for cases 2 and 3."""
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
            "col2im adds, LeNet layer 2, batch 64 (memory-bound)": (col2im_adds,
                                                                   lambda: split_in_two(pool, col2im_adds, c))}


def measure(repeats: int) -> dict:
    results = {"matmul 1024^3 float32 (BLAS threads)": {"1": matmul_seconds("1", repeats),
                                                         "all": matmul_seconds("all", repeats)}}
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


def report(results: dict) -> str:
    lines = [f"# python -m ack_numpy.lab.bench.cores  ({os.cpu_count()} CPUs; load average at the end "
             f"{' '.join(f'{v:.2f}' for v in os.getloadavg())})",
             "# median (min-max) over interleaved repeats; speedup = median with one thread / median with more",
             ""]
    for name, by_threads in results.items():
        (one_label, one), (more_label, more) = by_threads.items()
        speedup = statistics.median(one) / statistics.median(more)
        lines.append(f"{name}")
        lines.append(f"   1 thread      {median_range(one)}")
        lines.append(f"   {more_label + ' threads' if more_label != 'all' else 'all cores':13s} "
                     f"{median_range(more)}   speedup {speedup:.2f}x")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ack_numpy.lab.bench.cores", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", help="also write the report to this file")
    args = parser.parse_args(argv)
    text = report(measure(args.repeats))
    print(text, end="")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
