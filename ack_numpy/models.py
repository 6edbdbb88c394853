"""The models, looked up by name: `lenet`, `adaptive-lenet`, `plain-small`.

    lenet           Caffe's MNIST LeNet: conv 20@5x5, pool, conv 50@5x5, pool, fc 500, ReLU,
                    fc 10. 431,080 parameters: the baseline of the paper's claims.
    adaptive-lenet  LeNet's shape (two conv+pool stages, then a classifier) at 1/66 of its
                    size, with an adaptive first layer. At most 431,080 / 66 = 6,531 parameters.
    plain-small     The ablation: adaptive-lenet with the adaptive layer replaced by an
                    ordinary convolution, widened to the same parameter budget.

`build_model(name, seed, **options)` makes one; the options are stored in checkpoints
so that `evaluate` and `visualize` can rebuild the same model.
"""
from __future__ import annotations

import numpy as np

from .autograd import Tensor
from .nn import AdaptiveConv2d, Conv2d, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential, Tanh

LENET_PARAMETERS = 431_080
PAPER_BUDGET = LENET_PARAMETERS // 66  # 6,531: "66x fewer parameters than LeNet"


class LeNet(Module):
    """Caffe's LeNet for MNIST. x: (N, 1, 28, 28) -> logits (N, 10).

    shapes: 28 -conv5-> 24 -pool-> 12 -conv5-> 8 -pool-> 4;  50*4*4 = 800 -> 500 -> 10
    params: 520 + 25,050 + 400,500 + 5,010 = 431,080
    """

    def __init__(self, rng: np.random.Generator | None = None):
        rng = rng if rng is not None else np.random.default_rng()
        self.features = Sequential(
            Conv2d(1, 20, 5, rng=rng), MaxPool2d(2),
            Conv2d(20, 50, 5, rng=rng), MaxPool2d(2),
        )
        self.classifier = Sequential(Flatten(), Linear(800, 500, rng=rng), ReLU(), Linear(500, 10, rng=rng))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class AdaptiveLeNet(Module):
    """LeNet's shape at the paper's budget: two conv+pool stages and a linear classifier,
    either stage adaptive or ordinary (`plain-small` is this class with no adaptive stage).

    x: (N, 1, 28, 28) -> logits (N, 10). Stage i: layer (m_i x m_i, no padding) ->
    activation -> 2x2 max-pool. Stage 1 uses tanh (the adaptive layer's own nonlinearity,
    kept for the plain version too so that the ablation changes only the kernel), stage 2
    ReLU after a plain conv or tanh after an adaptive one. Then flatten -> [hidden, ReLU] -> 10.

    Where to put adaptivity (the main design decision): Q costs D^2 = (C*m*m)^2 numbers
    per output channel. In the first layer C = 1, so a 3x3 adaptive kernel costs
    81 + 9 + 1 = 91 per channel, barely more than a hidden unit; in the second layer
    C = 8 and a 3x3 adaptive kernel would cost 72^2 = 5,184 per channel, most of the budget.
    So the default makes the first layer adaptive (8 channels, 3x3: 728 parameters) and
    spends the rest on an ordinary 5x5 second stage and the classifier.

    Default (adaptive-lenet) shapes and parameters:
        28 -adaptive 3x3-> 26 -pool-> 13 -conv 5x5-> 9 -pool-> 4;  16*4*4 = 256 -> 10
        728 + 3,216 + 2,570 = 6,514  (<= 6,531 = LeNet / 66)
    """

    def __init__(self, channels: tuple = (8, 16), kernel_sizes: tuple = (3, 5),
                 adaptive: tuple = (True, False), hidden: int = 0, image_size: int = 28,
                 rng: np.random.Generator | None = None):
        rng = rng if rng is not None else np.random.default_rng()
        if not (len(channels) == len(kernel_sizes) == len(adaptive) == 2):
            raise ValueError("AdaptiveLeNet has two stages: channels, kernel_sizes and adaptive need two entries each")
        self.config = dict(channels=tuple(channels), kernel_sizes=tuple(kernel_sizes),
                           adaptive=tuple(bool(a) for a in adaptive), hidden=hidden)
        layers, in_ch, size = [], 1, image_size
        for stage, (out_ch, m, is_adaptive) in enumerate(zip(channels, kernel_sizes, adaptive)):
            if is_adaptive:
                layers.append(AdaptiveConv2d(in_ch, out_ch, m, rng=rng))  # tanh is inside
            else:
                layers.append(Conv2d(in_ch, out_ch, m, rng=rng))
                layers.append(Tanh() if stage == 0 else ReLU())
            layers.append(MaxPool2d(2))
            in_ch, size = out_ch, (size - m + 1) // 2
        self.features = Sequential(*layers)
        features = in_ch * size * size
        head = [Flatten()]
        if hidden:
            head += [Linear(features, hidden, rng=rng), ReLU()]
            features = hidden
        head.append(Linear(features, 10, rng=rng))
        self.classifier = Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def lenet(rng: np.random.Generator) -> LeNet:
    return LeNet(rng=rng)


def adaptive_lenet(rng: np.random.Generator, **options) -> AdaptiveLeNet:
    """The paper-budget adaptive model: adaptive 8@3x3, conv 16@5x5, fc 10 (6,514 parameters)."""
    return AdaptiveLeNet(**{"channels": (8, 16), "kernel_sizes": (3, 5), "adaptive": (True, False), **options}, rng=rng)


def plain_small(rng: np.random.Generator, **options) -> AdaptiveLeNet:
    """The ablation: the same shape, first layer an ordinary conv widened to 9 channels
    (10*9 + (9*25+1)*16 + 2,570 = 6,276 parameters; 10 channels would be 6,686 > 6,531)."""
    return AdaptiveLeNet(**{"channels": (9, 16), "kernel_sizes": (3, 5), "adaptive": (False, False), **options}, rng=rng)


MODELS = {"lenet": lenet, "adaptive-lenet": adaptive_lenet, "plain-small": plain_small}


def build_model(name: str, seed: int = 0, **options) -> Module:
    """Make a model by name with weights drawn from np.random.default_rng(seed)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    rng = np.random.default_rng(seed)
    return MODELS[name](rng, **options) if options else MODELS[name](rng)


def adaptive_layers(model: Module) -> list[AdaptiveConv2d]:
    """Every AdaptiveConv2d in a model, in forward order (empty for lenet / plain-small)."""
    found = []

    def visit(module: Module):
        if isinstance(module, AdaptiveConv2d):
            found.append(module)
        for child in module.children():
            visit(child)

    visit(model)
    return found


# ----------------------------------------------------------------------------- study variants
# The studies in ack_numpy/lab build these through `build_model(name, **options)`, so
# a checkpoint stores the options and `evaluate` rebuilds the same network.

# The equal-width ablation: plain-small with the first layer as wide as adaptive-lenet's
# (8 channels): 80 + 3,216 + 2,570 = 5,866 parameters. Beside the equal-budget plain-small
# it separates "the kernel is adaptive" from "the layer is wider".
EQUAL_WIDTH_OPTIONS = {"channels": (8, 16)}


def adaptive_width_options(width: int) -> dict:
    """The budget sweep's adaptive model at first-layer width w: adaptive w@3x3 ->
    conv 2w@5x5 -> fc 10 (w = 8 is adaptive-lenet). Parameters 91 w + (25 w + 1) 2w + 320 w + 10."""
    return {"channels": (width, 2 * width)}


def plain_width_options(width: int) -> dict:
    """The sweep's plain counterpart of adaptive width w, built by plain-small's rule: the
    same network with an ordinary first layer, widened to the most channels whose
    parameter count stays within the adaptive model's (w = 8 gives plain-small, 9 channels)."""
    budget = AdaptiveLeNet(**adaptive_width_options(width)).num_parameters()
    second = 2 * width
    first = width
    while plain_parameters(first + 1, second) <= budget:
        first += 1
    return {"channels": (first, second)}


def plain_parameters(first: int, second: int) -> int:
    """Parameters of plain-small's shape with these widths: 10 f + (25 f + 1) s + (16 s + 1) 10."""
    return 10 * first + (25 * first + 1) * second + (16 * second + 1) * 10
