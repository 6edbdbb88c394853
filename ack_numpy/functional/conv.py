"""2-D convolution, three times: as literal loops (`conv2d_loops`), as im2col + one matrix
product written as the equations read (`conv2d_reference`), and the same arranged for
speed (`conv2d`). `Conv2d` calls the one its `rung` names: "fast" (`conv2d`, the default),
"reference" or "loops" (`conv2d_loops_with_grad`: the loops and their literal backward).

    y[n, o, i, j] = b[o] + sum_{c,u,v} W[o, c, u, v] * x_pad[n, c, i*s+u, j*s+v]

(Like every deep-learning library this is cross-correlation: the kernel is not flipped.)

The im2col form writes the same sum as a matrix product. With P = im2col(x),
(N*Ho*Wo, D), D = C*m*m, and the kernels flattened to Wf: (O, D),

    Y = P Wf^T + b                      (N*Ho*Wo, O)

and its gradients, for G = dL/dY (N*Ho*Wo, O):

    dWf = G^T P      (O, D)       every patch, weighted by its output's gradient
    db  = sum_rows G (O,)
    dP  = G Wf       (N*Ho*Wo, D), then dx = col2im(dP)

`conv2d_reference` computes exactly these. `conv2d` computes their transposes
(Y^T = Wf P^T, dP^T = Wf^T G^T, ...):
im2col stores P^T contiguously and col2im reads dP^T contiguously (see im2col.py), and
BLAS multiplies transposed operands at no extra cost. It also orders the locations
(i, j, n) instead of (n, i, j): its own `im2col_batch_last` and `col2im_batch_last`, at
the end of this file, copy x once as (C, H, W, N), so that every shifted image they copy
(and add back) is made of runs of Wo*N contiguous numbers instead of Wo. That costs a few
more transposing copies and pays on layers with many channels (LeNet's second
convolution: data/bench/layout.txt); the output is put back as (N, O, Ho, Wo).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor, TensorLike, as_tensor, check_same_dtype
from numpy.lib.stride_tricks import sliding_window_view

from .im2col import col2im, conv_output_size, im2col, pad2d
from .sizes import check_images, check_stride_padding


def _check_conv_args(x: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    check_images("conv2d", x.shape)
    if weight.ndim != 4 or weight.shape[2] != weight.shape[3]:
        raise ValueError(f"conv2d expects a weight of shape (O, C, m, m), got shape {weight.shape}")
    if 0 in weight.shape:
        raise ValueError(f"conv2d: the weight of shape {weight.shape} is empty; it needs O >= 1 output "
                         f"channels and a kernel size m >= 1")
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"conv2d: x has {x.shape[1]} channels but the weight expects {weight.shape[1]}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    check_same_dtype("conv2d", {"x": x, "weight": weight, "bias": bias})


def _prepare(x, weight, bias, stride: int, padding: int):
    """The checks every rung of conv2d shares: Tensors in, shapes and sizes checked,
    -> x, weight, bias (Tensors or None), kernel size m, out_h, out_w."""
    x, weight = as_tensor(x), as_tensor(weight)
    bias = None if bias is None else as_tensor(bias)
    _check_conv_args(x, weight, bias)
    check_stride_padding(stride, padding)
    m = weight.shape[2]
    return x, weight, bias, m, conv_output_size(x.shape[2], m, stride, padding), \
        conv_output_size(x.shape[3], m, stride, padding)


def conv2d_reference(x: TensorLike, weight: TensorLike, bias: TensorLike | None = None,
                     stride: int = 1, padding: int = 0) -> Tensor:
    """The im2col form exactly as the equations above read (rows in (n, i, j) order).

    x: (N, C, H, W), weight: (O, C, m, m), bias: (O,) -> (N, O, Ho, Wo). `conv2d` below
    computes the same numbers faster; the tests check that the two agree."""
    x, weight, bias, m, out_h, out_w = _prepare(x, weight, bias, stride, padding)
    n, o = x.shape[0], weight.shape[0]

    P = np.ascontiguousarray(im2col(x.data, m, stride, padding))  # (R, D), R = N*Ho*Wo
    Wf = weight.data.reshape(o, -1)                       # (O, D)
    Y = P @ Wf.T                                          # (R, O)
    if bias is not None:
        Y += bias.data
    parents = (x, weight) if bias is None else (x, weight, bias)
    out = Tensor.from_op(np.ascontiguousarray(Y.reshape(n, out_h, out_w, o).transpose(0, 3, 1, 2)), parents, "conv2d_reference")

    def _conv2d_reference_backward(out):
        G = out.grad.transpose(0, 2, 3, 1).reshape(-1, o)  # dL/dY                 (R, O)
        if weight.requires_grad:
            weight.accumulate_grad((G.T @ P).reshape(weight.shape))         # dWf = G^T P
        if bias is not None and bias.requires_grad:
            bias.accumulate_grad(G.sum(axis=0))                             # db = sum_rows G
        if x.requires_grad:
            x.accumulate_grad(col2im(G @ Wf, x.shape, m, stride, padding))  # dx = col2im(G Wf)

    out._backward = _conv2d_reference_backward
    return out


def conv2d(x: TensorLike, weight: TensorLike, bias: TensorLike | None = None,
           stride: int = 1, padding: int = 0) -> Tensor:
    """Convolution via im2col.  x: (N, C, H, W), weight: (O, C, m, m), bias: (O,)
    -> (N, O, Ho, Wo). Accepts Tensors or arrays; gradients flow to all three."""
    x, weight, bias, m, out_h, out_w = _prepare(x, weight, bias, stride, padding)
    n, o = x.shape[0], weight.shape[0]

    PT = im2col_batch_last(x.data, m, stride, padding)    # P^T: (D, R), R = Ho*Wo*N in (i, j, n) order
    Wf = weight.data.reshape(o, -1)                       # (O, D)
    YT = Wf @ PT                                          # Y^T = Wf P^T        (O, R)
    if bias is not None:
        YT += bias.data[:, None]
    y = YT.reshape(o, out_h, out_w, n).transpose(3, 0, 1, 2)    # (N, O, Ho, Wo)

    parents = (x, weight) if bias is None else (x, weight, bias)
    out = Tensor.from_op(np.ascontiguousarray(y), parents, "conv2d")

    def _conv2d_backward(out):
        GT = out.grad.transpose(1, 2, 3, 0).reshape(o, -1)  # G^T: (O, R), locations (i, j, n) like P^T
        if weight.requires_grad:
            weight.accumulate_grad((GT @ PT.T).reshape(weight.shape))      # dWf = G^T P
        if bias is not None and bias.requires_grad:
            bias.accumulate_grad(GT.sum(axis=1))                           # db = sum_rows G
        if x.requires_grad:
            dPT = Wf.T @ GT                                                # dP^T = (G Wf)^T  (D, R)
            x.accumulate_grad(col2im_batch_last(dPT, x.shape, m, stride, padding))  # dx = col2im(dP)

    out._backward = _conv2d_backward
    return out


def conv2d_loops(x: TensorLike, weight: TensorLike, bias: TensorLike | None = None,
                 stride: int = 1, padding: int = 0) -> np.ndarray:
    """The literal definition, one output number at a time.

    y[n, o, i, j] = b[o] + sum_{c,u,v} W[o, c, u, v] * x_pad[n, c, i*s+u, j*s+v]

    x: (N, C, H, W), weight: (O, C, m, m), bias: (O,) or None -> y: (N, O, Ho, Wo).
    The same arguments and checks as `conv2d`; forward only, so it returns a plain array.
    """
    x, weight, bias, m, out_h, out_w = _prepare(x, weight, bias, stride, padding)
    n, O = x.shape[0], weight.shape[0]
    xp = pad2d(x.data, padding)
    y = np.zeros((n, O, out_h, out_w), dtype=np.result_type(x.data, weight.data))
    for img in range(n):
        for o in range(O):
            for i in range(out_h):
                for j in range(out_w):
                    patch = xp[img, :, i * stride : i * stride + m, j * stride : j * stride + m]  # (C, m, m)
                    y[img, o, i, j] = np.sum(patch * weight.data[o]) + (0.0 if bias is None else bias.data[o])
    return y


def conv2d_backward_loops(x: TensorLike, weight: TensorLike, bias: TensorLike | None, grad_y: np.ndarray,
                          stride: int = 1, padding: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The literal backward of `conv2d_loops`, one number at a time.

    y[n, o, i, j] = b[o] + sum_{c,u,v} W[o, c, u, v] * x_pad[n, c, i*s+u, j*s+v], so for
    g = dL/dy[n, o, i, j] the chain rule gives

        dL/dW[o, c, u, v]             += g * x_pad[n, c, i*s+u, j*s+v]      dL/db[o] += g
        dL/dx_pad[n, c, i*s+u, j*s+v] += g * W[o, c, u, v]

    x: (N, C, H, W), weight: (O, C, m, m), bias: (O,) or None, grad_y: (N, O, Ho, Wo)
    -> dx: (N, C, H, W), dW: (O, C, m, m), db: (O,) or None. `conv2d` computes the same
    numbers as matrix products (dW = G^T P, dP = G Wf, dx = col2im(dP)).
    """
    x, weight, bias, m, out_h, out_w = _prepare(x, weight, bias, stride, padding)
    n, O = x.shape[0], weight.shape[0]
    if np.shape(grad_y) != (n, O, out_h, out_w):
        raise ValueError(f"grad_y must have the shape of y (N, O, Ho, Wo) = {(n, O, out_h, out_w)}, "
                         f"got {np.shape(grad_y)}")
    xp = pad2d(x.data, padding)
    W = weight.data
    dtype = np.result_type(x.data, W, grad_y)
    dxp = np.zeros(xp.shape, dtype=dtype)                 # gradient of the padded image
    dW = np.zeros(W.shape, dtype=dtype)
    db = None if bias is None else np.zeros(O, dtype=dtype)
    for img in range(n):
        for o in range(O):
            for i in range(out_h):
                for j in range(out_w):
                    g = grad_y[img, o, i, j]              # dL/dy at this output pixel
                    rows, cols = slice(i * stride, i * stride + m), slice(j * stride, j * stride + m)
                    dW[o] += g * xp[img, :, rows, cols]   # dy / dW[o, c, u, v] = the pixel under it
                    dxp[img, :, rows, cols] += g * W[o]   # dy / dx_pad[pixel] = the weight over it
                    if db is not None:
                        db[o] += g                        # dy / db[o] = 1
    # the padding zeros are not inputs: drop their gradient
    dx = dxp[:, :, padding : padding + x.shape[2], padding : padding + x.shape[3]]
    return dx, dW, db


def conv2d_loops_with_grad(x: TensorLike, weight: TensorLike, bias: TensorLike | None = None,
                           stride: int = 1, padding: int = 0) -> Tensor:
    """The literal rung as a graph op: forward `conv2d_loops`, backward `conv2d_backward_loops`.

    x: (N, C, H, W), weight: (O, C, m, m), bias: (O,) or None -> y: (N, O, Ho, Wo), a Tensor;
    gradients flow to all three. `Conv2d(..., rung="loops")` calls this."""
    x, weight = as_tensor(x), as_tensor(weight)
    bias = None if bias is None else as_tensor(bias)
    y = conv2d_loops(x, weight, bias, stride, padding)    # checks the arguments
    parents = (x, weight) if bias is None else (x, weight, bias)
    out = Tensor.from_op(y, parents, "conv2d_loops")

    def _conv2d_loops_backward(out):
        grads = conv2d_backward_loops(x, weight, bias, out.grad, stride, padding)
        for t, grad in zip((x, weight, bias), grads):
            if t is not None and t.requires_grad:
                t.accumulate_grad(grad)

    out._backward = _conv2d_loops_backward
    return out


# ----------------------------------------------------------------------------- conv2d's layout
def im2col_batch_last(x: np.ndarray, kernel_size: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """im2col's P^T with the locations in (i, j, n) order: the image index varies fastest.

    x: (N, C, H, W) -> P^T: (C*m*m, Ho*Wo*N), P^T[(c,u,v), (i,j,n)] = x_pad[n, c, i*s+u, j*s+v].
    Arguments are checked by the caller (conv2d)."""
    m = kernel_size
    # First a copy of x as (C, H, W, N), then windows[c, i, j, n, u, v] = x_pad[n, c, i*s+u, j*s+v].
    x_last = np.ascontiguousarray(pad2d(x, padding).transpose(1, 2, 3, 0))
    windows = sliding_window_view(x_last, (m, m), axis=(1, 2))[:, ::stride, ::stride]
    # (C, Ho, Wo, N, m, m) -> (C, m, m, Ho, Wo, N): runs of Wo*N numbers (N with stride > 1).
    return windows.transpose(0, 4, 5, 1, 2, 3).reshape(x.shape[1] * m * m, -1)


def col2im_batch_last(dPT: np.ndarray, x_shape: tuple, kernel_size: int, stride: int = 1,
                      padding: int = 0) -> np.ndarray:
    """The adjoint of im2col_batch_last: dP^T (C*m*m, Ho*Wo*N), locations in (i, j, n) order
    -> dx (N, C, H, W), dx[n, c, i*s+u, j*s+v] += dP^T[(c,u,v), (i,j,n)]."""
    n, c, h, w = x_shape
    m = kernel_size
    out_h, out_w = conv_output_size(h, m, stride, padding), conv_output_size(w, m, stride, padding)
    cols6 = dPT.reshape(c, m, m, out_h, out_w, n)                        # cols6[c, u, v]: (Ho, Wo, N)
    dx_last = np.zeros((c, h + 2 * padding, w + 2 * padding, n), dtype=dPT.dtype)  # (C, H, W, N)
    for u in range(m):
        for v in range(m):
            dx_last[:, u : u + stride * out_h : stride, v : v + stride * out_w : stride, :] += cols6[:, u, v]
    dx = dx_last.transpose(3, 0, 1, 2)                                  # (N, C, H, W) view
    if padding:
        dx = dx[:, :, padding:-padding, padding:-padding]
    return np.ascontiguousarray(dx)
