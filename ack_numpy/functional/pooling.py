"""Max pooling: keep the largest value of each k x k window.

    y[n, c, i, j] = max_{u,v < k} x[n, c, i*s+u, j*s+v]

The gradient flows only to the element that was the maximum (the "argmax"); the other
elements of the window did not influence the output, so their gradient is zero.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor, as_tensor
from .im2col import check_stride_padding, conv_output_size


def max_pool2d(x, kernel_size: int = 2, stride: int | None = None) -> Tensor:
    """x: (N, C, H, W) -> (N, C, Ho, Wo) with Ho = (H - k) // s + 1; stride defaults to k."""
    x = as_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"max_pool2d expects x of shape (N, C, H, W), got shape {x.shape}")
    k = kernel_size
    s = k if stride is None else stride
    check_stride_padding(s, 0)
    if int(k) != k or k < 1:
        raise ValueError(f"kernel_size must be a positive integer, got {kernel_size!r}")
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, k, s, 0), conv_output_size(w, k, s, 0)

    def at_offset(u: int, v: int) -> np.ndarray:
        """Element (u, v) of every window: x[n, c, i*s+u, j*s+v] for all n, c, i, j  (N, C, Ho, Wo), a view."""
        return x.data[:, :, u : u + s * ho : s, v : v + s * wo : s]

    # A running maximum over the k*k offsets: k*k vectorised steps over (N, C, Ho, Wo).
    # (np.argmax over a (..., k*k) copy of the windows gives the same maxima, but copies
    # the input and then works through k*k = 4 numbers at a time: several times slower.)
    y = at_offset(0, 0).copy()
    for u in range(k):
        for v in range(k):
            np.maximum(y, at_offset(u, v), out=y)                 # np.maximum lets a NaN through
    out = Tensor.from_op(y, (x,), "max_pool2d")

    def _backward(out):
        dx = np.zeros_like(x.data)
        routed = np.zeros(y.shape, dtype=bool)                    # windows whose winner has been found
        # Route each output gradient to its window's winner, one offset (u, v) at a time. The
        # winner is the first element (row-major) equal to the maximum, as with np.argmax, so
        # a tie sends the gradient to one element only. `+=` handles overlapping windows.
        for u in range(k):
            for v in range(k):
                wins = (at_offset(u, v) == y) & ~routed           # (N, C, Ho, Wo) bool
                routed |= wins
                dx[:, :, u : u + s * ho : s, v : v + s * wo : s] += out.grad * wins
        x.accumulate_grad(dx)

    out._backward = _backward
    return out
