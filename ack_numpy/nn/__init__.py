"""Layers with parameters, PyTorch-style: Module, Parameter, and the layers built on them."""
from .adaptive import AdaptiveConv2d
from .layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, Tanh
from .module import Module, Parameter

__all__ = ["AdaptiveConv2d", "Conv2d", "Flatten", "Linear", "MaxPool2d",
           "Module", "Parameter", "ReLU", "Sequential", "Tanh"]
