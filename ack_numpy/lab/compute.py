"""What each model costs, beside what it scores: the compute table and figure.

    python -m ack_numpy study compute --out data/compute

Per model of the comparisons (lenet, adaptive-lenet, the plain candidates, the quadratic
controls), all from the model definitions except the two measured columns:

  stored parameters   every number the model holds (`num_parameters`).
  free parameters     numbers that can change the function: Q is kept symmetric (it starts
                      symmetric and gets symmetric updates), so of its D*D numbers per channel
                      only D(D+1)/2 are free; U^T V of rank r is unchanged by U -> A U,
                      V -> A^-T V for any invertible r x r A, so 2rD - r^2 are free.
  multiply-adds       per image, forward pass, counted analytically layer by layer from the
                      shapes of one image going through the model (`count_model`):
                        conv           Ho*Wo*O*D                      (D = C*m*m)
                        adaptive       Ho*Wo*O*(D*D + 2D)             Q p, then k.p, then w.p
                        diagonal Q     Ho*Wo*O*(3D)                   p*p, q.p^2, w.p
                        low-rank Q     Ho*Wo*O*(2rD + r + D)          U p, V p, their dot, w.p
                        quadratic act  2 per number                   s + a s^2
                        linear         in*out
                      Not counted: biases, pooling (comparisons), im2col copies.
  activations         per image: the numbers that go through a nonlinearity (tanh, ReLU,
                      the quadratic activation); the paper claims fewer than a CNN's.
  s/epoch, 1 thread   measured: median (and min-max) over rounds of one training step (batch 64),
                      the models taking turns in one process at one BLAS thread so that every
                      model sees the same load; times 938 steps (60,000 images).
  peak MB per step    measured: the most memory NumPy held during one training step of
                      batch 64 (tracemalloc, which NumPy reports its arrays to), above what
                      the model and the batch already held.

The figure plots each model's final test accuracy (every seed, from the ablation and the
reproduction records) against stored parameters and against multiply-adds.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..models import build_model
from ..nn import (AdaptiveConv2d, Conv2d, DiagonalAdaptiveConv2d, Linear, LowRankAdaptiveConv2d, Module,
                  QuadraticActivation, ReLU, Sequential, Tanh)
from .records import read_summary, summary_text, write_report_files
from .variants import plain_candidates, quadratic_controls

STEPS_PER_EPOCH = 938  # ceil(60,000 / 64)


def compute_models() -> dict[str, tuple[str, dict]]:
    return {"lenet": ("lenet", {}), "adaptive-lenet": ("adaptive-lenet", {}), **plain_candidates(),
            **{k: v for k, v in quadratic_controls().items() if k != "full-q"}}


def leaves(module: Module) -> list[Module]:
    """The layers of a model in forward order (the models here are Sequentials inside a Module)."""
    if isinstance(module, Sequential):
        return [leaf for layer in module.layers for leaf in leaves(layer)]
    children = list(module.children())
    return [leaf for child in children for leaf in leaves(child)] if children else [module]


def layer_cost(layer: Module, x_shape: tuple, y_shape: tuple) -> tuple[int, int, int]:
    """(multiply-adds, activations, free-parameter reduction) of one layer for one image."""
    _, _, ho, wo = y_shape if len(y_shape) == 4 else (0, 0, 0, 0)
    if isinstance(layer, AdaptiveConv2d):
        O, D = layer.Q.shape[0], layer.Q.shape[1]
        return ho * wo * O * (D * D + 2 * D), O * ho * wo, O * (D * D - D * (D + 1) // 2)
    if isinstance(layer, DiagonalAdaptiveConv2d):
        O, D = layer.q.shape
        return ho * wo * O * 3 * D, O * ho * wo, 0
    if isinstance(layer, LowRankAdaptiveConv2d):
        O, r, D = layer.U.shape
        return ho * wo * O * (2 * r * D + r + D), O * ho * wo, O * r * r
    if isinstance(layer, Conv2d):
        O, C, m, _ = layer.weight.shape
        return ho * wo * O * C * m * m, 0, 0
    if isinstance(layer, Linear):
        out_features, in_features = layer.weight.shape
        return in_features * out_features, 0, 0
    if isinstance(layer, QuadraticActivation):
        return 2 * int(np.prod(y_shape[1:])), int(np.prod(y_shape[1:])), 0
    if isinstance(layer, (Tanh, ReLU)):
        return 0, int(np.prod(y_shape[1:])), 0
    return 0, 0, 0


def count_model(model: Module) -> dict:
    """Multiply-adds, activations and parameters of one image's forward pass (see the module doc)."""
    from ..autograd import Tensor, no_grad

    x = Tensor(np.zeros((1, 1, 28, 28), dtype=np.float32))
    macs = activations = fewer = 0
    with no_grad():
        for layer in leaves(model):
            y = layer(x)
            m, a, f = layer_cost(layer, x.shape, y.shape)
            macs, activations, fewer = macs + m, activations + a, fewer + f
            x = y
    stored = model.num_parameters()
    return {"multiply_adds": macs, "activations": activations, "stored_parameters": stored,
            "free_parameters": stored - fewer}


# ----------------------------------------------------------------------------- measured, in a child at 1 thread
def time_models(names: list[str], rounds: int, steps: int) -> dict:
    """Run in the child: per model, the median seconds of one training step and the peak memory."""
    import tracemalloc

    from .. import functional as F
    from .. import optim
    from ..autograd import Tensor

    rng = np.random.default_rng(0)
    x = rng.random((64, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=64)
    table = compute_models()
    setups = {}
    for name in names:
        model_name, options = table[name]
        model = build_model(model_name, seed=0, **options)
        setups[name] = (model, optim.Adam(model.parameters(), lr=1e-3))

    def step(name):
        model, optimizer = setups[name]
        loss = F.cross_entropy(model(Tensor(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    times = {name: [] for name in names}
    for name in names:  # warm up: the first step allocates the optimiser's state
        step(name)
    for _ in range(rounds):
        for name in names:  # the models take turns, so that each sees the same load
            begin = time.perf_counter()
            for _ in range(steps):
                step(name)
            times[name].append((time.perf_counter() - begin) / steps)
    peaks = {}
    for name in names:
        tracemalloc.start()
        step(name)
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {name: {"step_seconds": statistics.median(times[name]),
                   "step_seconds_range": [min(times[name]), max(times[name])], "peak_bytes": peaks[name]}
            for name in names}


def measure(names: list[str], rounds: int = 11, steps: int = 5) -> dict:
    """time_models in a fresh process with one BLAS thread."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    child = subprocess.run([sys.executable, "-m", "ack_numpy.lab.compute", json.dumps([names, rounds, steps])],
                           env=env, capture_output=True, text=True, check=True)
    return json.loads(child.stdout)


# ----------------------------------------------------------------------------- accuracy from the records
def accuracies(records: list[Path]) -> dict[str, tuple[list[float], str]]:
    """label -> (final test accuracies per seed, the study they come from), from the first of
    the records (the ablation's, then the reproduction's results.json) that has the model."""
    found: dict[str, tuple[list[float], str]] = {}
    for path in records:
        if not path.exists():
            continue
        summary = read_summary(path)
        arms = summary.get("arms") or summary.get("models") or {}
        for label, arm in arms.items():
            label = {"plain-small": "plain-tanh"}.get(label, label)
            finals = list(arm.get("final_test_acc_per_seed", {}).values())
            if finals and label not in found:
                found[label] = (finals, path.parent.name)
    return found


def compute_markdown(s: dict) -> str:
    lines = ["# What each model costs: parameters, multiply-adds, activations, time, memory", "",
             f"Generated by `{s['command']}`. Counted from the model definitions except the last two columns, "
             f"measured side by side in one process at one BLAS thread ({s['rounds']} rounds of {s['steps']} "
             f"training steps of batch 64 per model, the models taking turns; median), load before: "
             f"`{s['load_before']}`, after: `{s['load_after']}`. How each column is counted: "
             "`ack_numpy/lab/compute.py`.", "",
             "| model | stored params | free params | multiply-adds / image | activations / image | "
             "s / epoch (1 thread; median, min-max) | peak MB / step | test accuracy (mean, seeds) |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, m in s["models"].items():
        acc = m.get("test_acc")
        acc_text = "-" if not acc else f"{100 * statistics.mean(acc):.2f}% ({len(acc)}, {m['test_acc_from']})"
        low, high = (v * STEPS_PER_EPOCH for v in m.get("step_seconds_range", [float("nan")] * 2))
        spread = f" ({low:.1f}-{high:.1f})" if "step_seconds_range" in m else ""
        lines.append(f"| {name} | {m['stored_parameters']:,} | {m['free_parameters']:,} | {m['multiply_adds']:,} | "
                     f"{m['activations']:,} | {m['step_seconds'] * STEPS_PER_EPOCH:.1f}{spread} | "
                     f"{m['peak_bytes'] / 1e6:.1f} | {acc_text} |")
    untested = [name for name, m in s["models"].items() if not m.get("test_acc")]
    from_reproduction = [name for name, m in s["models"].items() if m.get("test_acc_from") == "reproduction"]
    lines += ["", "s / epoch = a training step's time (forward, backward, Adam's update; the median over the rounds, "
              "their min-max in brackets) x 938 steps. Not in it: loading and shifting the batches and evaluating, "
              "the same work for every model, so a whole epoch's ratio between two models is closer to 1 than "
              "this column's. Test accuracies: [../ablation/results.md](../ablation/results.md), each model at "
              "its own held-out rate"
              + (f", and [../reproduction/results.md](../reproduction/results.md) for {', '.join(from_reproduction)} "
                 "(at lr 3e-3)" if from_reproduction else "")
              + (f"; {', '.join(untested)} have no test runs (their rates were chosen on held-out images only) "
                 "and are not in the figure" if untested else "") + ".", "",
              "![test accuracy against parameters and multiply-adds](compute.png)", ""]
    return "\n".join(lines) + "\n"


def plot_compute(s: dict, file) -> None:
    from matplotlib.figure import Figure  # not pyplot: a library call leaves the backend alone

    fig = Figure(figsize=(11, 4.4), dpi=110)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, key, label in ((axes[0], "stored_parameters", "stored parameters (log)"),
                           (axes[1], "multiply_adds", "multiply-adds per image (log)")):
        for name, m in s["models"].items():
            if not m.get("test_acc"):
                continue
            accs = [100 * a for a in m["test_acc"]]
            dots = ax.scatter([m[key]] * len(accs), accs, s=14, alpha=0.6, label=name)
            ax.scatter([m[key]], [statistics.mean(accs)], marker="D", s=40, color=dots.get_facecolor()[0],
                       edgecolor="black")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("final test accuracy (%), every seed; diamond = mean")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle("MNIST test accuracy against size and compute")
    fig.tight_layout()
    fig.savefig(file, format="png")


def compute(out: str | Path, rounds: int = 11, steps: int = 5, records=("data/ablation/results.json",
                                                                        "data/reproduction/results.json"),
            report_only: bool = False, log=print) -> dict:
    """Count, measure (unless report_only: then the measured columns of the existing
    results.json are kept) and write results.json, results.md and compute.png."""

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = compute_models()
    old = read_summary(out / "results.json") if report_only and (out / "results.json").exists() else None
    if report_only and old is None:
        raise FileNotFoundError(f"{out / 'results.json'} not found: --report-only keeps the measured columns of an "
                                f"earlier run; run `python -m ack_numpy study compute --out {out}` first")
    if old:
        measured = {name: {k: old["models"][name][k] for k in ("step_seconds", "step_seconds_range", "peak_bytes")
                           if k in old["models"][name]} for name in table}
        load_before, load_after, rounds, steps = old["load_before"], old["load_after"], old["rounds"], old["steps"]
    else:
        load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())
        measured = measure(list(table), rounds, steps)
        load_after = " ".join(f"{v:.2f}" for v in os.getloadavg())
    found = accuracies([Path(r) for r in records])
    models = {}
    for name, (model_name, options) in table.items():
        accs, source = found.get(name, (None, None))
        models[name] = {"model": model_name, "options": options,
                        **count_model(build_model(model_name, seed=0, **options)), **measured[name],
                        "test_acc": accs, "test_acc_from": source}
    summary = {"models": models, "rounds": rounds, "steps": steps, "load_before": load_before, "load_after": load_after,
               "command": f"python -m ack_numpy study compute --out {out}"}
    write_report_files(out, {"results.json": summary_text(summary), "results.md": compute_markdown(summary)},
                       {"compute.png": lambda f: plot_compute(summary, f)})
    log(f"wrote {out / 'results.md'}, {out / 'results.json'} and {out / 'compute.png'}")
    return summary


if __name__ == "__main__":
    names, rounds, steps = json.loads(sys.argv[1])
    print(json.dumps(time_models(names, rounds, steps)))
