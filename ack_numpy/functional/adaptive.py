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

Three implementations live here, side by side, from the most literal to the fastest:

* `adaptive_conv2d_loops`: the literal one. It loops over images, output channels and
  output pixels, builds the kernel element by element and applies it. Step through it
  in a debugger to see the equations above happen one number at a time
  (`python tutorials/one_pixel.py` stops it at one pixel).
  (`adaptive_kernels_loops` returns the kernels it builds; `adaptive_conv2d_backward_loops`
  is its backward, the chain rule applied one number at a time.)
* `adaptive_conv2d_reference`: the parallel form, with its hand-written backward, exactly
  as the equations read. With P = im2col(x) (R, D), where R = N*Ho*Wo, and Q stacked
  into Qs (O*D, D):

      Z     = P Qs^T                  (R, O*D)  every dynamic kernel at once, minus w
      sigma = rowsum_d(Z * P) + P w^T + b       (R, O)

  Backward, for G = dL/dsigma (R, O) and GP[r, (o, d)] = G[r, o] * P[r, d]  (R, O*D):

      dQ_o = sum_r G[r, o] p_r p_r^T     ->  dQ = GP^T P              (O*D, D)
      dp_r = sum_o G[r, o] ((Q_o + Q_o^T) p_r + w_o)
                                         ->  dP = GP Ss + G w         (R, D), Ss = stacked Q_o + Q_o^T
      dw   = G^T P   (O, D),   db = sum_r G  (O,),   dx = col2im(dP)

  The same GP matrix feeds both dQ and dP, so the backward is two large matrix products.
* `adaptive_conv2d`: the same formulas arranged for speed. `adaptive_kernels` returns the
  kernels k_o(l) themselves, for the pictures.

`AdaptiveConv2d` calls the one its `rung` names: "fast" (`adaptive_conv2d`, the default),
"reference" or "loops" (`adaptive_conv2d_loops_with_grad`); `model.use_rung(...)` sets it
for every layer. The tests (tests/test_adaptive.py, tests/test_rungs.py) check that the
three agree to 1e-10 in float64: the values of each against the loops, the gradients of
the two im2col versions against each other and those of the literal backward against the
fast one, and the three rungs through a whole model, its outputs and every gradient. The
gradients of each rung are also checked against finite differences.

Performance (`python -m ack_numpy bench` times it): `adaptive_conv2d` computes the
transposes (Z^T = Qs P^T, dP^T = Ss^T GP^T, ...) because im2col stores P^T contiguously
(see im2col.py); and it walks over the R locations in blocks (`location_blocks`), so that
Z and GP, (R, O*D) each, never exist whole: one block of them stays in the CPU cache
between the product that makes it and the one that consumes it. With D = 25, P Qs^T does
only 25 multiply-adds per number it writes, so sending all of Z to main memory and back
would be a large part of the cost.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import Tensor, TensorLike, as_tensor, check_same_dtype
from .im2col import col2im, conv_output_size, im2col, pad2d
from .sizes import check_images, check_stride_padding


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
    check_images("adaptive_conv2d", x.shape)
    if Q.ndim != 3 or Q.shape[1] != Q.shape[2]:
        raise ValueError(f"adaptive_conv2d expects Q of shape (O, D, D), got shape {Q.shape}")
    o, D, _ = Q.shape
    if o == 0 or D == 0:
        raise ValueError(f"adaptive_conv2d: Q of shape {Q.shape} is empty; it needs O >= 1 output "
                         f"channels and D = C*m*m >= 1")
    m = kernel_size_from(D, x.shape[1])
    if w is not None and w.shape != (o, D):
        raise ValueError(f"adaptive_conv2d expects w of shape (O, D) = ({o}, {D}), got {w.shape}")
    if b is not None and b.shape != (o,):
        raise ValueError(f"adaptive_conv2d expects b of shape (O,) = ({o},), got {b.shape}")
    check_same_dtype("adaptive_conv2d", {"x": x, "Q": Q, "w": w, "b": b})
    return m


def _prepare(x, Q, w, b, stride: int, padding: int):
    """Wrap the arguments as Tensors, check them, and return them with m, Ho and Wo."""
    x, Q = as_tensor(x), as_tensor(Q)
    w = None if w is None else as_tensor(w)
    b = None if b is None else as_tensor(b)
    check_stride_padding(stride, padding)
    m = _check_adaptive_args(x, Q, w, b)
    out_h = conv_output_size(x.shape[2], m, stride, padding)
    out_w = conv_output_size(x.shape[3], m, stride, padding)
    return x, Q, w, b, m, out_h, out_w


# ----------------------------------------------------------------------------- literal
def kernel_at(p: np.ndarray, Q_o: np.ndarray, w_o: np.ndarray | None) -> np.ndarray:
    """k_o(l)[e] = Q_o[e, :] . p + w_o[e], element by element: each kernel element is its
    own linear filter on the patch.  p: (D,), Q_o: (D, D), w_o: (D,) or None -> k: (D,)."""
    D = len(p)
    k = np.zeros(D, dtype=np.result_type(p, Q_o))
    for e in range(D):
        k[e] = np.dot(Q_o[e, :], p) + (0.0 if w_o is None else w_o[e])
    return k


def adaptive_conv2d_loops(x: TensorLike, Q: TensorLike, w: TensorLike | None = None, b: TensorLike | None = None,
                          stride: int = 1, padding: int = 0) -> np.ndarray:
    """The literal adaptive convolution, one output number at a time.

    x: (N, C, H, W), Q: (O, D, D) with D = C*m*m, w: (O, D) or None, b: (O,) or None
    -> sigma: (N, O, Ho, Wo). The same arguments and checks as `adaptive_conv2d`; forward
    only, so it returns a plain array. `adaptive_kernels_loops` gives the kernels it builds.
    """
    x, Q, w, b, m, out_h, out_w = _prepare(x, Q, w, b, stride, padding)
    # plain arrays from here on, so that in a debugger `p Q[o]` prints numbers
    x, Q = x.data, Q.data
    w = None if w is None else w.data
    b = None if b is None else b.data
    n, O, D = x.shape[0], Q.shape[0], Q.shape[1]
    xp = pad2d(x, padding)
    sigma = np.zeros((n, O, out_h, out_w), dtype=np.result_type(x, Q))
    for img in range(n):
        for o in range(O):
            for i in range(out_h):
                for j in range(out_w):
                    # the patch under output pixel (i, j), flattened in (c, u, v) order: p (D,)
                    p = xp[img, :, i * stride : i * stride + m, j * stride : j * stride + m].reshape(D)
                    k = kernel_at(p, Q[o], None if w is None else w[o])
                    # sigma_o(l) = k_o(l) . p + b_o: the dynamic kernel applied to the same patch
                    sigma[img, o, i, j] = np.dot(k, p) + (0.0 if b is None else b[o])
    return sigma


def adaptive_conv2d_backward_loops(x: TensorLike, Q: TensorLike, w: TensorLike | None,
                                   b: TensorLike | None, grad_sigma: np.ndarray,
                                   stride: int = 1, padding: int = 0
                                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The literal backward of the adaptive convolution, one number at a time.

    For g = dL/dsigma_o(l) at each output pixel, with p the patch under it and
    sigma = sum_de p[d] Q_o[d, e] p[e] + sum_d w_o[d] p[d] + b_o, the chain rule gives

        dL/dQ_o[d, e] += g p[d] p[e]                       dL/dw_o[d] += g p[d]      dL/db_o += g
        dL/dp[k]       = g ((Q_o p)[k] + (Q_o^T p)[k] + w_o[k])   added to the pixel under p[k]

    x: (N, C, H, W), Q: (O, D, D), w: (O, D) or None, b: (O,) or None,
    grad_sigma: (N, O, Ho, Wo)  ->  dx: (N, C, H, W), dQ: (O, D, D), dw: (O, D) or None, db: (O,) or None.
    The vectorised backward of `adaptive_conv2d` computes the same numbers as matrix products.
    """
    x, Q, w, b, m, out_h, out_w = _prepare(x, Q, w, b, stride, padding)  # checks the arguments
    x, Q = x.data, Q.data  # plain arrays, as in the forward loops
    w = None if w is None else w.data
    b = None if b is None else b.data
    n, c = x.shape[:2]
    O, D, _ = Q.shape
    if np.shape(grad_sigma) != (n, O, out_h, out_w):
        raise ValueError(f"grad_sigma must have the shape of sigma (N, O, Ho, Wo) = {(n, O, out_h, out_w)}, "
                         f"got {np.shape(grad_sigma)}")
    xp = pad2d(x, padding)
    dtype = np.result_type(x, Q, grad_sigma)
    dxp = np.zeros(xp.shape, dtype=dtype)             # gradient of the padded image
    dQ = np.zeros((O, D, D), dtype=dtype)
    dw = None if w is None else np.zeros((O, D), dtype=dtype)
    db = None if b is None else np.zeros(O, dtype=dtype)

    for img in range(n):
        for o in range(O):
            for i in range(out_h):
                for j in range(out_w):
                    g = grad_sigma[img, o, i, j]       # dL/dsigma_o(l) at this output pixel
                    # the same patch the forward used, (c, u, v) order: p (D,)
                    p = xp[img, :, i * stride : i * stride + m, j * stride : j * stride + m].reshape(D)
                    if db is not None:
                        db[o] += g                     # d sigma / d b_o = 1
                    for d in range(D):
                        if dw is not None:
                            dw[o, d] += g * p[d]       # d sigma / d w_o[d] = p[d]
                        for e in range(D):
                            dQ[o, d, e] += g * p[d] * p[e]  # d sigma / d Q_o[d, e] = p[d] p[e]
                    for k in range(D):
                        # d sigma / d p[k] = sum_e Q_o[k, e] p[e] + sum_d p[d] Q_o[d, k] + w_o[k]:
                        # p[k] appears on both sides of p^T Q_o p, and once in w_o . p
                        dsigma_dpk = np.dot(Q[o, k, :], p) + np.dot(Q[o, :, k], p) + (0.0 if w is None else w[o, k])
                        # p[k] is a copy of one pixel; every patch that copied it adds its share (col2im)
                        ch, u, v = np.unravel_index(k, (c, m, m))
                        dxp[img, ch, i * stride + u, j * stride + v] += g * dsigma_dpk
    # the padding zeros are not inputs: drop their gradient
    dx = dxp[:, :, padding : padding + x.shape[2], padding : padding + x.shape[3]]
    return dx, dQ, dw, db


def adaptive_conv2d_loops_with_grad(x: TensorLike, Q: TensorLike, w: TensorLike | None = None,
                                   b: TensorLike | None = None, stride: int = 1, padding: int = 0) -> Tensor:
    """The literal rung as a graph op: forward `adaptive_conv2d_loops`, backward
    `adaptive_conv2d_backward_loops`, both one number at a time.

    x: (N, C, H, W), Q: (O, D, D), w: (O, D) or None, b: (O,) or None -> sigma: (N, O, Ho, Wo),
    a Tensor; gradients flow to x, Q, w and b. `AdaptiveConv2d(..., rung="loops")` calls this,
    so that a debugger can step from `model(x)` into the loops, and back through them.
    """
    x, Q = as_tensor(x), as_tensor(Q)
    w = None if w is None else as_tensor(w)
    b = None if b is None else as_tensor(b)
    sigma = adaptive_conv2d_loops(x, Q, w, b, stride, padding)   # checks the arguments
    parents = tuple(t for t in (x, Q, w, b) if t is not None)
    out = Tensor.from_op(sigma, parents, "adaptive_conv2d_loops")

    def _adaptive_conv2d_loops_backward(out):
        grads = adaptive_conv2d_backward_loops(x, Q, w, b, out.grad, stride, padding)
        for t, grad in zip((x, Q, w, b), grads):
            if t is not None and t.requires_grad:
                t.accumulate_grad(grad)

    out._backward = _adaptive_conv2d_loops_backward
    return out


# ----------------------------------------------------------------------------- im2col, plain
def adaptive_conv2d_reference(x: TensorLike, Q: TensorLike, w: TensorLike | None = None,
                              b: TensorLike | None = None, stride: int = 1, padding: int = 0) -> Tensor:
    """The parallel form exactly as the equations read: every location at once with im2col.

    x: (N, C, H, W), Q: (O, D, D) with D = C*m*m, w: (O, D) or None, b: (O,) or None
    -> sigma: (N, O, Ho, Wo). `adaptive_conv2d` below computes the same numbers faster;
    the tests check that the two agree, values and gradients.
    """
    x, Q, w, b, m, out_h, out_w = _prepare(x, Q, w, b, stride, padding)
    n, O, D = x.shape[0], Q.shape[0], Q.shape[1]

    P = np.ascontiguousarray(im2col(x.data, m, stride, padding))  # (R, D), R = N*Ho*Wo
    R = P.shape[0]
    Qs = Q.data.reshape(O * D, D)                             # Q_1..Q_O stacked          (O*D, D)
    Z = (P @ Qs.T).reshape(R, O, D)                           # Z[r, o] = Q_o p_r         (R, O, D)
    sigma_rows = (Z * P[:, None, :]).sum(axis=2)              # rowsum: p_r^T Q_o p_r     (R, O)
    if w is not None:
        sigma_rows += P @ w.data.T                            # + w_o . p_r               (R, O)
    if b is not None:
        sigma_rows += b.data                                  # + b_o
    sigma = sigma_rows.reshape(n, out_h, out_w, O).transpose(0, 3, 1, 2)  # (N, O, Ho, Wo)

    parents = tuple(t for t in (x, Q, w, b) if t is not None)
    out = Tensor.from_op(np.ascontiguousarray(sigma), parents, "adaptive_conv2d_reference")

    def _adaptive_conv2d_reference_backward(out):
        G = out.grad.transpose(0, 2, 3, 1).reshape(R, O)      # dL/dsigma                 (R, O)
        GP = (G[:, :, None] * P[:, None, :]).reshape(R, O * D)  # GP[r, (o,d)] = G[r,o] P[r,d]
        if Q.requires_grad:
            Q.accumulate_grad((GP.T @ P).reshape(O, D, D))    # dQ_o = sum_r G[r,o] p_r p_r^T
        if w is not None and w.requires_grad:
            w.accumulate_grad(G.T @ P)                        # dw = G^T P                (O, D)
        if b is not None and b.requires_grad:
            b.accumulate_grad(G.sum(axis=0))                  # db = sum_r G              (O,)
        if x.requires_grad:
            Ss = (Q.data + Q.data.transpose(0, 2, 1)).reshape(O * D, D)  # S_o = Q_o + Q_o^T stacked
            dP = GP @ Ss                                      # dp_r = sum_o G[r,o] S_o p_r  (R, D)
            if w is not None:
                dP += G @ w.data                              #      + sum_o G[r,o] w_o
            x.accumulate_grad(col2im(dP, x.shape, m, stride, padding))

    out._backward = _adaptive_conv2d_reference_backward
    return out


# ----------------------------------------------------------------------------- im2col, fast

# About this many bytes of Z^T or GP^T per block of locations: small enough to stay in
# the (L3) cache of a desktop or server CPU, large enough that each matrix product in
# the loop is big (hundreds of locations or more, which multithreaded BLAS needs) and
# the Python loop runs only a few times per layer. (The tests shrink it to check that
# blocking does not change results.)
BLOCK_BYTES = 4 * 1024 * 1024


def location_blocks(R: int, width: int, itemsize: int) -> list[slice]:
    """Split locations 0..R-1 into slices of about BLOCK_BYTES / (width * itemsize) each
    (width = O*D numbers per location in Z^T and GP^T)."""
    size = max(1, BLOCK_BYTES // (width * itemsize))
    return [slice(start, min(start + size, R)) for start in range(0, R, size)]


def block_view(buffer: np.ndarray, rows: int, cols: slice) -> np.ndarray:
    """A contiguous (rows, len(cols)) array at the front of the flat `buffer`.

    One buffer serves every block: a fresh array per block would, for blocks of
    megabytes, often make the memory allocator map new pages from the OS, and the first
    touch of each page (a page fault) can cost as much as the arithmetic on it."""
    return buffer[: rows * (cols.stop - cols.start)].reshape(rows, -1)


def adaptive_conv2d(x: TensorLike, Q: TensorLike, w: TensorLike | None = None, b: TensorLike | None = None,
                    stride: int = 1, padding: int = 0) -> Tensor:
    """The adaptive convolution via im2col: sigma = p^T Q_o p + w_o . p + b_o at every location.

    x: (N, C, H, W), Q: (O, D, D) with D = C*m*m, w: (O, D) or None, b: (O,) or None
    -> sigma: (N, O, Ho, Wo). Tensors or arrays; gradients flow to x, Q, w and b.
    """
    x, Q, w, b, m, out_h, out_w = _prepare(x, Q, w, b, stride, padding)
    n, O, D = x.shape[0], Q.shape[0], Q.shape[1]

    # Locations in (n, i, j) order, not conv2d's (i, j, n): the time here is in the products,
    # and (n, i, j) keeps the transposes of sigma and G cheap.
    PT = im2col(x.data, m, stride, padding).T                 # P^T: (D, R), R = N*Ho*Wo
    R = PT.shape[1]
    Qs = Q.data.reshape(O * D, D)                             # Q_1..Q_O stacked          (O*D, D)
    sigmaT = np.empty((O, R), dtype=np.result_type(PT, Qs))   # sigma^T                    (O, R)
    blocks = location_blocks(R, O * D, sigmaT.itemsize)
    buffer = np.empty(O * D * (blocks[0].stop if blocks else 0), dtype=sigmaT.dtype)  # room for one block of Z^T
    for cols in blocks:
        Pc = PT[:, cols]                                      # this block's patches       (D, r)
        ZT = np.matmul(Qs, Pc, out=block_view(buffer, O * D, cols))  # Z^T[(o,:), r] = Q_o p_r  (O*D, r)
        # rowsum over d of Z^T * P^T, for each o and r: p_r^T Q_o p_r                 (O, r)
        np.einsum("odr,dr->or", ZT.reshape(O, D, -1), Pc, out=sigmaT[:, cols])
    if w is not None:
        sigmaT += w.data @ PT                                 # + w_o . p_r                (O, R)
    if b is not None:
        sigmaT += b.data[:, None]                             # + b_o
    sigma = sigmaT.reshape(O, n, out_h, out_w).transpose(1, 0, 2, 3)  # (N, O, Ho, Wo)

    parents = tuple(t for t in (x, Q, w, b) if t is not None)
    out = Tensor.from_op(np.ascontiguousarray(sigma), parents, "adaptive_conv2d")

    def _adaptive_conv2d_backward(out):
        GT = out.grad.transpose(1, 0, 2, 3).reshape(O, R)     # G^T, G = dL/dsigma        (O, R)
        if Q.requires_grad or x.requires_grad:
            dQ = np.zeros((O * D, D), dtype=GT.dtype) if Q.requires_grad else None  # dQ_o stacked (O*D, D)
            dPT = np.empty((D, R), dtype=GT.dtype) if x.requires_grad else None     # dP^T         (D, R)
            # Ss^T = [S_1 ... S_O] with S_o = Q_o + Q_o^T (symmetric, so S_o^T = S_o)  (D, O*D)
            SsT = (Q.data + Q.data.transpose(0, 2, 1)).reshape(O * D, D).T
            buffer = np.empty(O * D * (blocks[0].stop if blocks else 0), dtype=np.result_type(GT, PT))
            for cols in blocks:
                Pc = PT[:, cols]                                          # (D, r)
                GPT = block_view(buffer, O * D, cols)                     # GP^T[(o,d), r] = G[r,o] P[r,d]
                np.multiply(GT[:, None, cols], Pc, out=GPT.reshape(O, D, -1))
                if Q.requires_grad:
                    dQ += GPT @ Pc.T                                      # dQ_o += sum_r G[r,o] p_r p_r^T
                if x.requires_grad:
                    np.matmul(SsT, GPT, out=dPT[:, cols])                 # dp_r = sum_o G[r,o] S_o p_r
            if Q.requires_grad:
                Q.accumulate_grad(dQ.reshape(O, D, D))
            if x.requires_grad:
                if w is not None:
                    dPT += w.data.T @ GT                                  # + sum_o G[r,o] w_o   (D, R)
                x.accumulate_grad(col2im(dPT.T, x.shape, m, stride, padding))
        if w is not None and w.requires_grad:
            w.accumulate_grad(GT @ PT.T)                                  # dw = G^T P           (O, D)
        if b is not None and b.requires_grad:
            b.accumulate_grad(GT.sum(axis=1))                             # db = sum_r G         (O,)

    out._backward = _adaptive_conv2d_backward
    return out


def adaptive_kernels(x: TensorLike, Q: TensorLike, w: TensorLike | None = None,
                     stride: int = 1, padding: int = 0) -> np.ndarray:
    """The dynamic kernel k_o(l) = Q_o p_l + w_o that each output location applies.

    x: (N, C, H, W), Q: (O, D, D), w: (O, D) or None -> kernels: (N, O, Ho, Wo, C, m, m).
    A plain array (no gradient): this is what the visualisations draw.
    """
    x, Q, w, _, m, out_h, out_w = _prepare(x, Q, w, None, stride, padding)
    n, c, O, D = x.shape[0], x.shape[1], Q.shape[0], Q.shape[1]

    P = im2col(x.data, m, stride, padding)                    # (R, D)
    K = (P @ Q.data.reshape(O * D, D).T).reshape(-1, O, D)    # Q_o p_r                  (R, O, D)
    if w is not None:
        K = K + w.data                                        # + w_o
    return K.reshape(n, out_h, out_w, O, c, m, m).transpose(0, 3, 1, 2, 4, 5, 6)


def adaptive_kernels_loops(x: TensorLike, Q: TensorLike, w: TensorLike | None = None,
                           stride: int = 1, padding: int = 0) -> np.ndarray:
    """The same as `adaptive_kernels`, one location at a time: k_o(l) = Q_o p_l + w_o.

    x: (N, C, H, W), Q: (O, D, D), w: (O, D) or None -> kernels: (N, O, Ho, Wo, C, m, m).
    """
    x, Q, w, _, m, out_h, out_w = _prepare(x, Q, w, None, stride, padding)
    n, c, O, D = x.shape[0], x.shape[1], Q.shape[0], Q.shape[1]
    xp = pad2d(x.data, padding)
    kernels = np.zeros((n, O, out_h, out_w, c, m, m), dtype=np.result_type(x.data, Q.data))
    for img in range(n):
        for o in range(O):
            for i in range(out_h):
                for j in range(out_w):
                    p = xp[img, :, i * stride : i * stride + m, j * stride : j * stride + m].reshape(D)
                    kernels[img, o, i, j] = kernel_at(p, Q.data[o], None if w is None else w.data[o]).reshape(c, m, m)
    return kernels
