"""Shared test helpers: the finite-difference gradient check and the MNIST location."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ack_numpy import Tensor

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def mnist_dir() -> Path | None:
    """ACK_MNIST_DIR if set, else the shared copy beside the project, else a downloaded copy
    in data/mnist; None if none exists (the tests that need MNIST then skip)."""
    candidates = [os.environ.get("ACK_MNIST_DIR"), PROJECT_ROOT.parent / "shared" / "data" / "mnist",
                  PROJECT_ROOT / "data" / "mnist"]
    for c in candidates:
        if c and Path(c, "train-images-idx3-ubyte.gz").exists():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    path = mnist_dir()
    if path is None:
        pytest.skip("real MNIST not found: set ACK_MNIST_DIR or put it at ../shared/data/mnist")
    return path


def numerical_grad(f, arrays: list[np.ndarray], index: int, eps: float = 1e-6) -> np.ndarray:
    """Central differences: d f / d arrays[index], where f(*arrays) returns a float."""
    x = arrays[index]
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        plus = f(*arrays)
        x[i] = old - eps
        minus = f(*arrays)
        x[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def check_gradients(op, *arrays: np.ndarray, seed: int = 0, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """Compare the hand-written backward of `op` with central differences, in float64.

    The scalar checked is L = sum(op(*inputs) * R) for a fixed random R, so that every
    output element gets a different weight (a plain sum can hide errors that cancel)."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    out = op(*tensors)
    weights = np.random.default_rng(seed).normal(size=out.shape)
    (out * Tensor(weights)).sum().backward()

    def scalar(*values):
        return float((op(*[Tensor(v) for v in values]).data * weights).sum())

    for i, t in enumerate(tensors):
        expected = numerical_grad(scalar, arrays, i)
        assert t.grad is not None, f"input {i} received no gradient"
        assert t.grad.shape == arrays[i].shape
        np.testing.assert_allclose(t.grad, expected, atol=atol, rtol=rtol, err_msg=f"gradient of input {i}")
