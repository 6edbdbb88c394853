"""Layers with parameters, PyTorch-style: Module, Parameter, and the layers built on them."""
from .adaptive import AdaptiveConv2d
from .layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, Tanh
from .module import Module, Parameter
from .quadratic import DiagonalAdaptiveConv2d, LowRankAdaptiveConv2d, QuadraticActivation

__all__ = ["AdaptiveConv2d", "Conv2d", "DiagonalAdaptiveConv2d", "Flatten", "Linear", "LowRankAdaptiveConv2d",
           "MaxPool2d", "Module", "Parameter", "QuadraticActivation", "ReLU", "Sequential", "Tanh"]
