"""Reference solutions of tutorial 05's exercises (tutorials/exercises/ex05.py)."""
import numpy as np

import ack_numpy.functional as F


def kernel_distance_map(x: np.ndarray, Q: np.ndarray, w: np.ndarray, o: int) -> np.ndarray:
    P = F.im2col(x, 3)                                        # (Ho*Wo, D)
    Ho, Wo = x.shape[2] - 2, x.shape[3] - 2
    return np.linalg.norm(P @ Q[o].T, axis=1).reshape(Ho, Wo)  # k - w = Q_o p


def distance_to_mean_kernel(x: np.ndarray, Q: np.ndarray, w: np.ndarray, o: int) -> np.ndarray:
    P = F.im2col(x, 3)
    Ho, Wo = x.shape[2] - 2, x.shape[3] - 2
    centred = (P - P.mean(axis=0)) @ Q[o].T                   # k(l) - kbar = Q_o (p_l - pbar)
    return np.linalg.norm(centred, axis=1).reshape(Ho, Wo)
