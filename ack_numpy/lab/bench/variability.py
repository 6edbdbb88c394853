"""How much the bench's figures move over time: `bench --quick` every few minutes, with
both cores and then with one BLAS thread, one summary line each.

    python -m ack_numpy.lab.bench.variability [--rounds 25] [--pause 170] [--out FILE]

Each line: the time, the matmul ceiling, the fraction of it that adaptive_conv2d's
forward+backward reaches on shapes A and B, conv2d shape B's per-call im2col+col2im
share, and the median training step of adaptive-lenet and lenet at batch 64. 25 rounds
with the default pause take about 75 minutes; lines are printed (and appended to --out)
as they come, so a stopped run keeps the rounds it finished.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .cores import positive_int


def summary_line(result: dict, threads: str) -> str:
    """One line from the result dict of `bench --json`."""
    layers = {(x["op"], x["shape"]): x for x in result["layers"] if x["pass"] == "forward_backward"}
    step = {(x["model"], x["batch_size"]): x["step_seconds"]["median"] for x in result["training"]}
    conv_b = next(b for b in result["breakdown"] if b["op"] == "conv2d" and b["shape"] == "B")
    return (f"{time.strftime('%H:%M', time.gmtime())} UTC  threads {threads:7s}"
            f"  ceiling {result['ceiling']['gflops']:5.0f} GFLOP/s"
            f"  adaptive A {layers[('adaptive_conv2d', 'A')]['fraction_of_ceiling']:4.0%}"
            f"  B {layers[('adaptive_conv2d', 'B')]['fraction_of_ceiling']:4.0%}"
            f"  conv2d B im2col+col2im {conv_b['im2col_col2im_share']:4.0%}"
            f"  adaptive-lenet b64 step {step[('adaptive-lenet', 64)] * 1e3:5.2f} ms"
            f"  lenet b64 {step[('lenet', 64)] * 1e3:5.2f} ms")


def quick_bench(threads: str, json_path: Path) -> dict:
    argv = [sys.executable, "-m", "ack_numpy", "bench", "--quick", "--json", str(json_path)]
    argv += [] if threads == "default" else ["--threads", threads]
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    return json.loads(json_path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ack_numpy.lab.bench.variability",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=positive_int, default=25)
    parser.add_argument("--pause", type=float, default=170.0, help="seconds between rounds")
    parser.add_argument("--out", help="also append every line to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        json_path = Path(folder) / "bench-quick.json"
        for round_ in range(args.rounds):
            for threads in ("default", "1"):
                line = summary_line(quick_bench(threads, json_path), threads)
                print(line, flush=True)
                if args.out:
                    with open(args.out, "a") as f:  # a log that grows: a stopped run keeps its rounds
                        f.write(line + "\n")
            if round_ + 1 < args.rounds:
                time.sleep(args.pause)
    return 0


if __name__ == "__main__":
    sys.exit(main())
