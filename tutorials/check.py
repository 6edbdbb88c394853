"""Check your answers to a tutorial's exercises: right, or wrong with a hint.

    python tutorials/check.py 03                     # checks tutorials/exercises/ex03.py
    python tutorials/check.py 03 --answers my.py     # checks another file
    python tutorials/check.py 03 --solutions         # checks the reference solutions

Each tutorial ends with its exercises; write your answers in the functions of
`tutorials/exercises/exNN.py` (they raise NotImplementedError until you do). The
reference solutions are in `tutorials/solutions/exNN.py`: look there after trying.
Every check compares your function with the package (or with finite differences) on
random inputs; the exit status is 0 when every exercise is right.

Your answers run apart from the checker: each exercise starts a child process that
loads your file and calls your function, with a time limit (--time-limit, 30 s). The
checker sends the inputs and the child sends back only the values your function
returned, as plain data (JSON: numbers, arrays of numbers, tuples, strings); the
checker compares them itself. So nothing your file does (sys.exit, an endless loop,
Ctrl-C, changing the checker's functions) can make a wrong answer pass: it is reported
as what it was. (Your file runs as you, so it could still rewrite files on disk, the
checker's or the package's: the checker notices a change to its own files and gives no
verdict then; it is a teaching aid, not a sandbox.) What you print goes to stderr, apart from the verdicts on stdout.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Callable

import numpy as np
import tutorial_setup  # noqa: F401  (puts this checkout's package on sys.path, from any working directory)

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
    if got is None:
        raise Wrong(f"{name} returned None. {hint}")
    if not is_numbers(got):
        raise Wrong(f"{name} returned {describe_value(got)}, expected a NumPy array of numbers. {hint}")
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
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
            if not (isinstance(got, (tuple, list)) and len(got) == 2 and all(is_whole(v) for v in got)):
                raise Wrong(f"return a pair of integers (i, j); you returned {describe_value(got)}.")
            if tuple(int(v) for v in got) != want:
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
        if not is_whole(got):
            raise Wrong(f"return an integer; you returned {describe_value(got)}.")
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


# ----------------------------------------------------------------------------- 06 XOR and DFN
def check_06_quadratic_unit(answer: Callable) -> None:
    rng = np.random.default_rng(11)
    layer = AdaptiveConv2d(2, 1, kernel_size=1, rng=rng, dtype=np.float64)
    layer.Q.data, layer.w.data, layer.b.data = rng.normal(size=(1, 2, 2)), rng.normal(size=(1, 2)), rng.normal(size=1)
    P = rng.normal(size=(7, 2))
    want = layer(Tensor(P.reshape(7, 2, 1, 1))).data.reshape(7)
    expect_close("quadratic_unit", answer(P, layer.Q.data[0], layer.w.data[0], float(layer.b.data[0])), want,
                 "For each row p of P: sigma = p^T Q p + w . p + b (one number per row, not an (N, N) "
                 "matrix), then y = tanh(sigma). Q is not symmetric here.")


def check_06_adaptive_as_dynamic_filter(answer: Callable) -> None:
    rng = np.random.default_rng(12)
    for C, m in ((1, 3), (2, 2)):
        D = C * m * m
        weight, bias = rng.normal(size=(D, C, m, m)), rng.normal(size=D)
        x = rng.normal(size=(2, C, 6, 5))
        generated = F.conv2d(x, weight, bias).data                    # (N, D, Ho, Wo): the filter at every l
        result = answer(weight, bias)
        if not isinstance(result, tuple) or len(result) != 2:
            raise Wrong("return a pair (Q, w).")
        Q, w = (np.asarray(v, dtype=np.float64) for v in result)
        if Q.shape != (D, D) or w.shape != (D,):
            raise Wrong(f"Q must have shape ({D}, {D}) and w ({D},); got {Q.shape} and {w.shape}.")
        kernels = F.adaptive_kernels(x, Q[None], w[None])[:, 0]       # (N, Ho, Wo, C, m, m)
        expect_close(f"the kernels Q p + w (C={C}, m={m})", kernels.reshape(*kernels.shape[:3], D),
                     generated.transpose(0, 2, 3, 1),
                     "Output channel e of the generator is the filter Q[e, :] applied to the patch, plus "
                     "bias[e]: flatten each weight[e] in (c, u, v) order into row e of Q (not column e).")


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
    "06": [("quadratic_unit", check_06_quadratic_unit), ("adaptive_as_dynamic_filter", check_06_adaptive_as_dynamic_filter)],
}


class AnswerFailed(Exception):
    """The answer did not return a value: it raised, exited, hung or its process died.
    The message is the verdict's explanation."""


class Opaque:
    """A value of a type that does not cross between the processes (only its type name does)."""

    def __init__(self, type_name: str):
        self.type_name = type_name


def is_numbers(value) -> bool:
    """A number, or an array (or nested list) of real numbers."""
    if isinstance(value, (Opaque, str, bool, type(None))):
        return False
    return np.asarray(value).dtype.kind in "iuf" if not isinstance(value, (tuple, list)) else \
        all(is_numbers(v) for v in value)


def is_whole(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def describe_value(value) -> str:
    """'a str ('abc')', 'a tuple of 3 values', 'an int (4)': what a wrong answer returned."""
    if isinstance(value, Opaque):
        return f"a {value.type_name}"
    if isinstance(value, str):
        return f"a str ({value[:40]!r})"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} values"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"a {type(value).__name__} ({value!r})"


# ----------------------------------------------------------------------------- the channel
# Values cross between checker and answer as JSON, never as pickles: unpickling what the
# answer's process sent could run any code it chose inside the checker.
def encode(value):
    """A JSON-ready description of a value: numbers, real arrays, tuples, lists, str, None;
    anything else only by its type name."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return {"bool": bool(value)} if value is not None else {"none": True}
    if isinstance(value, (int, np.integer)):
        return {"int": int(value)}
    if isinstance(value, (float, np.floating)):
        return {"float": float(value)}
    if isinstance(value, str):
        return {"str": value[:1000]}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"array": value.ravel().tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, (tuple, list)):
        return {type(value).__name__: [encode(v) for v in value]}
    kind = f"{value.dtype} ndarray" if isinstance(value, np.ndarray) else type(value).__name__
    return {"other": kind}


def decode(data):
    """The value `encode` described; a ValueError if `data` is not such a description."""
    if not isinstance(data, dict) or len(data) not in (1, 3):
        raise ValueError(f"not a value: {str(data)[:60]}")
    if "none" in data:
        return None
    for key, kind in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if key in data:
            if type(data[key]) is not kind and not (kind is float and type(data[key]) is int):
                raise ValueError(f"not a {key}: {str(data[key])[:60]}")
            return kind(data[key])
    if "array" in data:
        dtype = np.dtype(str(data["dtype"]))
        if dtype.kind not in "biuf":
            raise ValueError(f"not an array of numbers: {dtype}")
        return np.array(data["array"], dtype=dtype).reshape([int(n) for n in data["shape"]])
    if "tuple" in data or "list" in data:
        items = [decode(v) for v in data.get("tuple", data.get("list"))]
        return tuple(items) if "tuple" in data else items
    if "other" in data:
        return Opaque(str(data["other"])[:60])
    raise ValueError(f"not a value: {str(data)[:60]}")


def serve(path: Path) -> None:
    """The child's side: load the answers, then call functions as the checker asks.

    Requests come on stdin, one JSON line each ({"name": ..., "args": [...]}); replies
    go to the file descriptor ACK_CHECK_REPLY_FD: {"value": ...}, or {"raised": type,
    "message": ...} when the answer raised anything, SystemExit and KeyboardInterrupt
    included. The answer's own output goes to stderr."""
    replies = os.fdopen(int(os.environ["ACK_CHECK_REPLY_FD"]), "w")

    def reply(message: dict) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    names = [name for checks in CHECKS.values() for name, _ in checks]  # before the answers can touch CHECKS
    try:
        answers = load_answers(path)
    except BaseException as error:  # noqa: B036 (a SystemExit at import is reported too)
        reply({"load_error": f"{type(error).__name__}: {error}"})
        return
    reply({"functions": [name for name in names if callable(getattr(answers, name, None))]})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            value = getattr(answers, request["name"])(*decode(request["args"]))
        except BaseException as error:  # noqa: B036 (sys.exit and KeyboardInterrupt are answers' failures)
            reply({"raised": type(error).__name__, "message": str(error)[:500]})
            continue
        reply({"value": encode(value)})


LOAD_SECONDS = 120.0  # at most, to start the answers' process and load the file
MAX_TIME_LIMIT = 86400.0  # a day, far more than any answer needs (inf would overflow select()'s timeout)


class AnswerProcess:
    """The checker's side: one child process running the answers file, with a deadline.

    `call(name, *args)` sends the inputs and returns the decoded value, or raises
    AnswerFailed saying what went wrong (raised, exited, timed out, died, garbled)."""

    def __init__(self, path: Path, time_limit: float):
        read_fd, write_fd = os.pipe()
        env = dict(os.environ, ACK_CHECK_REPLY_FD=str(write_fd))
        # Starting Python and loading the file get their own, longer limit (a loaded machine
        # can take seconds to import NumPy); the time limit is for the exercise's calls.
        self.limit = max(LOAD_SECONDS, time_limit)
        self.deadline = time.monotonic() + self.limit
        # A new session: Ctrl-C in the terminal interrupts the checker, which then ends the child.
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", str(path)],
                                        stdin=subprocess.PIPE, stdout=sys.stderr, env=env, text=True,
                                        pass_fds=(write_fd,), start_new_session=True)
        os.close(write_fd)
        self.replies, self.unread = read_fd, b""  # bytes received after the last full line
        try:
            hello = self._receive()
        except AnswerFailed as failure:
            self.close()
            raise AnswerFailed(f"does not run: loading it failed ({failure})") from None
        except BaseException:  # Ctrl-C or a stop signal while the file loads: end the child too
            self.close()
            raise
        if "load_error" in hello:
            self.close()
            raise AnswerFailed(f"does not run: {hello['load_error']}")
        self.functions = set(hello.get("functions", []))
        self.limit = time_limit
        self.deadline = time.monotonic() + time_limit

    def call(self, name: str, *args):
        try:
            self.process.stdin.write(json.dumps({"name": name, "args": encode(args)}) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise AnswerFailed(self._ended()) from None
        message = self._receive()
        if "raised" in message:
            raised, text = str(message["raised"]), str(message.get("message", ""))
            if raised == "NotImplementedError":
                raise NotImplementedError
            if raised == "SystemExit":
                raise AnswerFailed(f"it called sys.exit({text})")
            raise AnswerFailed(f"it raised {raised}" + (f": {text}" if text else ""))
        try:
            return decode(message.get("value"))
        except (ValueError, TypeError) as error:
            raise AnswerFailed(f"its process sent a malformed result ({error})") from None

    def _receive(self) -> dict:
        """The next reply line, or AnswerFailed if the whole line has not come before the
        deadline (reading piece by piece: half a line and then silence must not hang us)."""
        pieces = [self.unread]
        while b"\n" not in pieces[-1]:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise AnswerFailed(f"it did not finish within {self.limit:g} s (an endless loop?)")
            ready, _, _ = select.select([self.replies], [], [], left)
            if not ready:
                continue
            piece = os.read(self.replies, 1 << 16)
            if not piece:
                raise AnswerFailed(self._ended())
            pieces.append(piece)
        raw, self.unread = b"".join(pieces).split(b"\n", 1)
        line = raw.decode("utf-8", errors="replace")
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            raise AnswerFailed(f"its process sent a malformed result ({line[:60]!r})")
        return message

    def _ended(self) -> str:
        try:  # the reply channel closed: the process is ending, or closed it and carries on
            code = self.process.wait(timeout=max(self.deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            return f"it closed its reply channel and did not finish within {self.limit:g} s"
        return f"its process ended without a result (exit status {code})"

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass
        os.close(self.replies)
        # The child leads its own process group (start_new_session): ending the group also
        # ends any process the answer started.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()


def check_one(checker: Callable, function: Callable) -> tuple[str, str]:
    """(verdict, message) for one exercise: right, wrong with the hint, or not done."""
    try:
        checker(function)
        return "right", ""
    except NotImplementedError:
        return "not done", "it still raises NotImplementedError"
    except Wrong as hint:
        return "wrong", str(hint)
    except AnswerFailed as failure:
        return "wrong", str(failure)
    except Exception as error:  # the reader's code failed (in-process), or returned what no check can read
        return "wrong", f"it raised {type(error).__name__}: {error}"


def check(number: str, answers) -> list[tuple[str, str, str]]:
    """Run tutorial `number`'s checks on `answers` (a module or any object with the functions)
    in this process. Returns (exercise, verdict, message), verdict "right", "wrong" or "not done".
    The command line uses `check_file`, which runs the answers in child processes."""
    results = []
    for position, (name, checker) in enumerate(CHECKS[number], 1):
        label = f"{number}.{position} {name}"
        function = getattr(answers, name, None)
        if function is None:
            results.append((label, "not done", f"there is no function {name}"))
            continue
        results.append((label, *check_one(checker, function)))
    return results


CHECKER_FILES = (Path(__file__).resolve(), HERE / "tutorial_setup.py")
CHANGED = ("changed the checker's own files (tutorials/check.py or tutorial_setup.py) while it ran: no verdict; "
           "restore them (git checkout -- tutorials/check.py tutorials/tutorial_setup.py) before checking again")


def checker_digest() -> str | None:
    """SHA-256 of the checker's own files (None if one is gone): an answer runs as the same
    user and could rewrite them, and the next run would be judged by the changed code."""
    digest = hashlib.sha256()
    try:
        for own in CHECKER_FILES:
            digest.update(own.read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


def check_file(number: str, path: Path, time_limit: float) -> list[tuple[str, str, str]]:
    """The same as `check`, with each exercise's answer run in its own child process.
    Raises AnswerFailed if the file does not load, or if an answer changed the checker's
    own files (no verdict is given then: the next run would be judged by the changed code)."""
    results, own_files = [], checker_digest()
    for position, (name, checker) in enumerate(CHECKS[number], 1):
        label = f"{number}.{position} {name}"
        try:
            results.append((label, *check_in_child(number, name, checker, path, time_limit)))
        except AnswerFailed:  # the file did not load: it may have changed the checker while loading
            if checker_digest() != own_files:
                raise AnswerFailed(CHANGED) from None
            raise
        if checker_digest() != own_files:
            raise AnswerFailed(CHANGED)
    return results


def check_in_child(number: str, name: str, checker: Callable, path: Path, time_limit: float) -> tuple[str, str]:
    """(verdict, message) of one exercise, its answer run in a child process of its own."""
    answers = AnswerProcess(path, time_limit)
    try:
        if name not in answers.functions:
            return "not done", f"there is no function {name}"
        return check_one(checker, lambda *args: answers.call(name, *args))
    finally:
        answers.close()


def load_answers(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"answers_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Stopped(BaseException):
    """The checker was asked to stop (SIGTERM, SIGHUP): unwinds through check_file's clean-up.
    A BaseException, as KeyboardInterrupt is, so that no `except Exception` takes it for an
    answer's failure."""

    def __init__(self, signum: int):
        self.signum = signum


def stop(signum, frame) -> None:
    raise Stopped(signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check your answers to a tutorial's exercises.")
    parser.add_argument("tutorial", help="tutorial number: " + ", ".join(CHECKS))
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--answers", type=Path, help="file with your functions (default tutorials/exercises/exNN.py)")
    source.add_argument("--solutions", action="store_true", help="check the reference solutions instead")
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds for each exercise (default 30)")
    args = parser.parse_args(argv)
    number = args.tutorial.zfill(2)
    if number not in CHECKS:
        print(f"check.py: no exercises for tutorial {args.tutorial!r}; choose one of {', '.join(CHECKS)}", file=sys.stderr)
        return 2
    if not 0 < args.time_limit <= MAX_TIME_LIMIT:  # also refuses nan and inf
        print(f"check.py: --time-limit must be a number of seconds above 0 and at most {MAX_TIME_LIMIT:g}, "
              f"got {args.time_limit:g}", file=sys.stderr)
        return 2
    path = args.answers or HERE / ("solutions" if args.solutions else "exercises") / f"ex{number}.py"
    if not path.is_file():
        print(f"check.py: {path}: " + ("not a file of Python code" if path.exists() else "no such file"),
              file=sys.stderr)
        return 2
    for name in ("SIGTERM", "SIGHUP"):  # a stopped checker ends its answer's process too (close())
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)
    try:
        results = check_file(number, path.resolve(), args.time_limit)
    except AnswerFailed as failure:
        print(f"check.py: {path} {failure}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("check.py: interrupted", file=sys.stderr)
        return 130
    except Stopped as stopped:
        print(f"check.py: stopped by {signal.Signals(stopped.signum).name}", file=sys.stderr)
        return 128 + stopped.signum
    for label, verdict, message in results:
        print(f"exercise {label}: {verdict}" + (f". {message}" if message else ""))
    right = sum(verdict == "right" for _, verdict, _ in results)
    print(f"{right} of {len(results)} right ({path})")
    return 0 if right == len(results) else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(Path(sys.argv[2]))
    else:
        sys.exit(main())
