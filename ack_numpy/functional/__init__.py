"""Differentiable operations on whole batches, each with its backward beside its forward.

    im2col.py    im2col / col2im: patches as rows of a matrix (and back)
    conv.py      conv2d (+ _loops, _reference twins): ordinary convolution
    adaptive.py  adaptive_conv2d (+ _loops, _reference twins), adaptive_kernels: THE ADAPTIVE
                 KERNEL (the paper's idea)
    pooling.py   max_pool2d
    losses.py    log_softmax, cross_entropy
"""
from __future__ import annotations

from ..autograd import Tensor
from .adaptive import adaptive_conv2d, adaptive_conv2d_loops, adaptive_conv2d_reference, adaptive_kernels
from .conv import conv2d, conv2d_loops, conv2d_reference
from .im2col import col2im, conv_output_size, im2col, im2col_loops
from .losses import cross_entropy, log_softmax
from .pooling import max_pool2d


def relu(x: Tensor) -> Tensor:
    return x.relu()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W^T + b.  x: (N, in), weight: (out, in), bias: (out,) -> (N, out)."""
    y = x @ weight.T
    return y if bias is None else y + bias


__all__ = [
    "adaptive_conv2d", "adaptive_conv2d_loops", "adaptive_conv2d_reference", "adaptive_kernels", "col2im", "conv2d",
    "conv2d_loops", "conv2d_reference", "conv_output_size", "cross_entropy", "im2col", "im2col_loops", "linear",
    "log_softmax", "max_pool2d", "relu", "tanh",
]
