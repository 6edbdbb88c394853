"""The ordinary layers: Linear, Conv2d, MaxPool2d, activations, Flatten, Sequential.

Each layer only holds Parameters and calls `ack_numpy.functional`; the maths and the
backward passes live there. Initialisation follows PyTorch's default for these layers
(uniform in +-1/sqrt(fan_in)), so that results are comparable with what readers know.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from ..functional.sizes import check_size
from .module import Module, Parameter, check_rung


def check_conv_sizes(layer: str, in_channels, out_channels, kernel_size, stride, padding) -> None:
    """The sizes of a convolution layer must be integers: channels, kernel and stride >= 1,
    0 <= padding < kernel_size (see `conv_output_size`). The message names the layer and
    the argument."""
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("kernel_size", kernel_size), ("stride", stride)):
        check_size(f"{layer}: {name}", value)
    check_size(f"{layer}: padding", padding, minimum=0)
    if padding >= kernel_size:
        raise ValueError(f"{layer}: padding {padding} must be smaller than kernel_size {kernel_size}")


def uniform_init(rng: np.random.Generator, shape: tuple, fan_in: int, dtype=np.float32) -> np.ndarray:
    """U(-1/sqrt(fan_in), +1/sqrt(fan_in)): keeps each output's variance near the input's."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Linear(Module):
    """y = x W^T + b.  x: (N, in_features) -> (N, out_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        check_size("Linear: in_features", in_features)
        check_size("Linear: out_features", out_features)
        rng = rng if rng is not None else np.random.default_rng()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(uniform_init(rng, (out_features, in_features), in_features, dtype))
        self.bias = Parameter(uniform_init(rng, (out_features,), in_features, dtype)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) expects input of shape "
                             f"(N, {self.in_features}), got {x.shape}")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}"


class Conv2d(Module):
    """Ordinary convolution.  x: (N, C, H, W) -> (N, O, Ho, Wo); weight (O, C, m, m), bias (O,).

    rung: "fast" (default), "reference" or "loops", the version of conv2d that forward calls
    (`ack_numpy.functional.conv`); "loops" lets a debugger step into the literal loops."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True, rng: np.random.Generator | None = None,
                 dtype=np.float32, rung: str = "fast"):
        check_conv_sizes("Conv2d", in_channels, out_channels, kernel_size, stride, padding)
        check_rung("Conv2d", rung)
        self.rung = rung  # which version of conv2d forward calls; `Module.use_rung` sets it model-wide
        rng = rng if rng is not None else np.random.default_rng()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        fan_in = in_channels * kernel_size * kernel_size
        self.weight = Parameter(uniform_init(rng, (out_channels, in_channels, kernel_size, kernel_size), fan_in, dtype))
        self.bias = Parameter(uniform_init(rng, (out_channels,), fan_in, dtype)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        args = (x, self.weight, self.bias, self.stride, self.padding)
        if self.rung == "loops":
            return F.conv2d_loops_with_grad(*args)
        if self.rung == "reference":
            return F.conv2d_reference(*args)
        check_rung("Conv2d", self.rung)  # an attribute set by hand to a wrong name
        return F.conv2d(*args)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}"
                + ("" if self.rung == "fast" else f", rung={self.rung!r}"))


class MaxPool2d(Module):
    """y = the maximum of each k x k window.  x: (N, C, H, W) -> (N, C, Ho, Wo); stride defaults to k."""

    def __init__(self, kernel_size: int = 2, stride: int | None = None):
        check_size("MaxPool2d: kernel_size", kernel_size)
        if stride is not None:
            check_size("MaxPool2d: stride", stride)
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)


class Sequential(Module):
    """Apply layers in order. Parameters are named by position: '0.weight', '3.Q'."""

    def __init__(self, *layers: Module):
        self.layers = list(layers)

    def named_parameters(self, prefix: str = ""):
        for i, layer in enumerate(self.layers):
            yield from layer.named_parameters(f"{prefix}{i}.")

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)
