"""Exercises of tutorial 04 (training). Write each function, then run

    python tutorials/check.py 04

None of them needs MNIST or a training run.
"""
import numpy as np


def cosine_learning_rate(lr: float, t: int, T: int) -> float:
    """04.1  The learning rate of the cosine schedule at step t of T (from lr at t = 0 towards 0)."""
    raise NotImplementedError


def cross_entropy_grad(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """04.2  d loss / d logits for loss = mean over the batch of -log softmax(logits)[label]:
    logits (N, K), labels (N,) -> (N, K)."""
    raise NotImplementedError


def adaptive_layer_parameters(C: int, O: int, m: int) -> int:
    """04.3  The number of parameters of AdaptiveConv2d(C, O, m) (with its static kernel w and bias b)."""
    raise NotImplementedError
