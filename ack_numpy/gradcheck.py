"""A finite-difference gradient check: is a hand-written backward right?

For a scalar function L of an array v, the central difference

    dL/dv[i]  ~  ( L(v + eps e_i) - L(v - eps e_i) ) / (2 eps)

needs nothing but forward passes, so it is an independent check of any backward. To
check an operation `op` with a non-scalar output, `grad_check` makes a scalar from it,

    L = sum( op(*inputs) * R )          R: fixed random weights, the shape of the output

(a plain sum would give every output the same weight, and errors that cancel between
outputs would go unseen), computes dL/d(input) both ways, and compares them.

Run it in float64 (it converts its inputs): in float32 the rounding error of the
difference is larger than many real bugs (tutorial 01, section 4, measures it).
It costs two forward passes per input entry, so it is for small test problems.

    from ack_numpy.gradcheck import grad_check
    errors = grad_check(lambda x, w: (x @ w).tanh(), x, w)   # raises AssertionError on a mismatch
    errors[1]                                                # max |error| of dL/dw
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .autograd import Tensor


def numerical_grad(f: Callable[..., float], arrays: Sequence[np.ndarray], index: int,
                   eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f(*arrays) with respect to arrays[index].

    arrays[index] is nudged in place, entry by entry, and restored after each entry.
    Returns an array of the shape of arrays[index].
    """
    x = arrays[index]
    grad = np.zeros(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        plus = f(*arrays)
        x[i] = old - eps
        minus = f(*arrays)
        x[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def _check_settings(seed, eps, atol, rtol) -> None:
    """A tolerance that is NaN makes every comparison false, so any backward would pass: the
    settings must be ordinary numbers (eps > 0; atol, rtol >= 0; seed a whole number >= 0)."""
    def number(x) -> bool:
        return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and np.isfinite(x)

    if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        raise ValueError(f"grad_check: seed must be a whole number >= 0, got {seed!r}")
    if not (number(eps) and eps > 0):
        raise ValueError(f"grad_check: eps must be a finite number > 0, got {eps!r}")
    for name, value in (("atol", atol), ("rtol", rtol)):
        if not (number(value) and value >= 0):
            raise ValueError(f"grad_check: {name} must be a finite number >= 0, got {value!r}")


def grad_check(op: Callable[..., Tensor], *arrays: np.ndarray, seed: int = 0, eps: float = 1e-6,
               atol: float = 1e-6, rtol: float = 1e-5) -> dict[int, float]:
    """Compare the backward of `op` with central differences of L = sum(op(*inputs) * R), in float64.

    op: takes one Tensor per array and returns a Tensor; arrays: its inputs (copied to
    float64); R ~ normal(0, 1) from `seed`, the shape of op's output.
    Returns {input index: max |backward - finite difference|}; raises AssertionError
    naming the input if an input gets no gradient, a gradient of the wrong shape or not
    finite, or one that differs by more than atol + rtol * |finite difference| in some
    entry. Raises ValueError if an input, the output or a finite difference is NaN or
    infinite: every comparison with NaN is false, so the check would pass whatever the
    backward did.
    """
    _check_settings(seed, eps, atol, rtol)
    arrays = [_float64_input(i, a) for i, a in enumerate(arrays)]
    if not arrays or all(a.size == 0 for a in arrays):
        raise ValueError("grad_check: no input has any entries, so there is nothing to check")
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = op(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"grad_check: op must return a Tensor, got {type(out).__name__}")
    if not np.isfinite(out.data).all():
        raise ValueError(f"grad_check: the output of op (shape {out.shape}) holds NaN or infinite values")
    weights = np.random.default_rng(seed).normal(size=out.shape)
    (out * Tensor(weights)).sum().backward()

    def loss(*values: np.ndarray) -> float:
        return float((op(*[Tensor(v) for v in values]).data * weights).sum())

    errors = {}
    for i, t in enumerate(tensors):
        if t.grad is None:
            raise AssertionError(f"input {i} (shape {arrays[i].shape}) received no gradient")
        if t.grad.shape != arrays[i].shape:
            raise AssertionError(f"input {i}: gradient has shape {t.grad.shape}, the input {arrays[i].shape}")
        if not np.isfinite(t.grad).all():
            raise AssertionError(f"input {i} (shape {arrays[i].shape}): backward gives NaN or infinite values")
        expected = numerical_grad(loss, arrays, i, eps)
        if not np.isfinite(expected).all():
            raise ValueError(f"grad_check: input {i} (shape {arrays[i].shape}): the finite differences are NaN "
                             f"or infinite (op is not finite within eps={eps:g} of the input)")
        error = np.abs(t.grad - expected)
        errors[i] = float(error.max()) if error.size else 0.0
        bad = error > atol + rtol * np.abs(expected)
        if bad.any():
            where = np.unravel_index(int(np.argmax(np.where(bad, error, -1))), error.shape)
            raise AssertionError(
                f"input {i} (shape {arrays[i].shape}): backward and finite differences differ in "
                f"{int(bad.sum())} of {bad.size} entries; at {tuple(int(k) for k in where)} backward gives "
                f"{t.grad[where]:.8g}, finite differences {expected[where]:.8g}")
    return errors


def _float64_input(index: int, array) -> np.ndarray:
    """A float64 copy of a real, finite input; a ValueError naming the input otherwise."""
    array = np.asarray(array)
    if array.dtype.kind not in "fiu":
        raise ValueError(f"grad_check: input {index} holds {array.dtype} values, expected real numbers")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"grad_check: input {index} (shape {array.shape}) holds NaN or infinite values")
    return array
