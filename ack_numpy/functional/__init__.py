"""Differentiable operations on whole batches, each with its backward beside its forward.

    im2col.py    im2col / col2im (+ _loops twins): patches as rows of a matrix (and back)
    conv.py      conv2d (+ _loops, _reference twins): ordinary convolution
    adaptive.py  adaptive_conv2d (+ _loops, _reference twins), adaptive_kernels (+ _loops):
                 THE ADAPTIVE KERNEL (the paper's idea)
    quadratic.py diagonal_adaptive_conv2d, lowrank_adaptive_conv2d, quadratic_activation
                 (+ _loops twins): the cheaper quadratic controls of the adaptive kernel
    pooling.py   max_pool2d (+ _loops twin)
    sizes.py     the rules every op checks its arguments by: check_size (kernel sizes,
                 widths), check_stride_padding, check_images (an (N, C, H, W) batch)
    losses.py    log_softmax, cross_entropy

The rungs of one op: `*_loops` is the definition written as loops, one output number at
a time; `*_reference` (where there is one) is the im2col form exactly as the equations
read, with its backward; the plain name is the same arranged for speed, and is what the
layers use by default (rung "fast"). All rungs of an op take the same arguments (Tensors
or arrays), check them the same way and compute the same numbers of the same shape and
dtype. The `_loops` rung is forward only, so it returns a NumPy array; the others
return a Tensor that records the graph. `*_loops_with_grad` wraps the loops rung and its
literal backward as a graph op, so that a layer can call it (`Conv2d(..., rung="loops")`,
`model.use_rung("loops")`) and a debugger can step from `model(x)` into the loops. The
tests check that the rungs agree (to 1e-10 in float64), values and gradients.
"""
from __future__ import annotations

from ..autograd import Tensor, TensorLike, as_tensor, check_same_dtype
from .adaptive import (adaptive_conv2d, adaptive_conv2d_loops, adaptive_conv2d_loops_with_grad,
                       adaptive_conv2d_reference, adaptive_kernels, adaptive_kernels_loops)
from .conv import conv2d, conv2d_loops, conv2d_loops_with_grad, conv2d_reference
from .im2col import col2im, col2im_loops, conv_output_size, im2col, im2col_loops
from .losses import cross_entropy, log_softmax
from .pooling import max_pool2d, max_pool2d_loops
from .quadratic import (diagonal_adaptive_conv2d, diagonal_adaptive_conv2d_loops, lowrank_adaptive_conv2d,
                        lowrank_adaptive_conv2d_loops, quadratic_activation, quadratic_activation_loops)


def relu(x: Tensor) -> Tensor:
    return x.relu()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def linear(x: TensorLike, weight: TensorLike, bias: TensorLike | None = None) -> Tensor:
    """y = x W^T + b.  x: (N, in), weight: (out, in), bias: (out,) -> (N, out)."""
    x, weight = as_tensor(x), as_tensor(weight)
    bias = None if bias is None else as_tensor(bias)
    check_same_dtype("linear", {"x": x, "weight": weight, "bias": bias})
    y = x @ weight.T
    return y if bias is None else y + bias


__all__ = [
    "adaptive_conv2d", "adaptive_conv2d_loops", "adaptive_conv2d_loops_with_grad", "adaptive_conv2d_reference",
    "adaptive_kernels", "adaptive_kernels_loops", "col2im", "col2im_loops", "conv2d", "conv2d_loops",
    "conv2d_loops_with_grad", "conv2d_reference", "conv_output_size", "cross_entropy", "diagonal_adaptive_conv2d",
    "diagonal_adaptive_conv2d_loops", "im2col", "im2col_loops", "linear", "log_softmax", "lowrank_adaptive_conv2d",
    "lowrank_adaptive_conv2d_loops", "max_pool2d",
    "quadratic_activation", "quadratic_activation_loops",
    "max_pool2d_loops", "relu", "tanh",
]
