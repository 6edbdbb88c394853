"""Reference solutions of tutorial 01's exercises (tutorials/exercises/ex01.py)."""
import numpy as np


def tanh_layer_grads(x: np.ndarray, W: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.tanh(x @ W)
    g_z = g * (1 - y**2)            # tanh' = 1 - tanh^2       (N, O)
    return g_z @ W.T, x.T @ g_z     # as for any matrix product: dx (N, I), dW (I, O)


def bias_grad(grad: np.ndarray, bias_shape: tuple) -> np.ndarray:
    # the axes broadcasting added in front: sum them away
    grad = grad.sum(axis=tuple(range(grad.ndim - len(bias_shape))))
    # the axes where the bias has size 1 were stretched: sum them, keeping the axis
    for axis, size in enumerate(bias_shape):
        if size == 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad
