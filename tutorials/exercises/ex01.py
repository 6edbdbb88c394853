"""Exercises of tutorial 01 (autograd). Write each function, then run

    python tutorials/check.py 01

Plain NumPy only: the point is to do by hand what `backward()` does.
"""
import numpy as np


def tanh_layer_grads(x: np.ndarray, W: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """01.1  y = tanh(x @ W), with x: (N, I), W: (I, O). Given g = dL/dy (N, O), return
    (dL/dx (N, I), dL/dW (I, O)): the chain rule of tutorial 01, section 3, by hand."""
    raise NotImplementedError


def bias_grad(grad: np.ndarray, bias_shape: tuple) -> np.ndarray:
    """01.2  y = x + bias, where bias (shape `bias_shape`, e.g. (1, C, 1, 1), (C, 1, 1) or (W,))
    was broadcast to the shape of x (N, C, H, W). Given grad = dL/dy, return dL/dbias, of
    shape `bias_shape` (what `unbroadcast` in autograd.py does; write it yourself)."""
    raise NotImplementedError
