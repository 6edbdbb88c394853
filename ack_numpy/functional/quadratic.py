"""Cheaper quadratic layers: the controls that ask "adaptive, or just quadratic?".

The adaptive convolution (adaptive.py) computes, for output channel o and the patch p
(length D = C*m*m) under output location l,

    sigma_o(l) = p^T Q_o p + w_o . p + b_o          Q_o: (D, D), D*D numbers per channel.

Each op here keeps the linear part w_o . p + b_o and replaces the full Q_o by a cheaper
quadratic term, so that a model built with it spends its parameter budget differently:

    diagonal   Q_o = diag(q_o)        p^T Q_o p = sum_d q_o[d] p[d]^2           D numbers
    low rank   Q_o = U_o^T V_o        p^T Q_o p = sum_k (U_o[k] . p)(V_o[k] . p)   2 r D numbers
               (U_o, V_o: (r, D)); each factor U_o[k] . p is an ordinary convolution, so
               this is the product of two ordinary convolutions, r times, added up.
    quadratic activation, on an ordinary convolution's output s = w_o . p + b_o:
               s + a_o s^2        one number a_o per channel; this is Q_o = a_o w_o w_o^T
               (rank 1, tied to w_o) plus terms in b_o.

The kernel a patch sees is no longer a free function of the patch: with a diagonal Q the
kernel element e depends on p[e] alone; with rank r the kernel Q_o p + w_o varies in at
most r directions.

Two rungs each: `*_loops`, the definition one output number at a time (forward only);
and the im2col form with its hand-written backward, which the layers use. With
P = im2col(x) (R, D), G = dL/dsigma (R, O):

    diagonal   sigma = (P*P) q^T + P w^T + b
               dq = G^T (P*P),   dP = 2 P * (G q) + G w
    low rank   A = P Us^T, B = P Vs^T (R, O*r) with Us, Vs the stacked U_o, V_o (O*r, D)
               sigma[:, o] = sum_k A[:, (o,k)] B[:, (o,k)] + P w^T + b
               GA = G expanded to (R, O*r) times B,  GB = G expanded times A
               dUs = GA^T P,  dVs = GB^T P,  dP = GA Us + GB Vs + G w

The tests check that the rungs agree (values to 1e-10 in float64) and the backward
against central differences (`ack_numpy.gradcheck.grad_check`).

Performance: per location the diagonal form does 2D multiply-adds for its quadratic
term and the low-rank form 2rD, against D*D + D for the full Q (adaptive.py), so neither
needs the blocking that adaptive_conv2d uses.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor, TensorLike, as_tensor, check_same_dtype
from .adaptive import kernel_size_from
from .im2col import col2im, conv_output_size, im2col, pad2d
from .sizes import check_images, check_stride_padding


def _check_linear_part(name: str, x: Tensor, O: int, D: int, w: Tensor | None, b: Tensor | None) -> None:
    if w is not None and w.shape != (O, D):
        raise ValueError(f"{name} expects w of shape (O, D) = ({O}, {D}), got {w.shape}")
    if b is not None and b.shape != (O,):
        raise ValueError(f"{name} expects b of shape (O,) = ({O},), got {b.shape}")


def _prepare(name: str, x, factors: dict, w, b, stride: int, padding: int):
    """Wrap the arguments as Tensors and check them. `factors` are the quadratic term's
    arrays, each with O as its first axis and D = C*m*m as its last.
    Returns x, factors, w, b, O, D, m, Ho, Wo."""
    x = as_tensor(x)
    factors = {k: as_tensor(v) for k, v in factors.items()}
    w = None if w is None else as_tensor(w)
    b = None if b is None else as_tensor(b)
    check_stride_padding(stride, padding)
    check_images(name, x.shape)
    what, first = next(iter(factors.items()))
    if first.ndim < 2 or 0 in first.shape:
        raise ValueError(f"{name}: {what} of shape {first.shape} is empty or has too few axes")
    O, D = first.shape[0], first.shape[-1]
    m = kernel_size_from(D, x.shape[1])
    _check_linear_part(name, x, O, D, w, b)
    check_same_dtype(name, {"x": x, **factors, "w": w, "b": b})
    out_h = conv_output_size(x.shape[2], m, stride, padding)
    out_w = conv_output_size(x.shape[3], m, stride, padding)
    return x, factors, w, b, O, D, m, out_h, out_w


def _linear_part_loops(p: np.ndarray, w_o, b_o) -> float:
    return (0.0 if w_o is None else float(np.dot(w_o, p))) + (0.0 if b_o is None else float(b_o))


def _patches_loops(x: np.ndarray, m: int, stride: int, padding: int, out_h: int, out_w: int):
    """Yield (img, i, j, p) for every output pixel, p the patch in (c, u, v) order (D,)."""
    xp = pad2d(x, padding)
    for img in range(x.shape[0]):
        for i in range(out_h):
            for j in range(out_w):
                yield img, i, j, xp[img, :, i * stride : i * stride + m, j * stride : j * stride + m].reshape(-1)


def _finish(sigma_rows: np.ndarray, P: np.ndarray, w: Tensor | None, b: Tensor | None, n: int, out_h: int,
            out_w: int) -> np.ndarray:
    """Add the linear part to the quadratic term (R, O) and lay it out as (N, O, Ho, Wo)."""
    if w is not None:
        sigma_rows += P @ w.data.T                              # + w_o . p_r             (R, O)
    if b is not None:
        sigma_rows += b.data                                    # + b_o
    return np.ascontiguousarray(sigma_rows.reshape(n, out_h, out_w, -1).transpose(0, 3, 1, 2))


def _linear_backward(G: np.ndarray, P: np.ndarray, w: Tensor | None, b: Tensor | None, dP: np.ndarray) -> None:
    if w is not None and w.requires_grad:
        w.accumulate_grad(G.T @ P)                              # dw = G^T P              (O, D)
    if b is not None and b.requires_grad:
        b.accumulate_grad(G.sum(axis=0))                        # db = sum_r G            (O,)
    if w is not None:
        dP += G @ w.data                                        # dp_r += sum_o G[r,o] w_o


# ----------------------------------------------------------------------------- diagonal Q
def diagonal_adaptive_conv2d_loops(x: TensorLike, q: TensorLike, w: TensorLike | None = None,
                                   b: TensorLike | None = None, stride: int = 1, padding: int = 0) -> np.ndarray:
    """sigma_o(l) = sum_d q_o[d] p[d]^2 + w_o . p + b_o, one output number at a time.

    x: (N, C, H, W), q: (O, D) with D = C*m*m, w: (O, D) or None, b: (O,) or None
    -> sigma: (N, O, Ho, Wo), a plain array (forward only)."""
    x, f, w, b, O, D, m, out_h, out_w = _prepare("diagonal_adaptive_conv2d", x, {"q": q}, w, b, stride, padding)
    q = f["q"].data
    _check_axes("diagonal_adaptive_conv2d", "q", q, 2, "(O, D)")
    sigma = np.zeros((x.shape[0], O, out_h, out_w), dtype=np.result_type(x.data, q))
    for img, i, j, p in _patches_loops(x.data, m, stride, padding, out_h, out_w):
        for o in range(O):
            quadratic = sum(q[o, d] * p[d] * p[d] for d in range(D))   # p^T diag(q_o) p
            sigma[img, o, i, j] = quadratic + _linear_part_loops(p, None if w is None else w.data[o],
                                                                 None if b is None else b.data[o])
    return sigma


def diagonal_adaptive_conv2d(x: TensorLike, q: TensorLike, w: TensorLike | None = None,
                             b: TensorLike | None = None, stride: int = 1, padding: int = 0) -> Tensor:
    """The adaptive convolution with a diagonal Q, via im2col; gradients to x, q, w and b.

    x: (N, C, H, W), q: (O, D) with D = C*m*m, w: (O, D) or None, b: (O,) or None
    -> sigma: (N, O, Ho, Wo)."""
    x, f, w, b, O, D, m, out_h, out_w = _prepare("diagonal_adaptive_conv2d", x, {"q": q}, w, b, stride, padding)
    q = f["q"]
    _check_axes("diagonal_adaptive_conv2d", "q", q.data, 2, "(O, D)")
    n = x.shape[0]
    P = np.ascontiguousarray(im2col(x.data, m, stride, padding))   # (R, D)
    P2 = P * P                                                               # p_r[d]^2   (R, D)
    sigma = _finish(P2 @ q.data.T, P, w, b, n, out_h, out_w)                 # (P*P) q^T  (R, O)
    parents = tuple(t for t in (x, q, w, b) if t is not None)
    out = Tensor.from_op(sigma, parents, "diagonal_adaptive_conv2d")

    def _diagonal_adaptive_conv2d_backward(out):
        G = out.grad.transpose(0, 2, 3, 1).reshape(-1, O)                    # dL/dsigma  (R, O)
        if q.requires_grad:
            q.accumulate_grad(G.T @ P2)                                      # dq = G^T (P*P)
        dP = 2 * P * (G @ q.data)                                            # d(q.p^2)/dp = 2 q p
        _linear_backward(G, P, w, b, dP)
        if x.requires_grad:
            x.accumulate_grad(col2im(dP, x.shape, m, stride, padding))

    out._backward = _diagonal_adaptive_conv2d_backward
    return out


# ----------------------------------------------------------------------------- low-rank Q
def lowrank_adaptive_conv2d_loops(x: TensorLike, U: TensorLike, V: TensorLike, w: TensorLike | None = None,
                                  b: TensorLike | None = None, stride: int = 1, padding: int = 0) -> np.ndarray:
    """sigma_o(l) = sum_k (U_o[k] . p)(V_o[k] . p) + w_o . p + b_o, one output number at a time.

    x: (N, C, H, W), U, V: (O, r, D) with D = C*m*m, w: (O, D) or None, b: (O,) or None
    -> sigma: (N, O, Ho, Wo), a plain array (forward only)."""
    x, f, w, b, O, r, D, m, out_h, out_w = _prepare_lowrank(x, U, V, w, b, stride, padding)
    U, V = f["U"].data, f["V"].data
    sigma = np.zeros((x.shape[0], O, out_h, out_w), dtype=np.result_type(x.data, U))
    for img, i, j, p in _patches_loops(x.data, m, stride, padding, out_h, out_w):
        for o in range(O):
            # two ordinary filters per rank, their responses multiplied: p^T U_o^T V_o p
            quadratic = sum(np.dot(U[o, k], p) * np.dot(V[o, k], p) for k in range(r))
            sigma[img, o, i, j] = quadratic + _linear_part_loops(p, None if w is None else w.data[o],
                                                                 None if b is None else b.data[o])
    return sigma


def lowrank_adaptive_conv2d(x: TensorLike, U: TensorLike, V: TensorLike, w: TensorLike | None = None,
                            b: TensorLike | None = None, stride: int = 1, padding: int = 0) -> Tensor:
    """The adaptive convolution with Q_o = U_o^T V_o of rank r, via im2col; gradients to x, U, V, w, b.

    x: (N, C, H, W), U, V: (O, r, D) with D = C*m*m, w: (O, D) or None, b: (O,) or None
    -> sigma: (N, O, Ho, Wo)."""
    x, f, w, b, O, r, D, m, out_h, out_w = _prepare_lowrank(x, U, V, w, b, stride, padding)
    U, V = f["U"], f["V"]
    n = x.shape[0]
    P = np.ascontiguousarray(im2col(x.data, m, stride, padding))   # (R, D)
    Us, Vs = U.data.reshape(O * r, D), V.data.reshape(O * r, D)     # stacked filters      (O*r, D)
    A, B = P @ Us.T, P @ Vs.T                                       # responses            (R, O*r)
    quadratic = (A * B).reshape(-1, O, r).sum(axis=2)              # sum_k A B            (R, O)
    sigma = _finish(quadratic, P, w, b, n, out_h, out_w)
    parents = tuple(t for t in (x, U, V, w, b) if t is not None)
    out = Tensor.from_op(sigma, parents, "lowrank_adaptive_conv2d")

    def _lowrank_adaptive_conv2d_backward(out):
        G = out.grad.transpose(0, 2, 3, 1).reshape(-1, O)          # dL/dsigma            (R, O)
        Gr = np.repeat(G, r, axis=1)                                # G[r, o] for each (o, k)  (R, O*r)
        GA, GB = Gr * B, Gr * A                                     # dL/dA, dL/dB         (R, O*r)
        if U.requires_grad:
            U.accumulate_grad((GA.T @ P).reshape(O, r, D))          # dUs = GA^T P
        if V.requires_grad:
            V.accumulate_grad((GB.T @ P).reshape(O, r, D))          # dVs = GB^T P
        dP = GA @ Us + GB @ Vs                                      # dp = sum (dA U + dB V)
        _linear_backward(G, P, w, b, dP)
        if x.requires_grad:
            x.accumulate_grad(col2im(dP, x.shape, m, stride, padding))

    out._backward = _lowrank_adaptive_conv2d_backward
    return out


def _prepare_lowrank(x, U, V, w, b, stride, padding):
    name = "lowrank_adaptive_conv2d"
    x, f, w, b, O, D, m, out_h, out_w = _prepare(name, x, {"U": U, "V": V}, w, b, stride, padding)
    _check_axes(name, "U", f["U"].data, 3, "(O, r, D)")
    if f["V"].shape != f["U"].shape:
        raise ValueError(f"{name} expects U and V of one shape (O, r, D), got {f['U'].shape} and {f['V'].shape}")
    return x, f, w, b, O, f["U"].shape[1], D, m, out_h, out_w


def _check_axes(name: str, what: str, array: np.ndarray, ndim: int, text: str) -> None:
    if array.ndim != ndim:
        raise ValueError(f"{name} expects {what} of shape {text}, got shape {array.shape}")


# ----------------------------------------------------------------------------- quadratic activation
def quadratic_activation_loops(s: TensorLike, a: TensorLike) -> np.ndarray:
    """y = s + a_c s^2 for every number of s, one at a time. s: (N, C, H, W), a: (C,) -> (N, C, H, W)."""
    s, a = _prepare_activation(s, a)
    s, a = s.data, a.data
    y = np.zeros_like(s)
    for idx in np.ndindex(*s.shape):
        c = idx[1]
        y[idx] = s[idx] + a[c] * s[idx] * s[idx]
    return y


def quadratic_activation(s: TensorLike, a: TensorLike) -> Tensor:
    """y = s + a_c s^2, channel by channel; gradients to s and a.

    s: (N, C, H, W), a: (C,) -> y: (N, C, H, W). dy/ds = 1 + 2 a_c s, dy/da_c = s^2 (summed)."""
    s, a = _prepare_activation(s, a)
    ac = a.data[None, :, None, None]
    out = Tensor.from_op(s.data + ac * s.data * s.data, (s, a), "quadratic_activation")

    def _quadratic_activation_backward(out):
        g = out.grad
        if s.requires_grad:
            s.accumulate_grad(g * (1 + 2 * ac * s.data))
        if a.requires_grad:
            a.accumulate_grad((g * s.data * s.data).sum(axis=(0, 2, 3)))

    out._backward = _quadratic_activation_backward
    return out


def _prepare_activation(s, a):
    s, a = as_tensor(s), as_tensor(a)
    if s.ndim != 4:
        raise ValueError(f"quadratic_activation expects s of shape (N, C, H, W), got shape {s.shape}")
    if a.shape != (s.shape[1],):
        raise ValueError(f"quadratic_activation expects a of shape (C,) = ({s.shape[1]},), got {a.shape}")
    check_same_dtype("quadratic_activation", {"s": s, "a": a})
    return s, a
