"""Optimisers: SGD (with momentum and weight decay) and Adam.

Each `step()` reads `p.grad` of every parameter and updates `p.data` in place.
`state_dict()` / `load_state_dict()` save the running state (momentum buffers, Adam's
moments and step count) so that a resumed run continues exactly where it stopped.
"""
from __future__ import annotations

import math

import numpy as np

from .autograd import Tensor
from .nn.module import Parameter


def check_hyperparameter(name: str, value, low: float, high: float = math.inf,
                         low_included: bool = False) -> float:
    """`value` as a float if it is a finite real number in (low, high) (or [low, high)),
    else a ValueError naming it: a NaN weight decay or a negative momentum would
    otherwise be accepted and turn the weights into NaN a few steps later."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    above = value >= low if low_included else value > low
    if not (math.isfinite(value) and above and value < high):
        interval = f"{'[' if low_included else '('}{low:g}, {high:g})"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return value


def check_parameters(params) -> list[Parameter]:
    """The list of parameters, each a Tensor that requires grad, each listed once
    (a parameter listed twice would be updated twice per step)."""
    params = list(params)
    if not params:
        raise ValueError("optimizer got an empty parameter list")
    seen: dict[int, int] = {}
    for i, p in enumerate(params):
        if not isinstance(p, Tensor) or not p.requires_grad:
            raise TypeError(f"optimizer parameter {i} is not a Tensor that requires grad: {p!r}")
        if id(p) in seen:
            raise ValueError(f"optimizer parameter {i} is parameter {seen[id(p)]} again "
                             f"(shape {p.shape}); each parameter must be listed once")
        seen[id(p)] = i
    return params


class Optimizer:
    def __init__(self, params, lr: float):
        self.params: list[Parameter] = check_parameters(params)
        self.lr = check_hyperparameter("lr", lr, 0.0)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError

    def gradients(self) -> list[np.ndarray | None]:
        """Each parameter's gradient (None: no gradient, that parameter is left as it is),
        checked before any parameter changes, so a bad one leaves every weight untouched. A
        gradient set by hand (`p.grad = ...`) has not passed through autograd's checks: one of
        another shape would be broadcast onto the weights, and a NaN or inf one would make
        them NaN for good."""
        grads = [p.grad for p in self.params]
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if g is None:
                continue
            if np.shape(g) != p.shape:
                raise ValueError(f"optimizer parameter {i} (shape {p.shape}) has a gradient of shape "
                                 f"{np.shape(g)}; no parameter was updated")
            if not np.isfinite(g).all():
                raise FloatingPointError(f"optimizer parameter {i} (shape {p.shape}): its gradient holds NaN or "
                                         f"infinite values; no parameter was updated")
        return grads

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        check_state(state, self.state_dict())


def check_state(state, own: dict) -> None:
    """A dict, with no entry this optimiser does not have (`own`: its state_dict): a state
    for more parameters, or of another optimiser, is refused rather than half loaded."""
    if not isinstance(state, dict):
        raise TypeError(f"load_state_dict needs a dict of name -> array (what state_dict() returns), "
                        f"got {type(state).__name__}")
    unexpected = sorted(set(state) - set(own), key=str)
    if unexpected:
        raise ValueError(f"optimizer state has entries this optimizer does not have: {unexpected[:5]}"
                         f"{' ...' if len(unexpected) > 5 else ''} (a state for other parameters, or of "
                         f"another optimizer?)")


class SGD(Optimizer):
    """v = momentum * v + (grad + weight_decay * p);  p -= lr * v."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.momentum = check_hyperparameter("momentum", momentum, 0.0, 1.0, low_included=True)
        self.weight_decay = check_hyperparameter("weight_decay", weight_decay, 0.0, low_included=True)
        self.velocity = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        for p, v, grad in zip(self.params, self.velocity, self.gradients()):
            if grad is None:
                continue
            g = grad + self.weight_decay * p.data if self.weight_decay else grad
            if self.momentum:
                v *= self.momentum
                v += g
                g = v
            p.data -= self.lr * g

    def state_dict(self) -> dict[str, np.ndarray]:
        return {f"velocity.{i}": v for i, v in enumerate(self.velocity)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        check_state(state, self.state_dict())
        self.velocity = [_restore(state, f"velocity.{i}", p) for i, p in enumerate(self.params)]


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015):
        m = b1 m + (1-b1) g,   v = b2 v + (1-b2) g^2
        p -= lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m/(1-b1^t), v_hat = v/(1-b2^t)
    weight_decay adds weight_decay * p to g (L2, as torch.optim.Adam)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.beta1 = check_hyperparameter("betas[0]", betas[0], 0.0, 1.0, low_included=True)
        self.beta2 = check_hyperparameter("betas[1]", betas[1], 0.0, 1.0, low_included=True)
        self.eps = check_hyperparameter("eps", eps, 0.0)
        self.weight_decay = check_hyperparameter("weight_decay", weight_decay, 0.0, low_included=True)
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        grads = self.gradients()
        self.t += 1
        # Bias corrections as Python floats so float32 parameters stay float32.
        c1 = 1.0 - self.beta1**self.t
        c2 = 1.0 - self.beta2**self.t
        for p, m, v, grad in zip(self.params, self.m, self.v, grads):
            if grad is None:
                continue
            g = grad + self.weight_decay * p.data if self.weight_decay else grad
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * g * g
            p.data -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {"t": np.array(self.t)}
        state.update({f"m.{i}": m for i, m in enumerate(self.m)})
        state.update({f"v.{i}": v for i, v in enumerate(self.v)})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        # Every entry is checked before any is kept: a refused state leaves the optimiser as it was.
        check_state(state, self.state_dict())
        t = _restore_step(state)
        m = [_restore(state, f"m.{i}", p) for i, p in enumerate(self.params)]
        v = [_restore(state, f"v.{i}", p) for i, p in enumerate(self.params)]
        self.t, self.m, self.v = t, m, v


def _restore(state: dict, key: str, p: Parameter) -> np.ndarray:
    """state[key] as a copy in p's dtype, after checking it is there, real, finite and p's shape."""
    if key not in state:
        raise ValueError(f"optimizer state has no entry '{key}'")
    value = np.asarray(state[key])
    if value.dtype.kind not in "fiu":
        raise ValueError(f"optimizer state '{key}' holds {value.dtype} values, expected real numbers")
    if value.shape != p.shape:
        raise ValueError(f"optimizer state '{key}' has shape {value.shape}, parameter has {p.shape}")
    if not np.isfinite(value).all():
        raise ValueError(f"optimizer state '{key}' holds NaN or infinite values")
    return value.astype(p.dtype, copy=True)


def _restore_step(state: dict) -> int:
    """Adam's step count state['t']: a non-negative whole number."""
    if "t" not in state:
        raise ValueError("optimizer state has no entry 't' (Adam's step count)")
    value = np.asarray(state["t"])
    if value.shape != () or value.dtype.kind not in "iu" or int(value) < 0:
        raise ValueError(f"optimizer state 't' (Adam's step count) must be a non-negative integer, "
                         f"got {value.dtype} {value.tolist()!r}")
    return int(value)
