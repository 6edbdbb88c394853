"""Exercises of tutorial 05 (looking at kernels). Write each function, then run

    python tutorials/check.py 05

The checker uses the trained layer that comes with the package (ack_numpy/assets/adaptive-lenet.npz)
and two drawn digit-like images, so it needs no MNIST.
"""
import numpy as np

import ack_numpy.functional as F  # noqa: F401  (F.im2col, F.adaptive_kernels may help)


def kernel_distance_map(x: np.ndarray, Q: np.ndarray, w: np.ndarray, o: int) -> np.ndarray:
    """05.1  For one image x (1, 1, H, W), 3x3 kernels, stride 1, no padding: the map
    ||k_o(l) - w_o|| over the output locations, shape (Ho, Wo)."""
    raise NotImplementedError


def distance_to_mean_kernel(x: np.ndarray, Q: np.ndarray, w: np.ndarray, o: int) -> np.ndarray:
    """05.2  The map of tutorial 05, section 2: ||k_o(l) - kbar|| with kbar the mean kernel of
    this image over its Ho x Wo locations, shape (Ho, Wo)."""
    raise NotImplementedError
