"""Exercises of tutorial 02 (convolution, im2col). Write each function, then run

    python tutorials/check.py 02
"""
import numpy as np

import ack_numpy.functional as F  # noqa: F401  (F.im2col, F.conv_output_size may help)


def patch_row(x: np.ndarray, n: int, i: int, j: int, m: int, stride: int, padding: int) -> np.ndarray:
    """02.1  The row of im2col(x, m, stride, padding) that belongs to output position
    (n, i, j), cut out of x (N, C, H, W) by hand with slicing: shape (C*m*m,), in
    (c, u, v) order."""
    raise NotImplementedError


def conv2d_by_matmul(x: np.ndarray, weight: np.ndarray, b: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """02.2  The convolution x (N, C, H, W) * weight (O, C, m, m) + b (O,) as ONE matrix
    product with F.im2col: return y (N, O, Ho, Wo), equal to F.conv2d_loops."""
    raise NotImplementedError


def copies_per_pixel(H: int, W: int, m: int, stride: int, padding: int) -> np.ndarray:
    """02.3  For an H x W image, how many patches of an m x m kernel (with this stride and
    padding) contain each pixel: an integer array (H, W). (The corners of a 5x5 image with
    m = 3, stride 1, no padding: 1; its centre: 9.)"""
    raise NotImplementedError
