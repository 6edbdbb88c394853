"""The study's choices of model: which networks are compared, and at what size.

These are choices of the lab, not options of a model: each one is a model name and the
options `build_model` takes (the model owns the options and their rules, see models.py).
A size is always found by building the network and counting (`num_parameters`), so the
arithmetic of a model's size lives in one place, the model.

    BUDGET                  adaptive-lenet's stored parameters (6,514 <= LeNet / 66):
                            every "equal budget" model has at most this many.
    PLAIN_CANDIDATES        the ordinary CNNs an adaptive-lenet must beat, each spending the
                            budget another way (first layer tanh or ReLU, 5x5 first layer,
                            wider second convolution, a hidden fully connected layer).
    EQUAL_WIDTH_OPTIONS     plain-small at adaptive-lenet's width (8 first-layer channels).
    adaptive_width_options, plain_width_options
                            the budget sweep's pairs at first-layer width w.
"""
from __future__ import annotations

from ..models import build_model


def parameters(model: str, options: dict) -> int:
    """Stored parameters of a model, counted by building it."""
    return build_model(model, **options).num_parameters()


BUDGET = parameters("adaptive-lenet", {})  # 6,514


def widest(model: str, options: dict, key: str, index: int | None, budget: int = BUDGET, start: int = 1) -> dict:
    """`options` with options[key] (or its entry `index`) set to the largest whole number
    from `start` up whose model stays within `budget` parameters."""
    def with_value(value: int) -> dict:
        if index is None:
            return {**options, key: value}
        pair = list(options[key])
        pair[index] = value
        return {**options, key: tuple(pair)}

    value = start
    while parameters(model, with_value(value + 1)) <= budget:
        value += 1
    return with_value(value)


def plain_candidates() -> dict[str, tuple[str, dict]]:
    """label -> (model, options): the ordinary CNNs at adaptive-lenet's budget. The ReLU
    variants are what an ordinary CNN would use; plain-tanh is the original ablation
    (plain-small), which keeps the adaptive layer's tanh so that only the kernel changes.

        plain-tanh    conv 9@3x3, tanh   -> conv 16@5x5 -> fc 10             (plain-small)
        plain-relu    conv 9@3x3, ReLU   -> conv 16@5x5 -> fc 10
        plain-5x5     conv f@5x5, ReLU   -> conv 16@5x5 -> fc 10             f as wide as fits
        plain-wide2   conv 4@3x3, ReLU   -> conv s@5x5  -> fc 10             s as wide as fits
        plain-hidden  conv 8@3x3, ReLU   -> conv 8@5x5  -> fc h, ReLU -> fc 10  h as wide as fits
    """
    relu = {"first_activation": "relu"}
    return {
        "plain-tanh": ("plain-small", {}),
        "plain-relu": ("plain-small", dict(relu)),
        "plain-5x5": ("plain-small", widest("plain-small", {"kernel_sizes": (5, 5), "channels": (1, 16), **relu},
                                            "channels", 0)),
        "plain-wide2": ("plain-small", widest("plain-small", {"channels": (4, 1), **relu}, "channels", 1)),
        "plain-hidden": ("plain-small", widest("plain-small", {"channels": (8, 8), **relu}, "hidden", None)),
    }


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
    budget = parameters("adaptive-lenet", adaptive_width_options(width))
    return widest("plain-small", {"channels": (width, 2 * width)}, "channels", 0, budget=budget, start=width)


def quadratic_controls() -> dict[str, tuple[str, dict]]:
    """label -> (model, options): adaptive-lenet's network with the full Q replaced by a
    cheaper quadratic form, each first layer as wide as fits adaptive-lenet's budget.

        full-q          adaptive 8@3x3, Q full (adaptive-lenet)          91 per channel
        diagonal-q      Q diagonal                                       19 per channel
        rank1-q         Q = U^T V, rank 1                                28 per channel
        rank2-q         Q = U^T V, rank 2                                46 per channel
        quadratic-act   conv 3x3 -> s + a s^2 -> tanh                    11 per channel
    """
    return {
        "full-q": ("adaptive-lenet", {}),
        "diagonal-q": ("adaptive-lenet", widest("adaptive-lenet", {"q_form": "diagonal", "channels": (1, 16)},
                                                "channels", 0)),
        "rank1-q": ("adaptive-lenet", widest("adaptive-lenet", {"q_form": "low-rank", "q_rank": 1,
                                                                "channels": (1, 16)}, "channels", 0)),
        "rank2-q": ("adaptive-lenet", widest("adaptive-lenet", {"q_form": "low-rank", "q_rank": 2,
                                                                "channels": (1, 16)}, "channels", 0)),
        "quadratic-act": ("plain-small", widest("plain-small", {"first_activation": "quadratic",
                                                                "channels": (1, 16)}, "channels", 0)),
    }
