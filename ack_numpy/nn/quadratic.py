"""The quadratic controls as layers: cheaper quadratic forms than the adaptive kernel's full Q.

    DiagonalAdaptiveConv2d   y = tanh(sum_d q_o[d] p[d]^2 + w_o . p + b_o)       Q_o = diag(q_o)
    LowRankAdaptiveConv2d    y = tanh(sum_k (U_o[k] . p)(V_o[k] . p) + w_o . p + b_o)   Q_o = U_o^T V_o
    QuadraticActivation      y = s + a_c s^2 after an ordinary convolution      (then tanh in the model)

(see `ack_numpy.functional.quadratic` for the equations, the loops and the backward). The two
convolutions call only their fast ops (`rungs()` says so, and `use_rung("loops")` is
refused); to step through their loops, call the *_loops functions there.
They keep AdaptiveConv2d's tanh and its initialisation scale (the quadratic term starts
small and random around an ordinary, well-initialised convolution), so that a model built
with one differs from adaptive-lenet only in the form of Q.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from .layers import check_conv_sizes, check_size, uniform_init
from .module import Module, Parameter

Q_SCALE = 0.1  # AdaptiveConv2d's: entries of Q start within +-Q_SCALE / D


class DiagonalAdaptiveConv2d(Module):
    """Parameters q (O, D), w (O, D), b (O,); D = C*m*m. x: (N, C, H, W) -> tanh(sigma): (N, O, Ho, Wo).
    Cost: O * (2D + 1) parameters, D for the quadratic term."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        check_conv_sizes("DiagonalAdaptiveConv2d", in_channels, out_channels, kernel_size, 1, 0)
        rng = rng if rng is not None else np.random.default_rng()
        D = in_channels * kernel_size * kernel_size
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.q = Parameter(rng.uniform(-Q_SCALE / D, Q_SCALE / D, size=(out_channels, D)).astype(dtype))
        self.w = Parameter(uniform_init(rng, (out_channels, D), D, dtype))
        self.b = Parameter(np.zeros(out_channels, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.diagonal_adaptive_conv2d(x, self.q, self.w, self.b).tanh()

    def rungs(self) -> tuple[str, ...]:
        return ("fast",)  # the loop twin is a function of functional/quadratic.py (module doc)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"


class LowRankAdaptiveConv2d(Module):
    """Parameters U, V (O, r, D), w (O, D), b (O,); D = C*m*m. x: (N, C, H, W) -> tanh(sigma).
    Cost: O * (2rD + D + 1) parameters.

    Initialisation: U and V uniform with a bound chosen so that the entries of U^T V have
    the standard deviation of a full Q's at q_scale 0.1 (Q_SCALE / (D sqrt 3)), whatever r."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, rank: int,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        check_conv_sizes("LowRankAdaptiveConv2d", in_channels, out_channels, kernel_size, 1, 0)
        check_size("LowRankAdaptiveConv2d: rank", rank)
        rng = rng if rng is not None else np.random.default_rng()
        D = in_channels * kernel_size * kernel_size
        self.in_channels, self.out_channels, self.kernel_size, self.rank = in_channels, out_channels, kernel_size, rank
        # sd(U^T V entry) = sqrt(r) sd_u sd_v = Q_SCALE / (D sqrt 3) with sd_u = sd_v = bound / sqrt 3
        bound = np.sqrt(3 * Q_SCALE / (D * np.sqrt(3) * np.sqrt(rank)))
        self.U = Parameter(rng.uniform(-bound, bound, size=(out_channels, rank, D)).astype(dtype))
        self.V = Parameter(rng.uniform(-bound, bound, size=(out_channels, rank, D)).astype(dtype))
        self.w = Parameter(uniform_init(rng, (out_channels, D), D, dtype))
        self.b = Parameter(np.zeros(out_channels, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.lowrank_adaptive_conv2d(x, self.U, self.V, self.w, self.b).tanh()

    def rungs(self) -> tuple[str, ...]:
        return ("fast",)  # the loop twin is a function of functional/quadratic.py (module doc)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, rank={self.rank}"


class QuadraticActivation(Module):
    """y = s + a_c s^2 with one learnable a_c per channel, starting at 0 (the identity):
    s: (N, C, H, W) -> (N, C, H, W). After a convolution it makes the layer a quadratic
    form tied to the convolution's own filter, Q_o = a_o w_o w_o^T."""

    def __init__(self, channels: int, dtype=np.float32):
        check_size("QuadraticActivation: channels", channels)
        self.a = Parameter(np.zeros(channels, dtype=dtype))

    def forward(self, s: Tensor) -> Tensor:
        return F.quadratic_activation(s, self.a)  # element-wise, like tanh: nothing to choose

    def extra_repr(self) -> str:
        return f"{self.a.shape[0]}"
