"""The numbers behind the pictures: which kernel each input produces, and where.

Nothing here draws. Every array comes from the model itself: the dynamic kernels from
`ack_numpy.functional.adaptive_kernels` (via `AdaptiveConv2d.kernels`), the feature maps
from calling the layer, the input of a deeper layer from running the layers before it.
For an adaptive layer with parameters Q (O, D, D), w (O, D), D = C*m*m, the kernel at
output location l = (i, j) is

    k_o(l) = Q_o p_l + w_o      (D,) -> reshaped (C, m, m)

where p_l is the patch under l. `figures.py` turns these arrays into PNGs, `explorer.py`
into a window and a GIF.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import functional as F
from ..autograd import Tensor, no_grad
from ..models import adaptive_layers
from ..nn import AdaptiveConv2d, Module


# ----------------------------------------------------------------------------- choosing
def select_adaptive_layer(model: Module, layer: int) -> AdaptiveConv2d:
    """The `layer`-th AdaptiveConv2d of the model (0 = the first in forward order)."""
    layers = adaptive_layers(model)
    name = type(model).__name__
    if not layers:
        raise ValueError(f"this model ({name}) has no adaptive layers, so there are no dynamic "
                         f"kernels to show; use a checkpoint of adaptive-lenet")
    if not 0 <= layer < len(layers):
        raise ValueError(f"layer {layer} does not exist: the model has {len(layers)} adaptive "
                         f"layer(s), numbered 0..{len(layers) - 1}")
    return layers[layer]


def check_channel(module: AdaptiveConv2d, channel: int) -> None:
    if not 0 <= channel < module.out_channels:
        raise ValueError(f"channel {channel} is out of range: this adaptive layer has "
                         f"{module.out_channels} output channels, numbered 0..{module.out_channels - 1}")


def load_adaptive_model(checkpoint) -> Module:
    """The model a checkpoint holds, refused (ValueError naming it) if it has no adaptive
    layer: `explore` and `visualize` show dynamic kernels, which only those have."""
    from ..checkpoint import load_model

    model, meta = load_model(checkpoint)
    if not adaptive_layers(model):
        raise ValueError(f"{checkpoint} holds a {meta['model']} model, which has no adaptive layers and so "
                         f"no dynamic kernels to show; use a checkpoint of adaptive-lenet")
    return model


def check_image_choice(index: int | None, digit: int | None) -> None:
    """--index and --digit choose the image two ways: at most one of them (checked before
    anything is loaded)."""
    if index is not None and digit is not None:
        raise ValueError("give either --index or --digit, not both")


def select_image(labels: np.ndarray, index: int | None = None, digit: int | None = None) -> int:
    """The test-set index to show: `index` itself, or the first image labelled `digit` (default 0)."""
    check_image_choice(index, digit)
    if digit is not None:
        if not 0 <= digit <= 9:
            raise ValueError(f"digit must be 0..9, got {digit}")
        found = np.flatnonzero(labels == digit)
        if len(found) == 0:
            raise ValueError(f"no test image is labelled {digit}")
        return int(found[0])
    index = 0 if index is None else index
    if not 0 <= index < len(labels):
        raise ValueError(f"index {index} is out of range: the test set has {len(labels)} images "
                         f"(0..{len(labels) - 1})")
    return index


def first_of_each_digit(labels: np.ndarray) -> np.ndarray:
    """Indices (10,) of the first image of each digit 0..9."""
    missing = [d for d in range(10) if not np.any(labels == d)]
    if missing:
        raise ValueError(f"the images given contain no example of digit(s) {missing}")
    return np.array([np.flatnonzero(labels == d)[0] for d in range(10)])


# ----------------------------------------------------------------------------- running the model
def layer_input(model: Module, images: np.ndarray, layer: int) -> np.ndarray:
    """What the `layer`-th adaptive layer sees: images (N, 1, H, W) -> (N, C, H', W').

    Runs the layers of `model.features` that come before it, without building a graph."""
    return _input_of(model, select_adaptive_layer(model, layer), layer, images)


def _input_of(model: Module, target: AdaptiveConv2d, layer: int, images: np.ndarray) -> np.ndarray:
    features = getattr(model, "features", None)
    if features is None or not any(module is target for module in features):
        raise ValueError(f"adaptive layer {layer} is not a direct part of model.features, "
                         f"so its input cannot be computed by running the layers before it")
    x = Tensor(np.asarray(images, dtype=np.float32))
    with no_grad():
        for module in features:
            if module is target:
                return x.data
            x = module(x)
    raise AssertionError("unreachable: the target layer was found above")


@dataclass(frozen=True)
class LayerView:
    """What every figure of one adaptive layer and output channel o draws, computed once (by
    `layer_view`) for a batch of K images:

        images   (K, 1, H, W)           the model's inputs
        module   the AdaptiveConv2d; layer and channel say which, counted as the CLI counts
        on_image True for the model's first layer: patch coordinates are image pixels
        x        (K, C, H', W')         what the layer sees (the layers before it, run once)
        kernels  (K, Ho, Wo, C, m, m)   k_o(l) = Q_o p_l + w_o, the channel's kernel at every location
        w        (C, m, m)              w_o, the kernel left where the patch is blank
        qp       (K, Ho, Wo, C, m, m)   Q_o p_l = k_o(l) - w_o, the part the patch adds
        b        float                  b_o
        sigma    (K, Ho, Wo)            sigma_o(l) = k_o(l) . p_l + b_o, the channel before its activation
        outputs  (K, O, Ho, Wo)         the layer's outputs y (after its activation), every channel
    """
    images: np.ndarray
    module: AdaptiveConv2d
    layer: int
    channel: int
    on_image: bool
    x: np.ndarray
    kernels: np.ndarray
    w: np.ndarray
    qp: np.ndarray
    b: float
    sigma: np.ndarray
    outputs: np.ndarray


def layer_view(model: Module, images: np.ndarray, layer: int = 0, channel: int = 0) -> LayerView:
    """Select the layer, check the channel, run the model up to the layer and the layer itself
    once: everything the `plot_*` functions of figures.py and the explorer draw. images: (K, 1, H, W)."""
    module = select_adaptive_layer(model, layer)
    check_channel(module, channel)
    images = np.asarray(images, dtype=np.float32)
    x = _input_of(model, module, layer, images)                    # (K, C, H', W')
    kernels = module.kernels(x)[:, channel]                        # (K, Ho, Wo, C, m, m)
    w = static_kernel(module, channel)                             # (C, m, m)
    with no_grad():
        outputs = module(Tensor(x)).data                           # (K, O, Ho, Wo)
        # sigma from the engine itself, not recovered from y = tanh(sigma), where it saturates
        sigma = F.adaptive_conv2d(x, module.Q, module.w, module.b, module.stride,
                                  module.padding).data[:, channel]             # (K, Ho, Wo)
    return LayerView(images=images, module=module, layer=layer, channel=channel,
                     on_image=model.features[0] is module, x=x, kernels=kernels, w=w, qp=kernels - w,
                     b=float(module.b.data[channel]), sigma=sigma, outputs=outputs)


def dynamic_kernels(model: Module, images: np.ndarray, layer: int = 0) -> np.ndarray:
    """The kernel every location of the layer applies to each image: (N, O, Ho, Wo, C, m, m).

    Exactly `F.adaptive_kernels(layer_input, Q, w, stride, padding)`."""
    return select_adaptive_layer(model, layer).kernels(layer_input(model, images, layer))


def q_filters(module: AdaptiveConv2d, channel: int) -> np.ndarray:
    """Output channel o's Q filters as (C, m, m, C, m, m).

    [c, u, v] picks the kernel element e = (c, u, v); the trailing (C, m, m) is its filter
    Q_o[e, :] laid out like the patch it is applied to: k_o[c, u, v] = <filter, patch> + w_o[c, u, v]."""
    check_channel(module, channel)
    c, m = module.in_channels, module.kernel_size
    return module.Q.data[channel].reshape(c, m, m, c, m, m)


def static_kernel(module: AdaptiveConv2d, channel: int) -> np.ndarray:
    """w_o as (C, m, m): the kernel left when Q is zero (zeros for a layer built with static_kernel=False)."""
    check_channel(module, channel)
    c, m = module.in_channels, module.kernel_size
    if module.w is None:
        return np.zeros((c, m, m), dtype=module.Q.dtype)
    return module.w.data[channel].reshape(c, m, m)


def distance_to_mean_kernel(kernels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far each location's kernel is from the channel's average kernel for this input.

    kernels: (Ho, Wo, C, m, m) -> mean kernel (C, m, m) over the Ho*Wo locations and
    distance (Ho, Wo) = || k(i, j) - mean ||_2. A plain convolution would give distance 0."""
    mean = kernels.mean(axis=(0, 1))
    distance = np.sqrt(((kernels - mean) ** 2).sum(axis=(2, 3, 4)))
    return mean, distance


# ----------------------------------------------------------------------------- geometry
def patch_origin(index: int, module: AdaptiveConv2d) -> int:
    """Row (or column) of the layer input where the patch of output row (column) `index` starts."""
    return index * module.stride - module.padding


def sampled_locations(size: int, module: AdaptiveConv2d, through: int | None = None) -> np.ndarray:
    """Output rows (or columns) whose patches do not overlap: every ceil((m+1)/stride)-th one,
    chosen so that `through` (default the centre, size // 2) is one of them; an m x m tile
    drawn over each patch then leaves a one-pixel gap to the next."""
    step = -(-(module.kernel_size + 1) // module.stride)
    through = size // 2 if through is None else through
    return np.arange(through % step, size, step)


def patches_at(x: np.ndarray, module: AdaptiveConv2d, row: int, col: int) -> np.ndarray:
    """The patch p under output location (row, col) of each input: x (N, C, H, W) -> (N, C, m, m).

    Zero padding as the layer pads, so k = Q p + w holds with this p (k = w where p is all 0)."""
    m, pad = module.kernel_size, module.padding
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    r0, c0 = row * module.stride, col * module.stride               # patch_origin + padding
    return padded[:, :, r0 : r0 + m, c0 : c0 + m]


def check_location(location: tuple[int, int], out_h: int, out_w: int) -> tuple[int, int]:
    """(row, col) as ints if the layer's output has that location; else ValueError saying which it has."""
    i, j = location
    if not (0 <= i < out_h and 0 <= j < out_w):
        raise ValueError(f"location ({i}, {j}) is out of range: the layer has {out_h}x{out_w} output locations, "
                         f"rows 0..{out_h - 1} and columns 0..{out_w - 1}")
    return int(i), int(j)
