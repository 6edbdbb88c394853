"""Optimisers: SGD (with momentum and weight decay) and Adam.

Each `step()` reads `p.grad` of every parameter and updates `p.data` in place.
`state_dict()` / `load_state_dict()` save the running state (momentum buffers, Adam's
moments and step count) so that a resumed run continues exactly where it stopped.
"""
from __future__ import annotations

import numpy as np

from .nn.module import Parameter


class Optimizer:
    def __init__(self, params, lr: float):
        self.params: list[Parameter] = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.lr = lr

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        pass


class SGD(Optimizer):
    """v = momentum * v + (grad + weight_decay * p);  p -= lr * v."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.momentum, self.weight_decay = momentum, weight_decay
        self.velocity = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        for p, v in zip(self.params, self.velocity):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
            if self.momentum:
                v *= self.momentum
                v += g
                g = v
            p.data -= self.lr * g

    def state_dict(self) -> dict[str, np.ndarray]:
        return {f"velocity.{i}": v for i, v in enumerate(self.velocity)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.velocity = [_restore(state, f"velocity.{i}", p) for i, p in enumerate(self.params)]


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015):
        m = b1 m + (1-b1) g,   v = b2 v + (1-b2) g^2
        p -= lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m/(1-b1^t), v_hat = v/(1-b2^t)
    weight_decay adds weight_decay * p to g (L2, as torch.optim.Adam)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.beta1, self.beta2 = betas
        self.eps, self.weight_decay = eps, weight_decay
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        self.t += 1
        # Bias corrections as Python floats so float32 parameters stay float32.
        c1 = 1.0 - self.beta1**self.t
        c2 = 1.0 - self.beta2**self.t
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad
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
        self.t = int(state["t"])
        self.m = [_restore(state, f"m.{i}", p) for i, p in enumerate(self.params)]
        self.v = [_restore(state, f"v.{i}", p) for i, p in enumerate(self.params)]


def _restore(state: dict, key: str, p: Parameter) -> np.ndarray:
    if key not in state:
        raise ValueError(f"optimizer state has no entry '{key}'")
    value = np.asarray(state[key])
    if value.shape != p.shape:
        raise ValueError(f"optimizer state '{key}' has shape {value.shape}, parameter has {p.shape}")
    return value.astype(p.dtype, copy=True)
