"""Module and Parameter: how layers hold their weights.

A `Parameter` is a Tensor that an optimiser should update. A `Module` is anything with
a `forward`; it finds its parameters by looking at its own attributes (Parameters,
sub-Modules, and lists of Modules), so a layer only has to assign them in `__init__`.
`state_dict()` names every parameter by its attribute path ("conv1.Q", "fc.weight").
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..autograd import Tensor

# The three versions ("rungs") of a convolution that a layer can call: `fast` (what training
# uses), `reference` (im2col, written as the equations read) and `loops` (one number at a
# time, with a literal backward). See `ack_numpy.functional`.
RUNGS = ("fast", "reference", "loops")


def check_rung(owner: str, rung) -> None:
    if rung not in RUNGS:
        raise ValueError(f"{owner}: rung must be one of 'fast', 'reference', 'loops', got {rung!r}")


class Parameter(Tensor):
    """A Tensor that is a learnable weight: requires_grad is always on."""

    def __init__(self, data: np.ndarray):
        super().__init__(np.asarray(data), requires_grad=True)


class Module:
    """Base class for layers and models: override `forward`; call the module like a function."""

    training: bool = True

    def forward(self, *args, **kwargs) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs) -> Tensor:
        return self.forward(*args, **kwargs)

    # ---------------------------------------------------------------- parameters
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(name, Parameter) pairs in attribute order, names like 'features.0.Q'."""
        for name, value in vars(self).items():
            full = f"{prefix}{name}"
            if isinstance(value, Parameter):
                yield full, value
            elif isinstance(value, Module):
                yield from value.named_parameters(full + ".")
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield from item.named_parameters(f"{full}.{i}.")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        """Total count of learnable numbers (what "431,080 parameters" counts)."""
        return sum(p.size for p in self.parameters())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def children(self) -> Iterator["Module"]:
        for value in vars(self).values():
            if isinstance(value, Module):
                yield value
            elif isinstance(value, (list, tuple)):
                yield from (v for v in value if isinstance(v, Module))

    def train(self, mode: bool = True) -> "Module":
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def modules(self) -> Iterator["Module"]:
        """This module and every module inside it, depth first."""
        yield self
        for child in self.children():
            yield from child.modules()

    # The rungs a module's forward can call: all three for a layer with a `rung` attribute,
    # none to choose for one without (ReLU, Linear, ...). A layer that calls only its fast
    # op (the quadratic controls) says ("fast",), so that asking it for loops is refused.
    def rungs(self) -> tuple[str, ...]:
        return RUNGS if "rung" in vars(self) else ()

    def use_rung(self, rung: str) -> "Module":
        """Make every layer in this module that has rungs (Conv2d, AdaptiveConv2d) call the
        `rung` version of its op: "loops" to step into the literal loops in a debugger,
        "reference" for the im2col form, "fast" (the default) to train. Values and
        gradients agree between rungs; only the speed differs (loops: seconds per image).
        A layer that lacks that rung is refused, naming it, before any layer is changed."""
        check_rung(type(self).__name__, rung)
        lacking = sorted({type(m).__name__ for m in self.modules() if m.rungs() and rung not in m.rungs()})
        if lacking:
            raise ValueError(f"use_rung({rung!r}): {', '.join(lacking)} has only the fast version; for its loops "
                             f"call the *_loops function of ack_numpy.functional directly")
        for module in self.modules():
            if "rung" in vars(module):
                module.rung = rung
        return self

    # ---------------------------------------------------------------- saving
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter's values, by name."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Load values saved by state_dict(); names and shapes must match exactly, and every
        value must be a finite float. All are checked before any is loaded, so a refused
        state_dict leaves the model as it was."""
        if not isinstance(state, dict):
            raise TypeError(f"load_state_dict needs a dict of name -> array (what state_dict() returns), "
                            f"got {type(state).__name__}")
        own = dict(self.named_parameters())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"state_dict does not match {type(self).__name__}: "
                             f"missing {missing}, unexpected {unexpected}")
        values = {name: np.asarray(state[name]) for name in own}
        for name, p in own.items():
            value = values[name]
            if value.dtype.kind != "f":
                raise ValueError(f"state_dict entry '{name}' holds {value.dtype} values, "
                                 f"expected floating-point numbers")
            if value.shape != p.shape:
                raise ValueError(f"state_dict entry '{name}' has shape {value.shape}, "
                                 f"the model expects {p.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"state_dict entry '{name}' holds NaN or infinite values")
            with np.errstate(over="ignore"):  # the check below says it in words
                values[name] = value.astype(p.dtype, copy=True)
            if not np.isfinite(values[name]).all():
                raise ValueError(f"state_dict entry '{name}' holds values too large for {p.dtype} "
                                 f"(largest |value| {np.abs(value).max():.3g})")
        for name, p in own.items():
            p.data = values[name]

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for name, value in vars(self).items():
            if isinstance(value, Module):
                lines.append(f"  ({name}): " + repr(value).replace("\n", "\n  "))
            elif isinstance(value, (list, tuple)) and any(isinstance(v, Module) for v in value):
                for i, v in enumerate(value):
                    lines.append(f"  ({i}): " + repr(v).replace("\n", "\n  "))
        return "\n".join(lines) + ")" if len(lines) > 1 else f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        return ""
