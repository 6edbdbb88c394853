"""Check your answers to a tutorial's exercises: right, or wrong with a hint.

    python tutorials/check.py 03                     # checks tutorials/exercises/ex03.py
    python tutorials/check.py 03 --answers my.py     # checks another file
    python tutorials/check.py 03 --solutions         # checks the reference solutions

Each tutorial ends with its exercises; write your answers in the functions of
`tutorials/exercises/exNN.py` (they raise NotImplementedError until you do). The
reference solutions are in `tutorials/solutions/exNN.py`: look there after trying.
Every check compares your function with the package (or with finite differences) on
random inputs; the exit status is 0 when every exercise is right.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

import numpy as np
from tutorial_setup import ROOT  # this checkout's package, from any working directory

import ack_numpy.functional as F
from ack_numpy import Tensor
from ack_numpy.autograd import unbroadcast
from ack_numpy.gradcheck import numerical_grad
from ack_numpy.nn import AdaptiveConv2d
from ack_numpy.train import TrainConfig, learning_rate

HERE = Path(__file__).resolve().parent


class Wrong(Exception):
    """An answer is wrong; the message is the hint shown to the reader."""


def expect_close(name: str, got, want, hint: str, atol: float = 1e-8) -> None:
    got = np.asarray(got, dtype=np.float64) if got is not None else None
    want = np.asarray(want, dtype=np.float64)
    if got is None:
        raise Wrong(f"{name} returned None. {hint}")
    if got.shape != want.shape:
        raise Wrong(f"{name} has shape {got.shape}, expected {want.shape}. {hint}")
    error = np.abs(got - want)
    if not np.all(error <= atol + 1e-6 * np.abs(want)):
        raise Wrong(f"{name} is off by up to {error.max():.3g}. {hint}")


# ----------------------------------------------------------------------------- 01 autograd
def check_01_tanh_layer_grads(answer: Callable) -> None:
    rng = np.random.default_rng(1)
    x, W, g = rng.normal(size=(5, 3)), rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    tx, tW = Tensor(x, requires_grad=True), Tensor(W, requires_grad=True)
    ((tx @ tW).tanh() * Tensor(g)).sum().backward()      # dL/dy = g
    result = answer(x, W, g)
    if not isinstance(result, tuple) or len(result) != 2:
        raise Wrong("return a pair (dx, dW).")
    dx, dW = result
    hint = "Go backwards: g_z = g * (1 - tanh(z)^2) with z = x W; then dx = g_z W^T and dW = x^T g_z."
    expect_close("dW", dW, tW.grad, hint)
    expect_close("dx", dx, tx.grad, hint)


def check_01_bias_grad(answer: Callable) -> None:
    rng = np.random.default_rng(2)
    for bias_shape in [(1, 3, 1, 1), (3, 1, 1), (5,), (4, 1, 5)]:
        grad = rng.normal(size=(2, 3, 4, 5))
        want = unbroadcast(grad, bias_shape)
        expect_close(f"bias_grad(grad, {bias_shape})", answer(grad, bias_shape), want,
                     "Sum over every axis the bias was stretched along: the leading axes it does not "
                     "have, and the axes where it has size 1 (keep those, with keepdims=True).")


# ----------------------------------------------------------------------------- 02 convolution
def check_02_patch_row(answer: Callable) -> None:
    rng = np.random.default_rng(3)
    for shape, m, stride, padding in [((2, 3, 6, 5), 3, 1, 0), ((1, 2, 7, 7), 3, 2, 1), ((2, 1, 5, 6), 2, 2, 1)]:
        x = rng.normal(size=shape)
        P = F.im2col(x, m, stride, padding)
        ho, wo = (F.conv_output_size(s, m, stride, padding) for s in shape[2:])
        for n, i, j in [(0, 0, 0), (shape[0] - 1, ho - 1, wo - 1), (0, ho // 2, wo - 1)]:
            expect_close(f"patch_row(x {shape}, n={n}, i={i}, j={j}, m={m}, stride={stride}, padding={padding})",
                         answer(x, n, i, j, m, stride, padding), P[(n * ho + i) * wo + j],
                         "Pad first, then take x_pad[n, :, i*stride : i*stride + m, j*stride : j*stride + m] "
                         "and flatten it in (c, u, v) order.")


def check_02_conv2d_by_matmul(answer: Callable) -> None:
    rng = np.random.default_rng(4)
    for shape, O, m, stride, padding in [((2, 3, 7, 7), 4, 3, 2, 1), ((1, 1, 6, 5), 2, 2, 1, 0)]:
        x, weight, b = rng.normal(size=shape), rng.normal(size=(O, shape[1], m, m)), rng.normal(size=O)
        expect_close(f"conv2d_by_matmul(x {shape}, weight {weight.shape}, stride={stride}, padding={padding})",
                     answer(x, weight, b, stride, padding), F.conv2d_loops(x, weight, b, stride, padding),
                     "Y = im2col(x) @ weight.reshape(O, -1).T + b has rows in (n, i, j) order: reshape to "
                     "(N, Ho, Wo, O), then transpose to (N, O, Ho, Wo).")


def check_02_copies_per_pixel(answer: Callable) -> None:
    for H, W, m, stride, padding in [(5, 5, 3, 1, 0), (7, 6, 3, 2, 1), (6, 6, 2, 2, 0)]:
        ones = np.ones_like(F.im2col(np.zeros((1, 1, H, W)), m, stride, padding))
        want = F.col2im(ones, (1, 1, H, W), m, stride, padding)[0, 0]
        expect_close(f"copies_per_pixel(H={H}, W={W}, m={m}, stride={stride}, padding={padding})",
                     answer(H, W, m, stride, padding), want,
                     "Count, for every pixel, the patches (output positions) whose window covers it; "
                     "col2im of a matrix of ones does exactly that.", atol=0)


# ----------------------------------------------------------------------------- 03 adaptive kernels
def check_03_adaptive_kernel(answer: Callable) -> None:
    rng = np.random.default_rng(5)
    for D in (9, 18):
        p, Q_o, w_o = rng.normal(size=D), rng.normal(size=(D, D)), rng.normal(size=D)
        want = np.array([Q_o[e, :] @ p + w_o[e] for e in range(D)])
        expect_close(f"adaptive_kernel (D={D})", answer(p, Q_o, w_o), want,
                     "Kernel element e is the response of filter Q_o[e, :] on the patch, plus w_o[e]: "
                     "k = Q_o p + w_o (not Q_o^T p).")


def check_03_dsigma_dp(answer: Callable) -> None:
    rng = np.random.default_rng(6)
    p, Q_o, w_o = rng.normal(size=9), rng.normal(size=(9, 9)), rng.normal(size=9)
    numeric = numerical_grad(lambda v: float(v @ Q_o @ v + w_o @ v), [p.copy()], 0)
    expect_close("dsigma_dp", answer(p, Q_o, w_o), numeric,
                 "p appears twice in p^T Q p: differentiate each side (the result involves Q and Q^T), "
                 "and do not forget w.", atol=1e-6)


def check_03_most_adapted_location(answer: Callable) -> None:
    rng = np.random.default_rng(7)
    for shape, O in [((1, 1, 8, 9), 3), ((1, 2, 6, 6), 2)]:
        x = rng.uniform(size=shape) * (rng.uniform(size=shape) > 0.5)
        D = shape[1] * 9
        Q, w = rng.normal(size=(O, D, D)), rng.normal(size=(O, D))
        for o in range(O):
            kernels = F.adaptive_kernels(x, Q, w)[0, o].reshape(shape[2] - 2, shape[3] - 2, D)
            distance = np.linalg.norm(kernels - w[o], axis=-1)
            want = tuple(int(v) for v in np.unravel_index(distance.argmax(), distance.shape))
            got = answer(x, Q, w, o)
            if got is None or tuple(int(v) for v in got) != want:
                raise Wrong(f"for x {shape}, channel {o}: you gave {got}, the answer is {want} "
                            f"(||k - w|| = {distance[want]:.3f} there). k(l) - w = Q_o p_l: compute it at every "
                            f"location (im2col gives every p_l) and take the (i, j) with the largest norm.")


# ----------------------------------------------------------------------------- 04 training
def check_04_cosine_learning_rate(answer: Callable) -> None:
    for lr, T in [(1e-3, 1000), (0.5, 7)]:
        config = TrainConfig(lr=lr)
        for t in (0, 1, T // 2, T - 1):
            expect_close(f"cosine_learning_rate(lr={lr}, t={t}, T={T})", answer(lr, t, T), learning_rate(config, t, T),
                         "lr_t = lr * (1 + cos(pi * t / T)) / 2: lr at t = 0, lr / 2 half-way.", atol=1e-12)


def check_04_cross_entropy_grad(answer: Callable) -> None:
    rng = np.random.default_rng(8)
    logits, labels = rng.normal(size=(6, 10)) * 3, rng.integers(0, 10, size=6)
    t = Tensor(logits, requires_grad=True)
    F.cross_entropy(t, labels).backward()
    expect_close("cross_entropy_grad", answer(logits, labels), t.grad,
                 "softmax of each row, minus 1 at the correct class, divided by N (the loss is a mean "
                 "over the batch). Subtract each row's maximum before exp to avoid overflow.")


def check_04_adaptive_layer_parameters(answer: Callable) -> None:
    for C, O, m in [(1, 8, 3), (3, 4, 5), (20, 1, 5)]:
        want = AdaptiveConv2d(C, O, m, rng=np.random.default_rng(0)).num_parameters()
        got = answer(C, O, m)
        if got != want:
            raise Wrong(f"adaptive_layer_parameters(C={C}, O={O}, m={m}) = {got}, expected {want}. "
                        f"Each output channel has Q (D x D), w (D) and b (1), with D = C*m*m.")


# ----------------------------------------------------------------------------- 05 trained kernels
def trained_or_random_layer() -> tuple[np.ndarray, np.ndarray]:
    """Q, w of the trained first layer that comes with the package (ack_numpy/assets)."""
    from ack_numpy.assets import TRAINED_ADAPTIVE_LENET
    from ack_numpy.checkpoint import load_model
    from ack_numpy.models import adaptive_layers

    layer = adaptive_layers(load_model(TRAINED_ADAPTIVE_LENET)[0])[0]
    return layer.Q.data.astype(np.float64), layer.w.data.astype(np.float64)


def stroke_images() -> list[np.ndarray]:
    """Two digit-like test images (1, 1, 12, 12): a ring and a bar, 0 background as in MNIST."""
    yy, xx = np.mgrid[:12, :12]
    ring = np.clip(1.2 - np.abs(np.hypot(yy - 5.5, xx - 5.5) - 3.5), 0, 1)
    bar = np.clip(1.2 - np.abs(xx - 0.5 * yy - 3), 0, 1) * (yy > 1)
    return [ring[None, None], bar[None, None]]


def check_05_kernel_distance_map(answer: Callable) -> None:
    Q, w = trained_or_random_layer()
    for x in stroke_images():
        for o in (0, Q.shape[0] - 1):
            kernels = F.adaptive_kernels(x, Q, w)[0, o].reshape(10, 10, -1)
            expect_close(f"kernel_distance_map(channel {o})", answer(x, Q, w, o),
                         np.linalg.norm(kernels - w[o], axis=-1),
                         "At each location ||k(l) - w_o|| = ||Q_o p_l||: the map is 0 on empty patches. "
                         "Return shape (Ho, Wo).")


def check_05_distance_to_mean_kernel(answer: Callable) -> None:
    Q, w = trained_or_random_layer()
    for x in stroke_images():
        o = 0
        kernels = F.adaptive_kernels(x, Q, w)[0, o].reshape(10, 10, -1)
        want = np.linalg.norm(kernels - kernels.mean(axis=(0, 1)), axis=-1)
        expect_close("distance_to_mean_kernel", answer(x, Q, w, o), want,
                     "kbar is the mean of this image's kernels over its Ho x Wo locations (not w); "
                     "k(l) - kbar = Q_o (p_l - pbar).")


CHECKS: dict[str, list[tuple[str, Callable]]] = {
    "01": [("tanh_layer_grads", check_01_tanh_layer_grads), ("bias_grad", check_01_bias_grad)],
    "02": [("patch_row", check_02_patch_row), ("conv2d_by_matmul", check_02_conv2d_by_matmul),
           ("copies_per_pixel", check_02_copies_per_pixel)],
    "03": [("adaptive_kernel", check_03_adaptive_kernel), ("dsigma_dp", check_03_dsigma_dp),
           ("most_adapted_location", check_03_most_adapted_location)],
    "04": [("cosine_learning_rate", check_04_cosine_learning_rate), ("cross_entropy_grad", check_04_cross_entropy_grad),
           ("adaptive_layer_parameters", check_04_adaptive_layer_parameters)],
    "05": [("kernel_distance_map", check_05_kernel_distance_map),
           ("distance_to_mean_kernel", check_05_distance_to_mean_kernel)],
}


def check(number: str, answers) -> list[tuple[str, str, str]]:
    """Run tutorial `number`'s checks on `answers` (a module or any object with the functions).
    Returns (exercise, verdict, message) with verdict "right", "wrong" or "not done"."""
    results = []
    for position, (name, checker) in enumerate(CHECKS[number], 1):
        label = f"{number}.{position} {name}"
        function = getattr(answers, name, None)
        if function is None:
            results.append((label, "not done", f"there is no function {name}"))
            continue
        try:
            checker(function)
            results.append((label, "right", ""))
        except NotImplementedError:
            results.append((label, "not done", "it still raises NotImplementedError"))
        except Wrong as hint:
            results.append((label, "wrong", str(hint)))
        except Exception as error:  # the reader's code failed: say how, in one line
            results.append((label, "wrong", f"it raised {type(error).__name__}: {error}"))
    return results


def load_answers(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"answers_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check your answers to a tutorial's exercises.")
    parser.add_argument("tutorial", help="tutorial number: " + ", ".join(CHECKS))
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--answers", type=Path, help="file with your functions (default tutorials/exercises/exNN.py)")
    source.add_argument("--solutions", action="store_true", help="check the reference solutions instead")
    args = parser.parse_args(argv)
    number = args.tutorial.zfill(2)
    if number not in CHECKS:
        print(f"check.py: no exercises for tutorial {args.tutorial!r}; choose one of {', '.join(CHECKS)}", file=sys.stderr)
        return 2
    path = args.answers or HERE / ("solutions" if args.solutions else "exercises") / f"ex{number}.py"
    if not path.is_file():
        print(f"check.py: {path}: no such file", file=sys.stderr)
        return 2
    try:
        answers = load_answers(path)
    except Exception as error:
        print(f"check.py: {path} does not run: {type(error).__name__}: {error}", file=sys.stderr)
        return 2

    results = check(number, answers)
    for label, verdict, message in results:
        print(f"exercise {label}: {verdict}" + (f". {message}" if message else ""))
    right = sum(verdict == "right" for _, verdict, _ in results)
    print(f"{right} of {len(results)} right ({path})")
    return 0 if right == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
