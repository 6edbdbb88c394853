"""Exercises of tutorial 06 (XOR and Dynamic Filter Networks). Write each function, then run

    python tutorials/check.py 06
"""
import numpy as np


def quadratic_unit(P: np.ndarray, Q: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """06.1  The adaptive unit of section 1 for N 2-vectors at once: P (N, 2), Q (2, 2), w (2,), b
    -> y (N,) with y[n] = tanh(p_n^T Q p_n + w . p_n + b)."""
    raise NotImplementedError


def adaptive_as_dynamic_filter(weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """06.2  A linear filter-generating convolution, weight (D, C, m, m) and bias (D,) with
    D = C*m*m (output channel e makes filter element e at every location), read as one adaptive
    channel: return (Q (D, D), w (D,)) such that the kernels Q p + w are the filters it generates."""
    raise NotImplementedError
