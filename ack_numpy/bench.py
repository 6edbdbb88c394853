"""Benchmarks: how fast are the layers, next to what this machine's BLAS can do?

`python -m ack_numpy bench [--quick] [--json F] [--threads N]` measures, in one run:

1. the ceiling: the float32 rate of a large square matrix product (n x n) @ (n x n),
   2*n^3 FLOPs, about the fastest arithmetic NumPy does on this machine;
2. `conv2d` and `adaptive_conv2d`, forward and forward+backward, on two reference
   shapes (SHAPES below): time, useful FLOPs (counted analytically, see
   `conv2d_flops` and `adaptive_conv2d_flops`), GFLOP/s and the fraction of the ceiling;
3. for the same layers, how the forward+backward time splits into im2col, col2im,
   the matrix products and the rest (im2col and col2im timed inside the layer's own
   calls, the products alone on the same shapes);
4. whole training steps (forward, loss, backward, Adam) of `lenet` and
   `adaptive-lenet`: images per second, seconds per 60,000-image epoch, peak memory.
   Each (model, batch size) runs in a fresh subprocess, so that its memory peak is its own.

Timing on a shared machine. Every figure is a median over repeats after a warm-up,
printed with its spread (min-max). Parts 1-3 run round-robin: each round times every
case once, so a burst of load from another process hits all cases alike and the ratios
(fraction of the ceiling, shares of a layer's time) stay fair. Each call is timed by the
wall clock and by the CPU time of the process: when other processes compete for the
cores, wall time includes waiting for a core, CPU time does not. The header prints the
load average. BLAS may use every core; `--threads 1` reruns the benchmark with
OPENBLAS_NUM_THREADS=1, which is much steadier when the cores are shared.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from . import functional as F
from .allocator import keep_freed_memory
from .autograd import Tensor
from .functional import adaptive as adaptive_module
from .functional import conv as conv_module
from .functional.adaptive import location_blocks
from .functional.im2col import conv_output_size, im2col

# The reference layer shapes (issue 6): A is a first layer on MNIST, B a second layer.
SHAPES = {
    "A": dict(N=64, C=1, H=28, W=28, m=5, O=8),
    "B": dict(N=64, C=8, H=12, W=12, m=3, O=16),
}
TINY_SHAPES = {  # for the test suite only: the same code paths in milliseconds
    "A": dict(N=2, C=1, H=8, W=8, m=3, O=2),
    "B": dict(N=2, C=2, H=6, W=6, m=3, O=3),
}
MODELS = ("lenet", "adaptive-lenet")
EPOCH_IMAGES = 60_000  # the MNIST training set
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

# How much work each mode does. Parts 1-3: up to `rounds` timed rounds after a warm-up
# round, stopping early (after at least 3) once `budget` seconds have passed. Part 4: up
# to `steps` timed training steps after `warmup`, stopping early (after at least 3) after
# `step_budget` seconds. The budgets keep the run short when the machine is slow or busy.
MODES = {
    "full": dict(shapes=SHAPES, ceiling_n=1024, rounds=101, budget=40.0,
                 batches=(64, 128), warmup=2, steps=60, step_budget=8.0),
    "quick": dict(shapes=SHAPES, ceiling_n=1024, rounds=7, budget=6.0,
                  batches=(64, 128), warmup=1, steps=8, step_budget=1.5),
    "tiny": dict(shapes=TINY_SHAPES, ceiling_n=64, rounds=3, budget=1.0,
                 batches=(2, 4), warmup=1, steps=3, step_budget=0.5),
}
MIN_REPEATS = 3


# ----------------------------------------------------------------------------- FLOP counts
def _sizes(N: int, C: int, H: int, W: int, m: int, stride: int = 1, padding: int = 0) -> tuple[int, int]:
    """R = N*Ho*Wo locations and D = C*m*m numbers per patch."""
    ho, wo = conv_output_size(H, m, stride, padding), conv_output_size(W, m, stride, padding)
    return N * ho * wo, C * m * m


def conv2d_flops(N: int, C: int, H: int, W: int, m: int, O: int, stride: int = 1, padding: int = 0) -> dict:
    """Useful FLOPs of conv2d; a multiply-add counts 2, R = N*Ho*Wo, D = C*m*m.

        forward   Y   = P Wf^T     2*R*O*D
        backward  dWf = G^T P      2*R*O*D
                  dP  = G Wf       2*R*O*D

    Not counted: the bias (R*O adds forward, R*O for db), im2col/col2im and layout
    copies (they move numbers; they do no arithmetic the convolution needs).
    """
    R, D = _sizes(N, C, H, W, m, stride, padding)
    forward = 2 * R * O * D
    backward = 2 * R * O * D + 2 * R * O * D
    return {"forward": forward, "backward": backward, "forward_backward": forward + backward}


def adaptive_conv2d_flops(N: int, C: int, H: int, W: int, m: int, O: int, stride: int = 1,
                          padding: int = 0) -> dict:
    """Useful FLOPs of adaptive_conv2d with a static kernel w; R = N*Ho*Wo, D = C*m*m.

        forward   Z = P Qs^T           2*R*O*D^2   every dynamic kernel Q_o p_r
                  rowsum_d(Z * P)      2*R*O*D     p_r^T (Q_o p_r)
                  P w^T                2*R*O*D     the static kernel
        backward  dQ = GP^T P          2*R*O*D^2
                  dP = GP Ss + G w     2*R*O*D^2 + 2*R*O*D
                  dw = G^T P           2*R*O*D

    Not counted: forming GP[r, (o,d)] = G[r,o] P[r,d] (R*O*D multiplies that only
    rearrange the gradient), Ss = Q + Q^T, the bias, im2col/col2im and layout copies.
    """
    R, D = _sizes(N, C, H, W, m, stride, padding)
    forward = 2 * R * O * D * D + 2 * R * O * D + 2 * R * O * D
    backward = 2 * R * O * D * D + (2 * R * O * D * D + 2 * R * O * D) + 2 * R * O * D
    return {"forward": forward, "backward": backward, "forward_backward": forward + backward}


FLOP_COUNTS = {"conv2d": conv2d_flops, "adaptive_conv2d": adaptive_conv2d_flops}


# ----------------------------------------------------------------------------- timing
def summarize(seconds: list[float]) -> dict:
    """Median and spread of repeated timings (seconds)."""
    q1, _, q3 = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else (seconds[0],) * 3
    return {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds),
            "q1": q1, "q3": q3, "repeats": len(seconds)}


def _page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


# Seconds spent inside im2col and col2im while `timing_im2col_col2im` is active.
PIECE_SECONDS = {"im2col": 0.0, "col2im": 0.0}


def _timed(name: str, function: Callable) -> Callable:
    def timed_function(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            PIECE_SECONDS[name] += time.perf_counter() - start
    return timed_function


@contextlib.contextmanager
def timing_im2col_col2im():
    """While active, every call the layers make to im2col or col2im adds its wall time to
    PIECE_SECONDS. It swaps the names conv.py and adaptive.py imported for timed wrappers
    (put back on exit), so the pieces are timed inside a real forward+backward, with the
    operands where the layer leaves them: dP^T is still in the cache when col2im reads
    it, which timing col2im alone on a stored array would miss."""
    originals = [(module, name, getattr(module, name))
                 for module in (conv_module, adaptive_module) for name in PIECE_SECONDS]
    for module, name, function in originals:
        setattr(module, name, _timed(name, function))
    try:
        yield
    finally:
        for module, name, function in originals:
            setattr(module, name, function)


def time_round_robin(cases: dict[str, Callable[[], object]], rounds: int,
                     budget: float = float("inf")) -> dict[str, dict[str, list]]:
    """Time every case once per round, after one untimed warm-up round; up to `rounds`
    rounds, fewer (but at least MIN_REPEATS) if `budget` seconds run out.

    Interleaving (rather than 20 x case 1, then 20 x case 2) spreads the load from other
    processes evenly over the cases, so ratios between them are fair. For every call it
    records the wall clock ("wall"), the CPU time of this process ("cpu", all threads),
    the page faults ("faults": fresh memory the kernel had to map, a hidden cost of
    allocating new arrays) and the wall time spent inside im2col and col2im."""
    for fn in cases.values():
        fn()
    records = {name: {"wall": [], "cpu": [], "faults": [], **{p: [] for p in PIECE_SECONDS}} for name in cases}
    start = time.perf_counter()
    with timing_im2col_col2im():
        for done in range(rounds):
            if done >= MIN_REPEATS and time.perf_counter() - start > budget:
                break
            for name, fn in cases.items():
                pieces = dict(PIECE_SECONDS)
                faults, wall, cpu = _page_faults(), time.perf_counter(), time.process_time()
                fn()
                records[name]["cpu"].append(time.process_time() - cpu)
                records[name]["wall"].append(time.perf_counter() - wall)
                records[name]["faults"].append(_page_faults() - faults)
                for piece, seconds in PIECE_SECONDS.items():
                    records[name][piece].append(seconds - pieces[piece])
    return records


# ----------------------------------------------------------------------------- the cases
def layer_case(op: str, shape: dict, rng: np.random.Generator) -> dict:
    """float32 inputs, parameters and an upstream gradient for one layer on one shape.

    Every input requires a gradient (x too), so forward+backward includes dx = col2im(dP),
    as in any layer but the first."""
    N, C, H, W, m, O = (shape[k] for k in ("N", "C", "H", "W", "m", "O"))
    D = C * m * m
    ho, wo = conv_output_size(H, m, 1, 0), conv_output_size(W, m, 1, 0)
    f32 = np.float32
    x = Tensor(rng.standard_normal((N, C, H, W), dtype=f32), requires_grad=True)
    # Scales as float32 scalars: a float64 NumPy scalar would silently make the array float64.
    if op == "conv2d":
        params = [rng.standard_normal((O, C, m, m), dtype=f32) * f32(D**-0.5), rng.standard_normal(O, dtype=f32)]
    else:
        params = [rng.standard_normal((O, D, D), dtype=f32) * f32(0.1 / D),
                  rng.standard_normal((O, D), dtype=f32) * f32(D**-0.5), rng.standard_normal(O, dtype=f32)]
    params = [Tensor(p, requires_grad=True) for p in params]
    grad = rng.standard_normal((N, O, ho, wo), dtype=f32)
    function = F.conv2d if op == "conv2d" else F.adaptive_conv2d

    def forward():
        return function(x, *params)

    def forward_backward():
        for t in (x, *params):
            t.grad = None
        function(x, *params).backward(grad)

    return {"forward": forward, "forward_backward": forward_backward, "x": x.data, "m": m,
            "params": [p.data for p in params], "grad": grad}


def matmul_pieces(op: str, case: dict) -> Callable[[], None]:
    """The matrix products of one forward+backward of the layer, alone, with the layer's
    shapes and memory layouts (see conv.py and adaptive.py); operands are made once."""
    x, grad, m = case["x"], case["grad"], case["m"]
    O = grad.shape[1]
    PT = np.ascontiguousarray(im2col(x, m).T)                              # (D, R)
    D, R = PT.shape
    GT = np.ascontiguousarray(grad.transpose(1, 0, 2, 3)).reshape(O, R)    # (O, R)
    # (conv2d orders the R locations (i, j, n): the same shapes, so the same speed)
    if op == "conv2d":
        Wf = case["params"][0].reshape(O, D)

        def products():
            Wf @ PT, GT @ PT.T, Wf.T @ GT                                  # Y^T, dWf, dP^T
        return products

    Q, w = case["params"][0], case["params"][1]
    Qs, SsT = Q.reshape(O * D, D), (Q + Q.transpose(0, 2, 1)).reshape(O * D, D).T
    blocks = location_blocks(R, O * D, PT.itemsize)
    # One block of GP^T, reused for every block: the products see cache-hot operands,
    # as they do inside the layer, where GP^T is made just before it is used.
    GPT = np.ones((O * D, blocks[0].stop - blocks[0].start), dtype=PT.dtype)
    dPT = np.empty_like(PT)

    def products():
        for cols in blocks:
            Pc = PT[:, cols]
            Qs @ Pc                                                        # Z^T
            gp = GPT[:, : Pc.shape[1]]
            gp @ Pc.T                                                      # dQ
            np.matmul(SsT, gp, out=dPT[:, cols])                           # dP^T
        w @ PT, w.T @ GT, GT @ PT.T                                        # static kernel, its dP, dw
    return products


def layer_benchmarks(shapes: dict, rounds: int, ceiling_n: int, budget: float = float("inf"),
                     seed: int = 0) -> dict:
    """Parts 1-3: the ceiling, every layer on every shape, and their pieces, round-robin."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((ceiling_n, ceiling_n), dtype=np.float32)
    b = rng.standard_normal((ceiling_n, ceiling_n), dtype=np.float32)
    cases: dict[str, Callable[[], object]] = {"ceiling": lambda: a @ b}
    for shape_name, shape in shapes.items():
        m = shape["m"]
        for op in FLOP_COUNTS:
            case = layer_case(op, shape, rng)
            key = f"{op}/{shape_name}"
            cases[f"{key}/forward"] = case["forward"]
            cases[f"{key}/forward_backward"] = case["forward_backward"]
            cases[f"{key}/matmuls"] = matmul_pieces(op, case)
    records = time_round_robin(cases, rounds, budget)
    wall = {name: summarize(r["wall"]) for name, r in records.items()}
    cpu = {name: statistics.median(r["cpu"]) for name, r in records.items()}
    faults = {name: statistics.median(r["faults"]) for name, r in records.items()}

    flops = 2 * ceiling_n**3
    ceiling = {"n": ceiling_n, "flops": flops, "seconds": wall["ceiling"],
               "gflops": flops / wall["ceiling"]["median"] / 1e9,
               "gflops_min": flops / wall["ceiling"]["max"] / 1e9,
               "gflops_max": flops / wall["ceiling"]["min"] / 1e9,
               "cpu_seconds": cpu["ceiling"], "gflops_per_cpu_second": flops / cpu["ceiling"] / 1e9}
    layers, breakdown = [], []
    for shape_name, shape in shapes.items():
        for op, count in FLOP_COUNTS.items():
            key, n_flops = f"{op}/{shape_name}", count(**shape)
            for pass_ in ("forward", "forward_backward"):
                t, c = wall[f"{key}/{pass_}"], cpu[f"{key}/{pass_}"]
                gflops = n_flops[pass_] / t["median"] / 1e9
                layers.append({
                    "op": op, "shape": shape_name, "dims": shape, "pass": pass_, "flops": n_flops[pass_],
                    "seconds": t, "gflops": gflops, "gflops_min": n_flops[pass_] / t["max"] / 1e9,
                    "gflops_max": n_flops[pass_] / t["min"] / 1e9, "fraction_of_ceiling": gflops / ceiling["gflops"],
                    "cpu_seconds": c,
                    "cpu_fraction_of_ceiling": n_flops[pass_] / c / 1e9 / ceiling["gflops_per_cpu_second"],
                    "page_faults": faults[f"{key}/{pass_}"]})
            calls = records[f"{key}/forward_backward"]
            total = wall[f"{key}/forward_backward"]["median"]
            seconds = {p: statistics.median(calls[p]) for p in PIECE_SECONDS}
            seconds["matmuls"] = wall[f"{key}/matmuls"]["median"]
            seconds["other"] = max(total - sum(seconds.values()), 0.0)
            # The target's figure, call by call: (im2col + col2im) / forward+backward of the same call.
            per_call = [(a + b) / t for a, b, t in zip(calls["im2col"], calls["col2im"], calls["wall"])]
            breakdown.append({
                "op": op, "shape": shape_name, "forward_backward_seconds": total, "seconds": seconds,
                "share": {p: s / total for p, s in seconds.items()},
                "im2col_col2im_share": statistics.median(per_call),
                "im2col_col2im_share_min": min(per_call), "im2col_col2im_share_max": max(per_call),
                "page_faults": faults[f"{key}/forward_backward"]})
    return {"ceiling": ceiling, "layers": layers, "breakdown": breakdown}


# ----------------------------------------------------------------------------- training steps
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
    arrays = [a for node in loss._topological_order() for a in (node.data, node.grad) if a is not None]
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
    from . import optim
    from .models import build_model
    from .train import train_step

    keep_freed_memory()  # as a training run does (cli.main)
    rss_at_start = peak_rss_bytes()
    rng = np.random.default_rng(seed)
    model = build_model(model_name, seed=seed)
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    x = rng.random((batch_size, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=batch_size)
    for _ in range(warmup):
        train_step(model, optimizer, x, y)
    seconds, faults, start = [], _page_faults(), time.perf_counter()
    while len(seconds) < steps and (len(seconds) < MIN_REPEATS or time.perf_counter() - start < budget):
        step_start = time.perf_counter()
        train_step(model, optimizer, x, y)
        seconds.append(time.perf_counter() - step_start)
    faults = (_page_faults() - faults) / len(seconds)
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


def _child_env(extra: dict | None = None) -> dict:
    """This environment, plus the folder holding ack_numpy on PYTHONPATH (works without pip install)."""
    package_parent = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, **(extra or {}))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
    return env


def training_benchmarks(batches: tuple, steps: int, warmup: int, budget: float = float("inf")) -> list[dict]:
    """Part 4: one fresh subprocess per (model, batch size)."""
    results = []
    for model_name in MODELS:
        for batch_size in batches:
            code = ("import json; from ack_numpy.bench import train_step_worker; print(json.dumps("
                    f"train_step_worker({model_name!r}, {batch_size}, {steps}, {warmup}, {budget!r})))")
            done = subprocess.run([sys.executable, "-c", code], env=_child_env(), capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"bench: the training-step subprocess for {model_name} at batch "
                                   f"{batch_size} failed:\n{done.stderr.strip()}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


# ----------------------------------------------------------------------------- report
def _ms(seconds: dict) -> str:
    return f"{seconds['median'] * 1e3:.2f} ms ({seconds['min'] * 1e3:.2f}-{seconds['max'] * 1e3:.2f})"


def _dims(shape: dict) -> str:
    return f"N={shape['N']} C={shape['C']} {shape['H']}x{shape['W']} m={shape['m']} O={shape['O']}"


def format_report(result: dict) -> str:
    """The printed report: one section per part, medians with their (min-max) spread."""
    env, c = result["environment"], result["ceiling"]
    load = " ".join(f"{v:.2f}" for v in env["load_average"])
    load_end = " ".join(f"{v:.2f}" for v in env["load_average_end"])
    repeats = sorted({r["seconds"]["repeats"] for r in result["layers"]})
    lines = [
        f"ack_numpy {env['ack_numpy']} bench ({result['mode']}): numpy {env['numpy']}, Python {env['python']}, "
        f"{env['cpu_count']} CPUs",
        f"load average (1, 5, 15 min): {load} at start, {load_end} at end",
        f"BLAS threads: {env['blas_threads']}",
        "memory: " + ("freed blocks kept for reuse (allocator.py)" if env["freed_memory_kept"]
                      else "the C library's defaults (ACK_KEEP_FREED_MEMORY=0, or not glibc)"),
        *([f"note: the load average is above the {env['cpu_count']} CPUs and BLAS may use them all; its threads"
           f" then wait for each other (rerun with --threads 1)"]
          if env["load_average"][0] > (env["cpu_count"] or 1) and not env["blas_threads_set"] else []),
        f"parts 1-3: {'/'.join(map(str, repeats))} timed rounds after a warm-up, round-robin; "
        f"figures are medians (min-max)",
        "",
        f"1. ceiling: float32 ({c['n']} x {c['n']}) @ ({c['n']} x {c['n']}) = {c['flops'] / 1e9:.2f} GFLOP",
        f"   {_ms(c['seconds'])}  ->  {c['gflops']:.1f} GFLOP/s ({c['gflops_min']:.1f}-{c['gflops_max']:.1f});"
        f"  per CPU-second: {c['gflops_per_cpu_second']:.1f}",
        "",
        "2. layers in float32; every input requires a gradient (forward+backward includes dx)",
    ]
    lines += [f"   shape {name}: {_dims(shape)}" for name, shape in result["shapes"].items()]
    lines.append(f"   {'op':16s} {'shape':5s} {'pass':8s} {'time, median (min-max)':>27s} {'MFLOP':>7s}"
                 f" {'GFLOP/s (range)':>16s} {'of ceiling':>10s} {'CPU-time':>9s}")
    for r in result["layers"]:
        rate = f"{r['gflops']:.1f} ({r['gflops_min']:.0f}-{r['gflops_max']:.0f})"
        lines.append(f"   {r['op']:16s} {r['shape']:5s} {'fwd' if r['pass'] == 'forward' else 'fwd+bwd':8s}"
                     f" {_ms(r['seconds']):>27s} {r['flops'] / 1e6:7.1f} {rate:>16s}"
                     f" {r['fraction_of_ceiling']:10.0%} {r['cpu_fraction_of_ceiling']:9.0%}")
    lines += [
        "   of ceiling = GFLOP/s / ceiling GFLOP/s (wall-clock medians); CPU-time = the same ratio",
        "   from CPU-time medians, which leave out waiting for a core held by another process.",
        "   Useful FLOPs (a multiply-add = 2; R = N*Ho*Wo, D = C*m*m):",
        "     conv2d    fwd 2ROD (Y = P Wf^T); bwd 2ROD (dW = G^T P) + 2ROD (dP = G Wf)",
        "     adaptive  fwd 2ROD^2 (Z = P Qs^T) + 2ROD (rowsum Z*P) + 2ROD (P w^T);",
        "               bwd 2ROD^2 (dQ = GP^T P) + 2ROD^2 + 2ROD (dP = GP Ss + G w) + 2ROD (dw = G^T P)",
        "     not counted: bias, forming GP, Q + Q^T, im2col/col2im and other copies",
        "",
        "3. shares of forward+backward time (wall-clock medians; im2col and col2im timed inside",
        "   the layer's own calls, the matrix products alone on the same shapes; other = the rest:",
        "   elementwise work such as the rowsum and forming GP, layout copies, graph bookkeeping,",
        "   and mapping fresh memory: see page faults). im2col+col2im per call: the share in each",
        "   forward+backward call, median (min-max)",
        f"   {'op':16s} {'shape':5s} {'fwd+bwd':>9s} {'im2col':>7s} {'col2im':>7s} {'matmuls':>8s} {'other':>6s}"
        f"   {'im2col+col2im per call':>22s} {'page faults':>11s}",
    ]
    for r in result["breakdown"]:
        s = r["share"]
        per_call = (f"{r['im2col_col2im_share']:.0%} ({r['im2col_col2im_share_min']:.0%}"
                    f"-{r['im2col_col2im_share_max']:.0%})")
        lines.append(f"   {r['op']:16s} {r['shape']:5s} {r['forward_backward_seconds'] * 1e3:6.2f} ms"
                     f" {s['im2col']:7.0%} {s['col2im']:7.0%} {s['matmuls']:8.0%} {s['other']:6.0%}"
                     f"   {per_call:>22s} {r['page_faults']:11.0f}")
    lines += [
        "",
        "4. training steps (forward, cross-entropy, backward, Adam) on one synthetic batch, each",
        "   (model, batch) in a fresh process. peak RSS: VmHWM of that process (Python and NumPy",
        "   included, the dataset not loaded; 'start' = before the model was built); arrays:",
        "   tracemalloc peak of one step; faults: page faults per step; dtypes: every array in",
        "   the graph (data and gradients), the parameters and Adam's moments",
        f"   {'model':15s} {'batch':>5s} {'step, median (min-max)':>28s} {'images/s':>9s} {'s/epoch':>8s}"
        f" {'peak RSS (start)':>17s} {'arrays':>8s} {'faults':>7s}  dtypes",
    ]
    for r in result["training"]:
        rss = f"{r['peak_rss_bytes'] / 2**20:.0f} MiB ({r['rss_at_start_bytes'] / 2**20:.0f})"
        lines.append(f"   {r['model']:15s} {r['batch_size']:5d} {_ms(r['step_seconds']):>28s}"
                     f" {r['images_per_second']:9.0f} {r['epoch_seconds']:8.1f} {rss:>17s}"
                     f" {r['tracemalloc_peak_bytes'] / 2**20:4.0f} MiB {r['page_faults_per_step']:7.0f}"
                     f"  {','.join(r['dtypes'])}")
    lines += [f"   s/epoch = {EPOCH_IMAGES:,} / (images per second): training steps only, without data "
              f"loading or evaluation",
              f"total time {result['seconds']:.1f} s"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- entry point
def _blas_threads() -> str:
    set_vars = [f"{k}={os.environ[k]}" for k in BLAS_THREAD_VARIABLES if k in os.environ]
    return ", ".join(set_vars) if set_vars else "library default (" + ", ".join(BLAS_THREAD_VARIABLES) + " unset)"


def run_benchmark(mode: str = "full") -> dict:
    """All four parts in one run; returns every figure (what --json writes)."""
    settings = MODES[mode]
    freed_memory_kept = keep_freed_memory()  # as a training run does (cli.main)
    start, load_start = time.perf_counter(), os.getloadavg()
    result = {"mode": mode, "shapes": settings["shapes"]}
    result.update(layer_benchmarks(settings["shapes"], settings["rounds"], settings["ceiling_n"], settings["budget"]))
    result["training"] = training_benchmarks(settings["batches"], settings["steps"], settings["warmup"],
                                             settings["step_budget"])
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
    if threads is not None and os.environ.get("OPENBLAS_NUM_THREADS") != str(threads):
        argv = [sys.executable, "-m", "ack_numpy", "bench", "--threads", str(threads)]
        argv += ["--quick"] * quick + ["--tiny"] * tiny + (["--json", json_path] if json_path else [])
        return subprocess.run(argv, env=_child_env({k: str(threads) for k in BLAS_THREAD_VARIABLES})).returncode
    result = run_benchmark("tiny" if tiny else "quick" if quick else "full")
    print(format_report(result))
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0
