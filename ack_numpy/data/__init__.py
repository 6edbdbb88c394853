"""Data: reading MNIST from IDX files, and feeding it to training in minibatches.

    idx.py       reading the IDX file format (read_idx, DataFormatError)
    mnist.py     finding, verifying, loading and downloading MNIST
    batching.py  minibatches and random-shift augmentation

Typical use:

    x, y = load_mnist("train")                      # (60000, 1, 28, 28) float32, (60000,) int64
    rng = np.random.default_rng(0)
    for xb, yb in batches(x, y, 64, rng=rng):
        xb = random_shift(xb, 2, rng)
"""

from .batching import batches, random_shift, shift_image_loops, shift_images
from .idx import DataFormatError, read_idx
from .mnist import (
    MNIST_FILES,
    MNIST_SHA256,
    MNIST_SHAPES,
    download_mnist,
    find_mnist_dir,
    find_or_download_mnist,
    load_mnist,
    verify_mnist,
)

__all__ = [
    "DataFormatError",
    "read_idx",
    "MNIST_FILES",
    "MNIST_SHA256",
    "MNIST_SHAPES",
    "find_mnist_dir",
    "find_or_download_mnist",
    "load_mnist",
    "verify_mnist",
    "download_mnist",
    "batches",
    "random_shift",
    "shift_images",
    "shift_image_loops",
]
