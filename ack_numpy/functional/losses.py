"""log-softmax and cross-entropy, each with its own numerically stable backward.

    log_softmax(z)_k = z_k - log sum_j exp(z_j)
    cross_entropy(z, t) = mean_n [ -log_softmax(z_n)_{t_n} ]

Gradients (for one row z, with s = softmax(z) and upstream gradient g):
    d log_softmax:  dz = g - s * sum_k g_k
    d cross_entropy: dz = (s - onehot(t)) / N
"""
from __future__ import annotations

import numpy as np

from ..autograd import Tensor, TensorLike, as_tensor


def _log_softmax_array(z: np.ndarray, axis: int) -> np.ndarray:
    # Subtract the max first: exp of a large logit would overflow, the result is unchanged.
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def log_softmax(z: TensorLike, axis: int = -1) -> Tensor:
    """z: any shape; normalised along `axis`."""
    z = as_tensor(z)
    y = _log_softmax_array(z.data, axis)
    out = Tensor.from_op(y, (z,), "log_softmax")

    def _log_softmax_backward(out):  # dz = g - softmax * sum(g)
        g = out.grad
        z.accumulate_grad(g - np.exp(y) * g.sum(axis=axis, keepdims=True))

    out._backward = _log_softmax_backward
    return out


def cross_entropy(logits: TensorLike, targets: np.ndarray) -> Tensor:
    """Mean negative log-likelihood of the correct classes.

    logits: (N, K) unnormalised scores; targets: (N,) integer class indices in [0, K)."""
    logits = as_tensor(logits)
    t = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy expects logits of shape (N, K), got {logits.shape}")
    if t.shape != (logits.shape[0],) or t.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy expects integer targets of shape ({logits.shape[0]},), "
                         f"got {t.dtype} of shape {t.shape}")
    n, k = logits.shape
    if n == 0:
        raise ValueError("cross_entropy: no examples (logits of shape (0, K)); the mean loss of none is undefined")
    if t.size and (t.min() < 0 or t.max() >= k):
        raise ValueError(f"cross_entropy: targets must be in [0, {k}), got range [{t.min()}, {t.max()}]")

    logp = _log_softmax_array(logits.data, axis=1)           # (N, K)
    loss = -logp[np.arange(n), t].mean()
    out = Tensor.from_op(np.asarray(loss, dtype=logits.dtype), (logits,), "cross_entropy")

    def _cross_entropy_backward(out):  # dz = (softmax - onehot) / N, times the upstream scalar
        dz = np.exp(logp)
        dz[np.arange(n), t] -= 1.0
        logits.accumulate_grad(dz * (out.grad / n))

    out._backward = _cross_entropy_backward
    return out
