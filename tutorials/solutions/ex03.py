"""Reference solutions of tutorial 03's exercises (tutorials/exercises/ex03.py)."""
import numpy as np

import ack_numpy.functional as F


def adaptive_kernel(p: np.ndarray, Q_o: np.ndarray, w_o: np.ndarray) -> np.ndarray:
    return Q_o @ p + w_o                   # element e: filter Q_o[e, :] on the patch, plus w_o[e]


def dsigma_dp(p: np.ndarray, Q_o: np.ndarray, w_o: np.ndarray) -> np.ndarray:
    return (Q_o + Q_o.T) @ p + w_o         # p is on both sides of p^T Q p


def most_adapted_location(x: np.ndarray, Q: np.ndarray, w: np.ndarray, o: int) -> tuple[int, int]:
    P = F.im2col(x, 3)                                  # (Ho*Wo, D), rows in (i, j) order
    distance = np.linalg.norm(P @ Q[o].T, axis=1)       # ||k(l) - w_o|| = ||Q_o p_l||
    Wo = x.shape[3] - 2
    return divmod(int(distance.argmax()), Wo)
