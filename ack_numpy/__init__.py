"""ack_numpy: a NumPy-only teaching engine for Adaptive Convolutional Kernels.

Reading order, which is also the order the data flows in:

    autograd.py        Tensor, no_grad: arrays that remember how they were made
    functional/        im2col, conv2d, max_pool2d, cross_entropy, and adaptive.py:
                       the adaptive kernel k = Q p + w, sigma = k . p + b
    nn/                Module, Parameter, layers (Linear, Conv2d, ..., AdaptiveConv2d)
    optim.py           SGD, Adam
    models.py          LeNet and AdaptiveLeNet, looked up by name: lenet, adaptive-lenet, plain-small
    data/              IDX files, MNIST (checksums, download), batches, augmentation
    train.py           the training loop and its metrics (config.py: the settings; checkpoint.py:
                       saving; runs.py: the run folder; progress.py: the status line and Ctrl-C)
    viz/               pictures of the dynamic kernels (kernel field, Q bank, digits, ...)
    runtime.py         the process settings: BLAS threads (default one) and the allocator
    assets/            the trained adaptive LeNet that explore and the tutorials use
    cli.py             `python -m ack_numpy ...`

Apart from it, not needed to learn the idea (the engine and the tutorials never import it):

    lab/               the instruments: bench/ (speed and memory), reproduce.py and the
                       studies behind the README's claims ledger, records.py (how a report
                       checks each run)
"""
from .autograd import Tensor, no_grad

__version__ = "0.1.0"
__all__ = ["Tensor", "no_grad", "__version__"]
