"""Max pooling: keep the largest value of each k x k window.

    y[n, c, i, j] = max_{u,v < k} x[n, c, i*s+u, j*s+v]

The gradient flows only to the element that was the maximum (the "argmax"); the other
elements of the window did not influence the output, so their gradient is zero.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..autograd import Tensor, as_tensor
from .im2col import conv_output_size


def max_pool2d(x, kernel_size: int = 2, stride: int | None = None) -> Tensor:
    """x: (N, C, H, W) -> (N, C, Ho, Wo) with Ho = (H - k) // s + 1; stride defaults to k."""
    x = as_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"max_pool2d expects x of shape (N, C, H, W), got shape {x.shape}")
    k = kernel_size
    s = k if stride is None else stride
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, k, s, 0), conv_output_size(w, k, s, 0)

    windows = sliding_window_view(x.data, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # (N, C, Ho, Wo, k, k)
    flat = windows.reshape(n, c, ho, wo, k * k)
    winner = flat.argmax(axis=-1)                                 # (N, C, Ho, Wo): which of the k*k won
    y = np.take_along_axis(flat, winner[..., None], axis=-1)[..., 0]
    out = Tensor.from_op(y, (x,), "max_pool2d")

    def _backward():
        dx = np.zeros_like(x.data)
        # Route each output gradient to its window's winner, one offset (u, v) at a time;
        # `+=` also handles overlapping windows (stride < k).
        for u in range(k):
            for v in range(k):
                routed = out.grad * (winner == u * k + v)
                dx[:, :, u : u + s * ho : s, v : v + s * wo : s] += routed
        x.accumulate_grad(dx)

    out._backward = _backward
    return out
