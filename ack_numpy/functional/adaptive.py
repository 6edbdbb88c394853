"""The adaptive convolution: a kernel computed from the patch it is applied to.

This is the idea of Zamora Esquivel et al., "Adaptive Convolutional Kernels"
(ICCV Workshops 2019). For output channel o, output location l and the im2col patch
p = p_l (length D = C*m*m, in (c, u, v) order):

    k_o(l)     = Q_o p + w_o          (D,)   element e of the kernel = filter Q_o[e, :] on the patch
    sigma_o(l) = k_o(l) . p + b_o     ()     the dynamic kernel applied to the same patch
               = p^T Q_o p + w_o . p + b_o   a quadratic form in the patch

Q_o (D, D) holds one linear filter per kernel element (the paper's Q_(u,v) filters),
w_o (D,) is a static kernel (Q = 0 gives an ordinary convolution) and b_o a bias.
The layer's output y = tanh(sigma) is applied by `ack_numpy.nn.AdaptiveConv2d`; these
functions return sigma.

Two implementations live here, side by side:

* `adaptive_conv2d_loops`: the literal one. It loops over images, output channels and
  output pixels, builds the kernel element by element and applies it. Step through it
  in a debugger to see the equations above happen one number at a time.
* `adaptive_conv2d`: the parallel one, for training. With P = im2col(x) (R, D), where
  R = N*Ho*Wo, and Q stacked into Qs (O*D, D):

      Z     = P Qs^T                  (R, O*D)  every dynamic kernel at once, minus w
      sigma = rowsum_d(Z * P) + P w^T + b       (R, O)

  Backward, for G = dL/dsigma (R, O) and GP[r, (o, d)] = G[r, o] * P[r, d]  (R, O*D):

      dQ_o = sum_r G[r, o] p_r p_r^T     ->  dQ = GP^T P              (O*D, D)
      dp_r = sum_o G[r, o] ((Q_o + Q_o^T) p_r + w_o)
                                         ->  dP = GP Ss + G w         (R, D), Ss = stacked Q_o + Q_o^T
      dw   = G^T P   (O, D),   db = sum_r G  (O,),   dx = col2im(dP)

  The same GP matrix feeds both dQ and dP, so the backward is two large matrix products.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Tensor, as_tensor
from .im2col import check_stride_padding, col2im, conv_output_size, im2col, pad2d


def kernel_size_from(D: int, channels: int) -> int:
    """Recover m from D = C*m*m; raise if Q's size does not fit the input's channels."""
    if D % channels:
        raise ValueError(f"Q has D={D} but x has C={channels} channels: D must be C*m*m, "
                         f"and {D} is not divisible by {channels}")
    m = math.isqrt(D // channels)
    if m * m * channels != D:
        raise ValueError(f"Q has D={D} but x has C={channels} channels: D must be C*m*m "
                         f"for a whole kernel size m, and D/C={D // channels} is not a square")
    return m


def _check_adaptive_args(x: Tensor, Q: Tensor, w: Tensor | None, b: Tensor | None) -> int:
    if x.ndim != 4:
        raise ValueError(f"adaptive_conv2d expects x of shape (N, C, H, W), got shape {x.shape}")
    if Q.ndim != 3 or Q.shape[1] != Q.shape[2]:
        raise ValueError(f"adaptive_conv2d expects Q of shape (O, D, D), got shape {Q.shape}")
    o, D, _ = Q.shape
    m = kernel_size_from(D, x.shape[1])
    if w is not None and w.shape != (o, D):
        raise ValueError(f"adaptive_conv2d expects w of shape (O, D) = ({o}, {D}), got {w.shape}")
    if b is not None and b.shape != (o,):
        raise ValueError(f"adaptive_conv2d expects b of shape (O,) = ({o},), got {b.shape}")
    return m


# ----------------------------------------------------------------------------- literal
def adaptive_conv2d_loops(x: np.ndarray, Q: np.ndarray, w: np.ndarray | None = None,
                          b: np.ndarray | None = None, stride: int = 1, padding: int = 0,
                          return_kernels: bool = False):
    """The literal adaptive convolution, one output number at a time (forward only).

    x: (N, C, H, W), Q: (O, D, D), w: (O, D), b: (O,)
    returns sigma: (N, O, Ho, Wo), and if return_kernels also the kernels (N, O, Ho, Wo, C, m, m).
    """
    check_stride_padding(stride, padding)
    _check_adaptive_args(as_tensor(x), as_tensor(Q), None if w is None else as_tensor(w),
                         None if b is None else as_tensor(b))
    n, c, h, wd = x.shape
    O, D, _ = Q.shape
    m = kernel_size_from(D, c)
    ho, wo = conv_output_size(h, m, stride, padding), conv_output_size(wd, m, stride, padding)
    xp = pad2d(x, padding)
    dtype = np.result_type(x, Q)
    sigma = np.zeros((n, O, ho, wo), dtype=dtype)
    kernels = np.zeros((n, O, ho, wo, c, m, m), dtype=dtype)

    for img in range(n):
        for o in range(O):
            for i in range(ho):
                for j in range(wo):
                    # the patch under output pixel (i, j), flattened in (c, u, v) order: p (D,)
                    p = xp[img, :, i * stride : i * stride + m, j * stride : j * stride + m].reshape(D)
                    # k_o(l)[e] = Q_o[e, :] . p + w_o[e]: each kernel element is its own linear filter
                    k = np.zeros(D, dtype=dtype)
                    for e in range(D):
                        k[e] = np.dot(Q[o, e, :], p) + (0.0 if w is None else w[o, e])
                    # sigma_o(l) = k_o(l) . p + b_o: the dynamic kernel applied to the same patch
                    sigma[img, o, i, j] = np.dot(k, p) + (0.0 if b is None else b[o])
                    kernels[img, o, i, j] = k.reshape(c, m, m)
    return (sigma, kernels) if return_kernels else sigma


# ----------------------------------------------------------------------------- parallel
def adaptive_conv2d(x, Q, w=None, b=None, stride: int = 1, padding: int = 0) -> Tensor:
    """The adaptive convolution via im2col: sigma = p^T Q_o p + w_o . p + b_o at every location.

    x: (N, C, H, W), Q: (O, D, D) with D = C*m*m, w: (O, D) or None, b: (O,) or None
    -> sigma: (N, O, Ho, Wo). Tensors or arrays; gradients flow to x, Q, w and b.
    """
    x, Q = as_tensor(x), as_tensor(Q)
    w = None if w is None else as_tensor(w)
    b = None if b is None else as_tensor(b)
    check_stride_padding(stride, padding)
    m = _check_adaptive_args(x, Q, w, b)
    n, c, h, wd = x.shape
    O, D, _ = Q.shape
    ho, wo = conv_output_size(h, m, stride, padding), conv_output_size(wd, m, stride, padding)

    P = im2col(x.data, m, stride, padding)                    # (R, D), R = N*Ho*Wo
    R = P.shape[0]
    Z = (P @ Q.data.reshape(O * D, D).T).reshape(R, O, D)     # Z[r, o] = Q_o p_r        (R, O, D)
    S = np.einsum("rod,rd->ro", Z, P)                         # p_r^T Q_o p_r            (R, O)
    if w is not None:
        S += P @ w.data.T                                     # + w_o . p_r              (R, O)
    if b is not None:
        S += b.data                                           # + b_o
    sigma = S.reshape(n, ho, wo, O).transpose(0, 3, 1, 2)     # (N, O, Ho, Wo)

    parents = tuple(t for t in (x, Q, w, b) if t is not None)
    out = Tensor.from_op(np.ascontiguousarray(sigma), parents, "adaptive_conv2d")

    def _backward():
        G = out.grad.transpose(0, 2, 3, 1).reshape(R, O)      # dL/dsigma               (R, O)
        GP = (G[:, :, None] * P[:, None, :]).reshape(R, O * D)  # GP[r,(o,d)] = G[r,o] P[r,d]
        if Q.requires_grad:
            Q.accumulate_grad((GP.T @ P).reshape(O, D, D))    # dQ_o = sum_r G[r,o] p_r p_r^T
        if w is not None and w.requires_grad:
            w.accumulate_grad(G.T @ P)                        # dw = G^T P               (O, D)
        if b is not None and b.requires_grad:
            b.accumulate_grad(G.sum(axis=0))                  # db = sum_r G             (O,)
        if x.requires_grad:
            Ss = (Q.data + Q.data.transpose(0, 2, 1)).reshape(O * D, D)  # stacked Q_o + Q_o^T
            dP = GP @ Ss                                      # sum_o G[r,o] (Q_o + Q_o^T) p_r
            if w is not None:
                dP += G @ w.data                              # + sum_o G[r,o] w_o       (R, D)
            x.accumulate_grad(col2im(dP, x.shape, m, stride, padding))

    out._backward = _backward
    return out


def adaptive_kernels(x, Q, w=None, stride: int = 1, padding: int = 0) -> np.ndarray:
    """The dynamic kernel k_o(l) = Q_o p_l + w_o that each output location applies.

    x: (N, C, H, W), Q: (O, D, D), w: (O, D) or None -> kernels: (N, O, Ho, Wo, C, m, m).
    A plain array (no gradient): this is what the visualisations draw.
    """
    x, Q = as_tensor(x), as_tensor(Q)
    w = None if w is None else as_tensor(w)
    check_stride_padding(stride, padding)
    m = _check_adaptive_args(x, Q, w, None)
    n, c, h, wd = x.shape
    O, D, _ = Q.shape
    ho, wo = conv_output_size(h, m, stride, padding), conv_output_size(wd, m, stride, padding)

    P = im2col(x.data, m, stride, padding)                    # (R, D)
    K = (P @ Q.data.reshape(O * D, D).T).reshape(-1, O, D)    # Q_o p_r                  (R, O, D)
    if w is not None:
        K = K + w.data                                        # + w_o
    return K.reshape(n, ho, wo, O, c, m, m).transpose(0, 3, 1, 2, 4, 5, 6)
