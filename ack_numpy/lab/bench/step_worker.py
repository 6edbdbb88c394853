"""One whole-step measurement of one model, run as a script in a fresh process.

    PYTHONPATH=<checkout> python ack_numpy/lab/bench/step_worker.py '{"model": "lenet", "batch": 64, ...}'

prints one JSON object: the median time of a training step (forward, cross-entropy,
backward, Adam), its useful FLOPs, the matrix-product ceiling of this process, where
the time of a step goes by op, the no-gradient evaluation rate, peak memory and dtypes.

Why a script and not a function: `bench --compare` runs this same file against another
checkout of the engine (put first on PYTHONPATH), so that both are measured by identical
code. It therefore imports only what every version of the engine has (build_model,
optim.Adam, train.train_step, train.evaluate, Tensor, no_grad, functional.cross_entropy)
and, from this folder, the FLOP counts (flops.py, which imports nothing from the engine).
The BLAS thread count is whatever the environment of this process says (BLAS reads it
once, at import).
"""
from __future__ import annotations

import inspect
import json
import os
import statistics
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # flops.py, next to this file
import flops  # noqa: E402

from ack_numpy import functional as F  # noqa: E402  (the engine under test, from PYTHONPATH)
from ack_numpy import optim  # noqa: E402
from ack_numpy.autograd import Tensor  # noqa: E402
from ack_numpy.models import build_model  # noqa: E402
from ack_numpy.train import evaluate, train_step  # noqa: E402

EPOCH_IMAGES, TEST_IMAGES = 60_000, 10_000


def leaf_layers(module) -> list:
    """The layers that compute something (no Sequential), in forward order."""
    children = list(module.children())
    return [leaf for child in children for leaf in leaf_layers(child)] if children else [module]


def layer_name(index: int, layer) -> str:
    return f"{index} {type(layer).__name__}"


def traced_shapes(model, layers: list) -> list[tuple]:
    """(layer, input shape, output shape) of every leaf layer, from one forward pass of one image."""
    shapes = []
    for layer in layers:
        def forward(x, f=layer.forward, layer=layer):
            out = f(x)
            shapes.append((layer, x.shape, out.shape))
            return out
        layer.forward = forward
    try:
        model(Tensor(np.zeros((1, 1, 28, 28), dtype=np.float32)))
    finally:
        for layer in layers:
            del layer.forward  # back to the class's method
    return shapes


def step_flops(model, layers: list, batch: int) -> dict[str, int]:
    """Useful FLOPs of one training step, per layer (see flops.layer_step_flops)."""
    counts = {}
    for index, (layer, in_shape, out_shape) in enumerate(traced_shapes(model, layers)):
        kind = type(layer).__name__
        weights = {"Conv2d": "weight", "AdaptiveConv2d": "Q", "Linear": "weight"}
        if kind in weights:
            counts[layer_name(index, layer)] = flops.layer_step_flops(
                kind, (batch, *in_shape[1:]), (batch, *out_shape[1:]), getattr(layer, weights[kind]).shape,
                has_static=getattr(layer, "w", None) is not None, input_grad=index > 0)
    return counts


def ceiling_gflops(n: int = 1024, repeats: int = 5) -> float:
    """The float32 rate of an (n x n) @ (n x n) product with this process's BLAS threads, best of `repeats`."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    a @ a
    best = min(_seconds(lambda: a @ a) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def graph_nodes(out: Tensor, stop: Tensor | None) -> list[Tensor]:
    """The nodes between `stop` (a layer's input) and `out` (its output), `stop` excluded;
    with stop=None, the whole graph behind `out`."""
    found, stack, seen = [], [out], {id(stop)}
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        found.append(node)
        stack.extend(node._parents)
    return found


def timed_backwards(nodes: list[Tensor], key: str, times: dict) -> None:
    """Make every node's backward add its wall time to times[key]."""
    for node in nodes:
        def timed(out, backward=node._backward):
            start = time.perf_counter()
            backward(out)
            times[key] = times.get(key, 0.0) + time.perf_counter() - start
        node._backward = timed


def profiled_step(model, layers: list, optimizer, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """One training step with every layer's forward and backward, the loss and Adam timed.

    The same calls as train.train_step; 'rest' is the step minus everything timed (the
    walk over the graph, zero_grad, Python glue between the ops)."""
    times: dict[str, float] = {}
    for index, layer in enumerate(layers):
        def forward(x_in, f=layer.forward, name=layer_name(index, layer)):
            start = time.perf_counter()
            out = f(x_in)
            times[f"fwd {name}"] = time.perf_counter() - start
            timed_backwards(graph_nodes(out, x_in), f"bwd {name}", times)
            return out
        layer.forward = forward
    try:
        step_start = time.perf_counter()
        with np.errstate(over="ignore", invalid="ignore"):
            x_tensor = Tensor(x)
            logits = model(x_tensor)
            start = time.perf_counter()
            loss = F.cross_entropy(logits, y)
            loss.item()
            times["fwd loss"] = time.perf_counter() - start
            timed_backwards([loss], "bwd loss", times)
            optimizer.zero_grad()
            loss.backward()
            start = time.perf_counter()
            optimizer.step()
            times["optimizer (Adam)"] = time.perf_counter() - start
            int((logits.data.argmax(axis=1) == y).sum())
        total = time.perf_counter() - step_start
    finally:
        for layer in layers:
            del layer.forward
    times["rest"] = total - sum(times.values())
    times["step (profiled)"] = total
    return times


def peak_rss_bytes() -> int:
    """VmHWM of this process (Linux), else ru_maxrss."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def measure(model: str, batch: int, steps: int = 30, warmup: int = 3, budget: float = 8.0,
            profile_steps: int = 5, eval_images: int = TEST_IMAGES, seed: int = 0) -> dict:
    """Everything the whole-step table prints for one (model, batch), in this process."""
    try:
        from ack_numpy.runtime import keep_freed_memory
        keep_freed_memory()  # as a training run does (cli.cmd_train)
    except ImportError:
        pass
    rss_at_start, faults_at_start = peak_rss_bytes(), _page_faults()
    rng = np.random.default_rng(seed)
    net = build_model(model, seed=seed)
    layers = leaf_layers(net)
    optimizer = optim.Adam(net.parameters(), lr=3e-3)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)   # synthetic: speed does not depend on pixels
    y = rng.integers(0, 10, size=batch)
    for _ in range(warmup):
        train_step(net, optimizer, x, y)
    seconds, start = [], time.perf_counter()
    while len(seconds) < steps and (len(seconds) < 3 or time.perf_counter() - start < budget):
        seconds.append(_seconds(lambda: train_step(net, optimizer, x, y)))
    faults = (_page_faults() - faults_at_start) / (len(seconds) + warmup)
    profiles = [profiled_step(net, layers, optimizer, x, y) for _ in range(profile_steps)]
    by_op = {key: statistics.median(p.get(key, 0.0) for p in profiles) for key in profiles[0]}

    # One more step under tracemalloc (its peak counts NumPy's arrays only), written out as
    # train.train_step's calls to keep the graph: the dtypes of every array in it, besides
    # the parameters, their gradients and Adam's moments.
    tracemalloc.start()
    loss = F.cross_entropy(net(Tensor(x)), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    arrays = [a for node in graph_nodes(loss, stop=None) for a in (node.data, node.grad)]
    arrays += [p.data for p in net.parameters()] + [p.grad for p in net.parameters()] + optimizer.m + optimizer.v
    dtypes = sorted({str(a.dtype) for a in arrays if a is not None})

    result = {"model": model, "batch_size": batch, "step_seconds": _summary(seconds),
              "images_per_second": batch / statistics.median(seconds),
              "epoch_seconds": EPOCH_IMAGES * statistics.median(seconds) / batch,
              "rss_at_start_bytes": rss_at_start, "page_faults_per_step": faults,
              "flops_by_layer": step_flops(net, layers, batch), "by_op_seconds": by_op,
              "ceiling_gflops": ceiling_gflops(), "peak_rss_bytes": peak_rss_bytes(),
              "tracemalloc_peak_bytes": traced_peak, "dtypes": dtypes,
              "blas_threads": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}}
    result["flops"] = sum(result["flops_by_layer"].values())
    if eval_images:
        images = rng.random((eval_images, 1, 28, 28), dtype=np.float32)
        labels = rng.integers(0, 10, size=eval_images)
        evaluate(net, images[:1000], labels[:1000])  # warm-up
        result["eval_seconds"] = _seconds(lambda: evaluate(net, images, labels))
        result["eval_images"] = eval_images
        # evaluate's own default, which each engine version chose for itself
        result["eval_batch_size"] = inspect.signature(evaluate).parameters["batch_size"].default
        result["eval_images_per_second"] = eval_images / result["eval_seconds"]
    return result


def _page_faults() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "repeats": len(values)}


if __name__ == "__main__":
    print(json.dumps(measure(**json.loads(sys.argv[1]))))
