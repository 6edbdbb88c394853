"""Reference solutions of tutorial 02's exercises (tutorials/exercises/ex02.py)."""
import numpy as np

import ack_numpy.functional as F


def patch_row(x: np.ndarray, n: int, i: int, j: int, m: int, stride: int, padding: int) -> np.ndarray:
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    return xp[n, :, i * stride : i * stride + m, j * stride : j * stride + m].reshape(-1)


def conv2d_by_matmul(x: np.ndarray, weight: np.ndarray, b: np.ndarray, stride: int, padding: int) -> np.ndarray:
    N, O, m = x.shape[0], weight.shape[0], weight.shape[2]
    Ho = F.conv_output_size(x.shape[2], m, stride, padding)
    Wo = F.conv_output_size(x.shape[3], m, stride, padding)
    Y = F.im2col(x, m, stride, padding) @ weight.reshape(O, -1).T + b   # (N*Ho*Wo, O), rows (n, i, j)
    return Y.reshape(N, Ho, Wo, O).transpose(0, 3, 1, 2)


def copies_per_pixel(H: int, W: int, m: int, stride: int, padding: int) -> np.ndarray:
    counts = np.zeros((H + 2 * padding, W + 2 * padding), dtype=int)
    for i in range(F.conv_output_size(H, m, stride, padding)):
        for j in range(F.conv_output_size(W, m, stride, padding)):
            counts[i * stride : i * stride + m, j * stride : j * stride + m] += 1   # this patch's window
    return counts[padding : padding + H, padding : padding + W]                   # drop the padding
