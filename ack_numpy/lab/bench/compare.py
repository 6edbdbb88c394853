"""Before/after: whole training steps and evaluation of two checkouts, measured interleaved.

    python -m ack_numpy.lab.bench.compare BEFORE_CHECKOUT [--rounds 5] [--out FILE]

BEFORE_CHECKOUT is another checkout of the project (say `git worktree add ../base <commit>`);
"after" is the checkout this file belongs to. Both are measured by the same step_worker.py
(this checkout's), which imports the engine from whichever checkout is first on PYTHONPATH.
Every round runs every case (model, batch, threads) once for each checkout, one after the
other, alternating which goes first; so a burst of load from another process hits both
alike, and each round gives one before/after ratio. The record quotes, per case, the
median of the per-round step medians with their range (min-max over rounds), and the
median and range of the per-round ratios. The load average is printed at the start and
end of every round.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .report import print_and_save
from .training import THREADS, TIMED_MODELS, run_worker

THIS_CHECKOUT = Path(__file__).resolve().parents[3]


def describe_checkout(folder: Path) -> str:
    """`<commit> (<branch>)`, plus "with uncommitted changes" when git says so."""
    def git(*args):
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "?"
    dirty = " with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{git('rev-parse', '--short', 'HEAD')} ({git('rev-parse', '--abbrev-ref', 'HEAD')}){dirty}"


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_rounds(before: Path, rounds: int, batches: tuple, steps: int, budget: float, eval_images: int,
               log=print) -> dict:
    """Every case for both checkouts, `rounds` times; returns {case: {"before": [...], "after": [...]}}."""
    checkouts = {"before": before, "after": THIS_CHECKOUT}
    results: dict[tuple, dict[str, list]] = {}
    loads = []
    for round_ in range(rounds):
        load_start = _load()
        order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
        for model in TIMED_MODELS:
            for batch in batches:
                for threads in THREADS:
                    settings = dict(model=model, batch=batch, steps=steps, warmup=3, budget=budget,
                                    profile_steps=1, eval_images=eval_images if batch == batches[0] else 0)
                    for name in order:
                        r = run_worker(settings, threads, checkouts[name])
                        results.setdefault((model, batch, threads), {"before": [], "after": []})[name].append(r)
        loads.append((load_start, _load()))
        log(f"round {round_ + 1}/{rounds} done, load average {loads[-1][0]} -> {loads[-1][1]}")
    return {"results": results, "loads": loads}


def _spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    return (f"{statistics.median(values) * scale:.{digits}f} "
            f"({min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f})")


def format_record(run: dict, before: Path, command: str, started: str) -> str:
    results = run["results"]
    lines = [
        "# before/after record of whole training steps and evaluation, made by one command:",
        f"#   {command}",
        f"# started {started}; before = {before} at {describe_checkout(before)},",
        f"# after = {THIS_CHECKOUT} at {describe_checkout(THIS_CHECKOUT)}",
        f"# {os.cpu_count()} CPUs; this process's niceness {os.nice(0)}; load average (1, 5, 15 min)"
        f" at the start and end of each round:",
        *[f"#   round {i + 1}: {a} -> {b}" for i, (a, b) in enumerate(run["loads"])],
        "# Each round runs every case for both checkouts back to back (alternating which goes",
        "# first), each in a fresh process running this checkout's step_worker.py. Figures: median",
        "# over rounds of each run's median step (min-max over rounds); ratio = before / after per",
        "# round, median (min-max). threads 1 = OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=1; all = default.",
        "# float32 results differ in the last digits across BLAS builds and thread counts.",
        "",
        f"{'model':15s} {'batch':>5s} {'thr':>3s} {'before, ms':>22s} {'after, ms':>22s} {'speedup':>18s}"
        f" {'peak RSS before/after':>22s}  dtypes after",
    ]
    for (model, batch, threads), runs in results.items():
        b = [r["step_seconds"]["median"] for r in runs["before"]]
        a = [r["step_seconds"]["median"] for r in runs["after"]]
        ratios = [x / y for x, y in zip(b, a)]
        rss_b = statistics.median(r["peak_rss_bytes"] for r in runs["before"]) / 2**20
        rss_a = statistics.median(r["peak_rss_bytes"] for r in runs["after"]) / 2**20
        dtypes = ",".join(sorted({d for r in runs["after"] for d in r["dtypes"]}))
        lines.append(f"{model:15s} {batch:5d} {threads:>3s} {_spread(b, 1e3):>22s} {_spread(a, 1e3):>22s}"
                     f" {_spread(ratios) + 'x':>18s} {f'{rss_b:.0f} / {rss_a:.0f} MiB':>22s}  {dtypes}")
    lines += ["", "one thread -> all cores (step time with 1 thread / with all, per round), median (min-max):"]
    for model in TIMED_MODELS:
        for batch in sorted({k[1] for k in results}):
            one, every = results.get((model, batch, "1")), results.get((model, batch, "all"))
            if not (one and every):
                continue
            cells = []
            for name in ("before", "after"):
                ratios = [x["step_seconds"]["median"] / y["step_seconds"]["median"]
                          for x, y in zip(one[name], every[name])]
                cells.append(f"{name} {_spread(ratios)}x")
            lines.append(f"  {model:15s} batch {batch:4d}: " + ", ".join(cells))
    evaluated = [runs for runs in results.values() if "eval_images_per_second" in runs["after"][0]]
    batch_sizes = ", ".join(f"{name} {evaluated[0][name][0].get('eval_batch_size', '?')}"
                            for name in ("before", "after")) if evaluated else ""
    lines += ["", f"evaluation pass (train.evaluate, no gradient, in batches of its default size: {batch_sizes}), "
              "images/s, median (min-max):"]
    for (model, batch, threads), runs in results.items():
        if "eval_images_per_second" not in runs["after"][0]:
            continue
        b = [r["eval_images_per_second"] for r in runs["before"]]
        a = [r["eval_images_per_second"] for r in runs["after"]]
        ratios = [y / x for x, y in zip(b, a)]
        lines.append(f"  {model:15s} threads {threads:>3s}: {runs['after'][0]['eval_images']:,} images; before "
                     f"{_spread(b, digits=0)}, after {_spread(a, digits=0)}, speedup {_spread(ratios)}x")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ack_numpy.lab.bench.compare", description=__doc__.split("\n")[0])
    parser.add_argument("before", help="the other checkout (the 'before' engine)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run (after 3 warm-up steps)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of timed steps per run, at most")
    parser.add_argument("--eval-images", type=int, default=10_000)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--out", help="also write the record to this file")
    args = parser.parse_args(argv)
    before = Path(args.before).resolve()
    if not (before / "ack_numpy" / "__init__.py").is_file():
        print(f"error: {before}: not a checkout of the project (no ack_numpy/__init__.py)", file=sys.stderr)
        return 1
    command = "python -m ack_numpy.lab.bench.compare " + " ".join(argv if argv is not None else sys.argv[1:])
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    run = run_rounds(before, args.rounds, tuple(args.batches), args.steps, args.budget, args.eval_images,
                     log=lambda message: print(message, file=sys.stderr, flush=True))
    print_and_save(format_record(run, before, command, started), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
