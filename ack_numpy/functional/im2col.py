"""im2col and col2im: turning convolution into one matrix product.

A convolution with an m x m kernel looks at one patch of the input per output pixel.
`im2col` copies every patch into one row of a matrix P:

    x: (N, C, H, W)  --im2col-->  P: (N*Ho*Wo, C*m*m)

Row r = (n, i, j) holds the patch under output pixel (i, j) of image n, flattened in
(c, u, v) order (channel, kernel row, kernel column). Then every convolution output is
a dot product of a row of P with a flattened kernel, i.e. one matrix product.

`col2im` is the adjoint (the transpose) of `im2col`: it takes one gradient per patch
element, (N*Ho*Wo, C*m*m), and adds each one back onto the input pixel it was copied
from. Pixels that belong to several patches receive the sum. That is exactly the
backward pass of im2col. `im2col_loops` and `col2im_loops` are both written as
the literal loop over patches.

Sizes: Ho = (H + 2*padding - m) // stride + 1, and the same for Wo.

Memory layout: `im2col` returns P as a transposed view. Read P by columns instead of
rows: column (c, u, v) of P is channel c of every image, shifted by (u, v) and cropped
to Ho x Wo (subsampled by the stride). So P is stored column by column, as the
contiguous array P^T (D, N*Ho*Wo): building it is D copies of shifted images, and
col2im adds D shifted images back, instead of copying and scattering m-element pieces
of rows. The values are the same; only `P.T` being contiguous shows the layout.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .sizes import check_images, check_size, check_stride_padding


def conv_output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """Number of kernel positions along one axis: (size + 2*padding - m) // stride + 1.

    The padding must be smaller than the kernel: with padding >= m, the outermost windows
    lie wholly in the padding and see only zeros."""
    check_size("kernel_size", kernel_size)
    if padding >= kernel_size:
        raise ValueError(f"padding {padding} must be smaller than the kernel size {kernel_size}: "
                         f"windows wholly inside the padding see only zeros")
    out = (size + 2 * padding - kernel_size) // stride + 1
    if out < 1:
        raise ValueError(
            f"kernel of size {kernel_size} does not fit an input of size {size} "
            f"with padding {padding}: the output would be empty"
        )
    return out


def check_cols_shape(cols: np.ndarray, x_shape: tuple, kernel_size: int, stride: int,
                     padding: int) -> tuple[int, int, int, int, int, int]:
    """(N, C, H, W, Ho, Wo) for col2im, after checking that cols is (N*Ho*Wo, C*m*m):
    a wrong shape would otherwise fail inside a reshape, naming neither argument."""
    if len(x_shape) != 4:
        raise ValueError(f"col2im: x_shape must be (N, C, H, W), got {tuple(x_shape)}")
    n, c, h, w = x_shape
    m = kernel_size
    out_h, out_w = conv_output_size(h, m, stride, padding), conv_output_size(w, m, stride, padding)
    expected = (n * out_h * out_w, c * m * m)
    if cols.shape != expected:
        raise ValueError(f"col2im: cols has shape {cols.shape}, expected (N*Ho*Wo, C*m*m) = {expected} "
                         f"for x_shape {tuple(x_shape)}, kernel_size {m}, stride {stride}, padding {padding}")
    return n, c, h, w, out_h, out_w


def pad2d(x: np.ndarray, padding: int) -> np.ndarray:
    """Zero-pad the last two axes of x (N, C, H, W) by `padding` on every side."""
    if padding == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))


def im2col(x: np.ndarray, kernel_size: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Copy every m x m patch of x into a row.

    x: (N, C, H, W)  ->  P: (N*Ho*Wo, C*m*m), rows in (n, i, j) order,
    columns in (c, u, v) order, so P[(n,i,j), (c,u,v)] = x_pad[n, c, i*stride+u, j*stride+v].
    P is the transpose of a contiguous (C*m*m, N*Ho*Wo) array.
    """
    check_images("im2col", x.shape)
    check_stride_padding(stride, padding)
    n, c, h, w = x.shape
    m = kernel_size
    out_h, out_w = conv_output_size(h, m, stride, padding), conv_output_size(w, m, stride, padding)
    # A strided view: windows[n, c, i, j, u, v] = x_pad[n, c, i*stride+u, j*stride+v]; no copy yet.
    windows = sliding_window_view(pad2d(x, padding), (m, m), axis=(2, 3))[:, :, ::stride, ::stride]
    # (N, C, Ho, Wo, m, m) -> (C, m, m, N, Ho, Wo): the one copy. Row (c, u, v) of P^T is
    # channel c shifted by (u, v), copied in runs of Wo numbers.
    PT = windows.transpose(1, 4, 5, 0, 2, 3).reshape(c * m * m, n * out_h * out_w)
    return PT.T                                                   # (R, D), a view of P^T (D, R)


def col2im(cols: np.ndarray, x_shape: tuple, kernel_size: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Adjoint of im2col: add each patch entry back onto the pixel it came from.

    cols: (N*Ho*Wo, C*m*m)  ->  dx: (N, C, H, W)
    dx[n, c, i*stride+u, j*stride+v] += cols[(n,i,j), (c,u,v)]   for all i, j, u, v

    Fastest when cols.T is contiguous (the layout im2col produces; the layers pass
    their gradient dP that way); any other layout costs one transposing copy.
    """
    n, c, h, w, out_h, out_w = check_cols_shape(cols, x_shape, kernel_size, stride, padding)
    m = kernel_size
    hp, wp = h + 2 * padding, w + 2 * padding
    # One vectorised add per kernel offset (u, v): m*m Python iterations, not N*Ho*Wo.
    cols6 = cols.T.reshape(c, m, m, n, out_h, out_w)                  # cols6[c, u, v]: (N, Ho, Wo)
    dx = np.zeros((n, c, hp, wp), dtype=cols.dtype)
    dx_cn = dx.transpose(1, 0, 2, 3)                                 # (C, N, H, W) view, to match cols6
    for u in range(m):
        for v in range(m):
            dx_cn[:, :, u : u + stride * out_h : stride, v : v + stride * out_w : stride] += cols6[:, u, v]
    if padding:
        dx = dx[:, :, padding:-padding, padding:-padding]
    return np.ascontiguousarray(dx)


def im2col_loops(x: np.ndarray, kernel_size: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """The same as `im2col`, written as the literal loop over patches.

    x: (N, C, H, W) -> P: (N*Ho*Wo, C*m*m), rows in (n, i, j) order."""
    check_images("im2col_loops", x.shape)
    check_stride_padding(stride, padding)
    n, c, h, w = x.shape
    m = kernel_size
    out_h, out_w = conv_output_size(h, m, stride, padding), conv_output_size(w, m, stride, padding)
    xp = pad2d(x, padding)
    cols = np.empty((n * out_h * out_w, c * m * m), dtype=x.dtype)
    row = 0
    for img in range(n):
        for i in range(out_h):
            for j in range(out_w):
                cols[row] = xp[img, :, i * stride : i * stride + m, j * stride : j * stride + m].reshape(-1)
                row += 1
    return cols


def col2im_loops(cols: np.ndarray, x_shape: tuple, kernel_size: int, stride: int = 1,
                 padding: int = 0) -> np.ndarray:
    """The same as `col2im`, written as the literal loop over patches.

    cols: (N*Ho*Wo, C*m*m), rows in (n, i, j) order -> dx: (N, C, H, W)."""
    check_stride_padding(stride, padding)
    n, c, h, w, out_h, out_w = check_cols_shape(cols, x_shape, kernel_size, stride, padding)
    m = kernel_size
    dx = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    row = 0
    for img in range(n):
        for i in range(out_h):
            for j in range(out_w):
                # the patch under output pixel (i, j) receives row (img, i, j) of cols
                dx[img, :, i * stride : i * stride + m, j * stride : j * stride + m] += cols[row].reshape(c, m, m)
                row += 1
    return dx[:, :, padding : padding + h, padding : padding + w].copy()
