"""The one rule for a size argument (kernel_size, stride, padding, a layer's width) and for
a batch of images, x of shape (N, C, H, W).

Every op (im2col, conv2d, adaptive_conv2d, max_pool2d) and every layer (Conv2d, Linear,
MaxPool2d, ...) checks its sizes here, so the same mistake gets the same message
everywhere, naming the argument (and the op or layer).
"""
from __future__ import annotations

import numpy as np


def is_whole(value: object, minimum: int = 0) -> bool:
    """True for a true integer >= minimum: 2.0 or "2" would fail later, inside a slice or a
    range, with a message that no longer names the setting (True and False are not counts
    either). The one rule for sizes, counts and settings such as epochs and seeds."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum


def check_size(name: str, value: object, minimum: int = 1) -> None:
    """Raise a ValueError naming `name` unless `value` is an integer >= minimum (is_whole)."""
    if not is_whole(value, minimum):
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        raise ValueError(f"{name} must be {kind}, got {value!r}")


def check_stride_padding(stride: int, padding: int) -> None:
    check_size("stride", stride)
    check_size("padding", padding, minimum=0)


def check_images(op: str, shape: tuple) -> None:
    """Raise a ValueError naming `op` unless `shape` is (N, C, H, W) with C >= 1."""
    if len(shape) != 4:
        raise ValueError(f"{op} expects x of shape (N, C, H, W), got shape {tuple(shape)}")
    if shape[1] == 0:
        raise ValueError(f"{op}: x has 0 channels (shape {tuple(shape)}); it needs C >= 1")
