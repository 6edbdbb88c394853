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
from .functional.sizes import is_whole
from .nn import (AdaptiveConv2d, Conv2d, DiagonalAdaptiveConv2d, Flatten, Linear, LowRankAdaptiveConv2d, MaxPool2d,
                 Module, QuadraticActivation, ReLU, Sequential, Tanh)

LENET_PARAMETERS = 431_080
PAPER_BUDGET = LENET_PARAMETERS // 66  # 6,531: "66x fewer parameters than LeNet"
IMAGE_SIZE = 28  # MNIST
MAX_CHANNELS, MAX_HIDDEN = 512, 4096  # far beyond the models here; nothing a laptop cannot build
# After an ordinary first layer: tanh (the adaptive layer's own), ReLU, or the quadratic
# activation s + a s^2 followed by tanh (a quadratic control: the adaptive form with Q = a w w^T).
FIRST_ACTIVATIONS = ("tanh", "relu", "quadratic")
# The form of Q in an adaptive layer: full (the paper's), diagonal, or low-rank (rank q_rank).
Q_FORMS = ("full", "diagonal", "low-rank")
# AdaptiveLeNet's options and their defaults (the defaults make adaptive-lenet); the one
# place they are written: the constructor, the rules below and the registry read them here.
ADAPTIVE_LENET_DEFAULTS = {"channels": (8, 16), "kernel_sizes": (3, 5), "adaptive": (True, False), "hidden": 0,
                           "first_activation": "tanh", "q_form": "full", "q_rank": 1}
ADAPTIVE_LENET_OPTIONS = tuple(ADAPTIVE_LENET_DEFAULTS)


def _is_pair(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2


def after_stage(size: int, kernel_size: int) -> int:
    """The side of the feature map after one stage: a convolution without padding, then a 2x2 pool."""
    return (size - kernel_size + 1) // 2


def check_options(options: dict, image_size: int = IMAGE_SIZE) -> None:
    """AdaptiveLeNet's rules for its options, wherever they come from (the constructor, a
    TrainConfig, a checkpoint): raise ValueError naming the first option that breaks one.
    Sizes are kept within what a teaching model on 28x28 images can have, so that no record
    can ask for 10^9 channels."""
    if not isinstance(options, dict):
        raise ValueError(f"model options must be a record of settings, got {options!r}")
    unknown = sorted(set(options) - set(ADAPTIVE_LENET_OPTIONS))
    if unknown:
        raise ValueError(f"unknown model option {unknown[0]!r} (the options are {', '.join(ADAPTIVE_LENET_OPTIONS)})")
    given, options = options, {**ADAPTIVE_LENET_DEFAULTS, **options}
    channels = options["channels"]
    if not (_is_pair(channels) and all(is_whole(c, 1) and c <= MAX_CHANNELS for c in channels)):
        raise ValueError(f"model option 'channels' must be two whole numbers from 1 to {MAX_CHANNELS}, got {channels!r}")
    kernel_sizes, size = options["kernel_sizes"], image_size
    if not (_is_pair(kernel_sizes) and all(is_whole(k, 1) for k in kernel_sizes)):
        raise ValueError(f"model option 'kernel_sizes' must be two whole numbers >= 1, got {kernel_sizes!r}")
    for k in kernel_sizes:
        size = after_stage(size, k)
    if size < 1:
        raise ValueError(f"model option 'kernel_sizes' {list(kernel_sizes)} leave nothing of a "
                         f"{image_size}x{image_size} image")
    adaptive = options["adaptive"]
    if not (_is_pair(adaptive) and all(isinstance(a, bool) for a in adaptive)):
        raise ValueError(f"model option 'adaptive' must be two true/false values, got {adaptive!r}")
    hidden = options["hidden"]
    if not (is_whole(hidden) and hidden <= MAX_HIDDEN):
        raise ValueError(f"model option 'hidden' must be a whole number from 0 to {MAX_HIDDEN}, got {hidden!r}")
    first_activation = options["first_activation"]
    if not (isinstance(first_activation, str) and first_activation in FIRST_ACTIVATIONS):
        raise ValueError(f"model option 'first_activation' must be one of {', '.join(FIRST_ACTIVATIONS)}, "
                         f"got {first_activation!r}")
    if adaptive[0] and first_activation != "tanh":
        raise ValueError("model option 'first_activation' is for an ordinary first layer; "
                         "an adaptive one has tanh inside")
    q_form, q_rank = options["q_form"], options["q_rank"]
    if not (isinstance(q_form, str) and q_form in Q_FORMS):
        raise ValueError(f"model option 'q_form' must be one of {', '.join(Q_FORMS)}, got {q_form!r}")
    if not (is_whole(q_rank, 1)):
        raise ValueError(f"model option 'q_rank' must be a whole number >= 1, got {q_rank!r}")
    if "q_rank" in given and q_form != "low-rank":
        raise ValueError("model option 'q_rank' is for q_form 'low-rank'")
    if (q_form != "full" or "q_rank" in given) and not any(adaptive):
        raise ValueError("model options 'q_form' and 'q_rank' are for a model with an adaptive layer")


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
    kept for the plain version too so that the ablation changes only the kernel; an
    ordinary first layer may use ReLU instead, `first_activation="relu"`, as an ordinary
    CNN would), stage 2 ReLU after a plain conv or tanh after an adaptive one. Then
    flatten -> [hidden, ReLU] -> 10.

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

    def __init__(self, channels: tuple = ADAPTIVE_LENET_DEFAULTS["channels"],
                 kernel_sizes: tuple = ADAPTIVE_LENET_DEFAULTS["kernel_sizes"],
                 adaptive: tuple = ADAPTIVE_LENET_DEFAULTS["adaptive"], hidden: int = ADAPTIVE_LENET_DEFAULTS["hidden"],
                 first_activation: str = ADAPTIVE_LENET_DEFAULTS["first_activation"],
                 q_form: str = ADAPTIVE_LENET_DEFAULTS["q_form"], q_rank: int | None = None,
                 image_size: int = IMAGE_SIZE, rng: np.random.Generator | None = None):
        rng = rng if rng is not None else np.random.default_rng()
        options = dict(channels=channels, kernel_sizes=kernel_sizes, adaptive=adaptive, hidden=hidden,
                       first_activation=first_activation, q_form=q_form)
        if q_rank is not None:  # given: checked like any option (only q_form 'low-rank' takes it)
            options["q_rank"] = q_rank
        check_options(options, image_size)
        q_rank = options.get("q_rank", ADAPTIVE_LENET_DEFAULTS["q_rank"])
        layers, in_ch, size = [], 1, image_size
        for stage, (out_ch, m, is_adaptive) in enumerate(zip(channels, kernel_sizes, adaptive)):
            if is_adaptive:  # tanh is inside
                layers.append(adaptive_layer(in_ch, out_ch, m, q_form, q_rank, rng))
            else:
                layers.append(Conv2d(in_ch, out_ch, m, rng=rng))
                layers += first_activation_layers(first_activation, out_ch) if stage == 0 else [ReLU()]
            layers.append(MaxPool2d(2))
            in_ch, size = out_ch, after_stage(size, m)
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


def adaptive_layer(in_ch: int, out_ch: int, m: int, q_form: str, q_rank: int, rng: np.random.Generator) -> Module:
    """The adaptive layer with Q full (the paper's), diagonal or of rank q_rank."""
    if q_form == "diagonal":
        return DiagonalAdaptiveConv2d(in_ch, out_ch, m, rng=rng)
    if q_form == "low-rank":
        return LowRankAdaptiveConv2d(in_ch, out_ch, m, q_rank, rng=rng)
    return AdaptiveConv2d(in_ch, out_ch, m, rng=rng)


def first_activation_layers(name: str, channels: int) -> list[Module]:
    if name == "relu":
        return [ReLU()]
    if name == "quadratic":
        return [QuadraticActivation(channels), Tanh()]
    return [Tanh()]


def lenet(rng: np.random.Generator) -> LeNet:
    return LeNet(rng=rng)


# What each AdaptiveLeNet-shaped model changes in ADAPTIVE_LENET_DEFAULTS; its own options
# override both.
DEFAULT_OPTIONS = {
    "adaptive-lenet": {},
    "plain-small": {"channels": (9, 16), "adaptive": (False, False)},
}


def adaptive_lenet(rng: np.random.Generator, **options) -> AdaptiveLeNet:
    """The paper-budget adaptive model: adaptive 8@3x3, conv 16@5x5, fc 10 (6,514 parameters)."""
    return AdaptiveLeNet(**{**DEFAULT_OPTIONS["adaptive-lenet"], **options}, rng=rng)


def plain_small(rng: np.random.Generator, **options) -> AdaptiveLeNet:
    """The ablation: the same shape, first layer an ordinary conv widened to 9 channels
    (10*9 + (9*25+1)*16 + 2,570 = 6,276 parameters; 10 channels would be 6,686 > 6,531)."""
    return AdaptiveLeNet(**{**DEFAULT_OPTIONS["plain-small"], **options}, rng=rng)


MODELS = {"lenet": lenet, "adaptive-lenet": adaptive_lenet, "plain-small": plain_small}


def check_model(name, options) -> None:
    """A model name and its options, as `build_model(name, **options)` takes them: raise
    ValueError naming the problem. lenet takes no options; the others are AdaptiveLeNet's."""
    if not (isinstance(name, str) and name in MODELS):
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    if not isinstance(options, dict):
        raise ValueError(f"model options must be a record of settings, got {options!r}")
    if name == "lenet" and options:
        raise ValueError(f"model 'lenet' takes no options, got {sorted(options)}")
    if name != "lenet":
        check_options({**DEFAULT_OPTIONS[name], **options})  # as the model will use them


def build_model(name: str, seed: int = 0, **options) -> Module:
    """Make a model by name with weights drawn from np.random.default_rng(seed)."""
    check_model(name, options)
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
