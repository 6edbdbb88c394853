"""Parts 1-3 of the benchmark: the BLAS ceiling, the layers, and how their time splits.

The ceiling is a large float32 matrix product; each layer (conv2d, adaptive_conv2d) runs
forward and forward+backward on the reference shapes; its forward+backward time is split
into im2col, col2im (timed inside the layer's own calls), the matrix products (timed
alone on the same shapes, `matmul_pieces`) and the rest. All cases run round-robin.
"""
from __future__ import annotations

import statistics
from typing import Callable

import numpy as np

from ... import functional as F
from ...autograd import Tensor
from ...functional.adaptive import location_blocks
from ...functional.im2col import conv_output_size, im2col
from .flops import FLOP_COUNTS
from .timing import PIECE_SECONDS, summarize, time_round_robin

# The reference layer shapes (issue 6): A is a first layer on MNIST, B a second layer.
SHAPES = {
    "A": dict(N=64, C=1, H=28, W=28, m=5, O=8),
    "B": dict(N=64, C=8, H=12, W=12, m=3, O=16),
}
TINY_SHAPES = {  # for the test suite only: the same code paths in milliseconds
    "A": dict(N=2, C=1, H=8, W=8, m=3, O=2),
    "B": dict(N=2, C=2, H=6, W=6, m=3, O=3),
}


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
