"""Max pooling: keep the largest value of each k x k window.

    y[n, c, i, j] = max_{u,v < k} x[n, c, i*s+u, j*s+v]

The gradient flows only to the element that was the maximum (the "argmax"); the other
elements of the window did not influence the output, so their gradient is zero.

Performance: with windows that do not overlap (stride >= kernel, as in every model here)
each input element lies in at most one window, so the backward writes each gradient
instead of adding it: one pass over that slice of dx per offset instead of a temporary
array and a read-modify-write.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor, TensorLike, as_tensor
from .im2col import conv_output_size
from .sizes import check_images, check_size, check_stride_padding


def _check_pool_args(x: Tensor, kernel_size: int, stride: int | None) -> tuple[int, int, int, int]:
    """Check the arguments of max_pool2d; return k, s, Ho, Wo."""
    check_images("max_pool2d", x.shape)
    check_size("kernel_size", kernel_size)
    s = kernel_size if stride is None else stride
    check_stride_padding(s, 0)
    out_h = conv_output_size(x.shape[2], kernel_size, s, 0)
    out_w = conv_output_size(x.shape[3], kernel_size, s, 0)
    return kernel_size, s, out_h, out_w


def max_pool2d(x: TensorLike, kernel_size: int = 2, stride: int | None = None) -> Tensor:
    """x: (N, C, H, W) -> (N, C, Ho, Wo) with Ho = (H - k) // s + 1; stride defaults to k."""
    x = as_tensor(x)
    k, s, out_h, out_w = _check_pool_args(x, kernel_size, stride)

    def at_offset(u: int, v: int) -> np.ndarray:
        """Element (u, v) of every window: x[n, c, i*s+u, j*s+v] for all n, c, i, j  (N, C, Ho, Wo), a view."""
        return x.data[:, :, u : u + s * out_h : s, v : v + s * out_w : s]

    # A running maximum over the k*k offsets: k*k vectorised steps over (N, C, Ho, Wo), and
    # no copy of the windows.
    y = at_offset(0, 0).copy()
    for u in range(k):
        for v in range(k):
            np.maximum(y, at_offset(u, v), out=y)                 # np.maximum lets a NaN through
    out = Tensor.from_op(y, (x,), "max_pool2d")

    def _max_pool2d_backward(out):
        dx = np.zeros_like(x.data)
        routed = np.zeros(y.shape, dtype=bool)                    # windows whose winner has been found
        wins = np.empty(y.shape, dtype=bool)
        # Route each output gradient to its window's winner, one offset (u, v) at a time. The
        # winner is the first element (row-major) equal to the maximum, as with np.argmax, so
        # a tie sends the gradient to one element only.
        for u in range(k):
            for v in range(k):
                np.equal(at_offset(u, v), y, out=wins)
                wins &= ~routed                                   # (N, C, Ho, Wo) bool
                routed |= wins
                dx_uv = dx[:, :, u : u + s * out_h : s, v : v + s * out_w : s]
                if s < k:
                    dx_uv += out.grad * wins                      # overlapping windows: add
                else:
                    np.multiply(out.grad, wins, out=dx_uv)        # each element in one window: write
                    # (a loser gets g * 0, which is -0.0 for a negative g: equal to 0.0 in every sum)
        x.accumulate_grad(dx)

    out._backward = _max_pool2d_backward
    return out


def max_pool2d_loops(x: TensorLike, kernel_size: int = 2, stride: int | None = None) -> np.ndarray:
    """The same as `max_pool2d`, one output number at a time.

    x: (N, C, H, W) -> y: (N, C, Ho, Wo); forward only, so it returns a plain array."""
    x = as_tensor(x)
    k, s, out_h, out_w = _check_pool_args(x, kernel_size, stride)
    n, c = x.shape[:2]
    y = np.empty((n, c, out_h, out_w), dtype=x.dtype)
    for img in range(n):
        for ch in range(c):
            for i in range(out_h):
                for j in range(out_w):
                    window = x.data[img, ch, i * s : i * s + k, j * s : j * s + k]  # (k, k)
                    y[img, ch, i, j] = window.max()
    return y
