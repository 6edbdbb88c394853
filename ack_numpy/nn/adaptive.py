"""AdaptiveConv2d: the layer that computes its kernel from each patch.

    sigma_o(l) = p_l^T Q_o p_l + w_o . p_l + b_o,    y = tanh(sigma)

(see `ack_numpy.functional.adaptive` for the equations, the literal loop version and
the im2col version with its backward).
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from .layers import check_conv_sizes, uniform_init
from .module import Module, Parameter, check_rung

ACTIVATIONS = ("tanh", "none")


class AdaptiveConv2d(Module):
    """Adaptive convolution layer with parameters Q (O, D, D), w (O, D), b (O,); D = C*m*m.

    x: (N, C, H, W) -> y: (N, O, Ho, Wo), y = tanh(sigma) by default (the paper's choice:
    the quadratic form is unbounded, tanh keeps outputs in (-1, 1)).

    Parameter cost: O * (D*D + D + 1). Q is the dear part: (C*m*m)^2 per output channel,
    81 for a 1-channel 3x3 layer but 5,184 for an 8-channel 3x3 one.

    Initialisation (why the quadratic term starts small):
      w ~ U(+-1/sqrt(D)) as for an ordinary convolution, so at step 0 the layer behaves
      like a well-initialised conv layer;
      Q = (M + M^T) / 2 with M ~ U(+-q_scale/D). For a patch p with |p|^2 ~ D (inputs of
      order 1), p^T Q p then has a standard deviation of a few hundredths for the default
      q_scale=0.1, against about 0.6 for w.p. A large random Q would make sigma a random
      quadratic surface that saturates tanh and drowns the gradient; a small random Q
      (not zero) lets every Q filter start learning from a different point. Without a
      static kernel (static_kernel=False) Q is the only path for the signal, so q_scale is 1.

    Why Q starts symmetric: sigma = p^T Q p only sees the symmetric part (Q + Q^T)/2, and
    its gradient p p^T is symmetric, so an antisymmetric part would never change. It would
    still show up in every kernel k = Q p + w that we draw, as random noise left over from
    the initialisation. Starting symmetric keeps Q symmetric for the whole training run
    (SGD and Adam only ever add symmetric updates; in float32, up to rounding, about 1e-7)
    and makes the drawn kernels meaningful. Of the D*D numbers in each Q_o, only
    D*(D+1)/2 are free; `num_parameters()` counts all D*D (the larger, stricter count).

    rung: "fast" (default), "reference" or "loops", the version of adaptive_conv2d that
    forward calls (`ack_numpy.functional.adaptive`); "loops" lets a debugger step from
    `model(x)` into `adaptive_conv2d_loops`. `model.use_rung("loops")` sets every layer's.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, static_kernel: bool = True, activation: str = "tanh",
                 q_scale: float | None = None, rng: np.random.Generator | None = None,
                 dtype=np.float32, rung: str = "fast"):
        check_conv_sizes("AdaptiveConv2d", in_channels, out_channels, kernel_size, stride, padding)
        check_rung("AdaptiveConv2d", rung)
        if activation not in ACTIVATIONS:
            raise ValueError(f"AdaptiveConv2d: activation must be one of {ACTIVATIONS}, got {activation!r}")
        if q_scale is not None and not (isinstance(q_scale, (int, float)) and np.isfinite(q_scale) and q_scale >= 0):
            raise ValueError(f"AdaptiveConv2d: q_scale must be a finite number >= 0, got {q_scale!r}")
        rng = rng if rng is not None else np.random.default_rng()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.static_kernel, self.activation = static_kernel, activation
        self.rung = rung  # which version of adaptive_conv2d forward calls; `Module.use_rung` sets it model-wide
        D = in_channels * kernel_size * kernel_size
        self.q_scale = (0.1 if static_kernel else 1.0) if q_scale is None else q_scale
        M = rng.uniform(-self.q_scale / D, self.q_scale / D, size=(out_channels, D, D))
        self.Q = Parameter(((M + M.transpose(0, 2, 1)) / 2).astype(dtype))
        self.w = Parameter(uniform_init(rng, (out_channels, D), D, dtype)) if static_kernel else None
        self.b = Parameter(np.zeros(out_channels, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        args = (x, self.Q, self.w, self.b, self.stride, self.padding)
        if self.rung == "loops":      # one number at a time: `adaptive_conv2d_loops` and its backward
            sigma = F.adaptive_conv2d_loops_with_grad(*args)
        elif self.rung == "reference":
            sigma = F.adaptive_conv2d_reference(*args)
        else:
            check_rung("AdaptiveConv2d", self.rung)  # an attribute set by hand to a wrong name
            sigma = F.adaptive_conv2d(*args)
        return sigma.tanh() if self.activation == "tanh" else sigma

    def kernels(self, x) -> np.ndarray:
        """The dynamic kernels this layer applies to x: (N, O, Ho, Wo, C, m, m)."""
        return F.adaptive_kernels(x, self.Q, self.w, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, static_kernel={self.static_kernel}"
                + ("" if self.rung == "fast" else f", rung={self.rung!r}"))
