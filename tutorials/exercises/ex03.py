"""Exercises of tutorial 03 (adaptive kernels). Write each function, then run

    python tutorials/check.py 03
"""
import numpy as np

import ack_numpy.functional as F  # noqa: F401  (F.im2col may help)


def adaptive_kernel(p: np.ndarray, Q_o: np.ndarray, w_o: np.ndarray) -> np.ndarray:
    """03.1  The adaptive kernel of one patch: p (D,), Q_o (D, D), w_o (D,) -> k (D,)."""
    raise NotImplementedError


def dsigma_dp(p: np.ndarray, Q_o: np.ndarray, w_o: np.ndarray) -> np.ndarray:
    """03.2  d sigma / d p for sigma = p^T Q_o p + w_o . p + b_o, with the formula you derive
    (not by finite differences): (D,). Q_o is NOT symmetric here."""
    raise NotImplementedError


def most_adapted_location(x: np.ndarray, Q: np.ndarray, w: np.ndarray, o: int) -> tuple[int, int]:
    """03.3  For one image x (1, C, H, W), 3x3 kernels, stride 1, no padding, and channel o of
    Q (O, D, D), w (O, D): the output location (i, j) whose kernel k_o(l) differs most from
    w_o (largest ||k_o(l) - w_o||)."""
    raise NotImplementedError
