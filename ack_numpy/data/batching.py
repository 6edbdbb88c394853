"""Minibatches and random-shift augmentation.

`batches` walks a dataset once (one epoch) in minibatches, in a shuffled order drawn
from the `np.random.Generator` you pass, so a seed reproduces a run exactly.

`random_shift` is the classic MNIST augmentation: move each image by a few pixels,
filling the uncovered border with zeros. `shift_images` does the work for given
shifts (vectorised); `shift_image_loops` is its slow, literal twin for tests.
"""

from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from ..functional.sizes import check_size


def batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    rng: Optional[np.random.Generator] = None,
    shuffle: bool = True,
    drop_last: bool = False,
    first_batch: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Minibatches (x, y) covering every example exactly once: one epoch.

    Args:
        images: (N, ...) array, e.g. (N, 1, 28, 28).
        labels: (N,) array.
        batch_size: examples per batch, > 0.
        rng: generator for the shuffle; required when shuffle=True, so that runs are
            reproducible (we never touch NumPy's global random state).
        shuffle: visit examples in a random order (True) or in stored order (False).
        drop_last: skip the final batch if it has fewer than batch_size examples.
        first_batch: start with this batch of the epoch's order (resuming an epoch
            part-way: the order is drawn as for the whole epoch, then the first
            `first_batch` batches are skipped).
    Returns:
        an iterator of (x, y): x (B, ...), y (B,), B = batch_size except perhaps
        the last batch. The shuffle order is drawn when batches() is called.
    """
    check_size("batches: batch_size", batch_size)
    check_size("batches: first_batch", first_batch, minimum=0)
    if len(images) != len(labels):
        raise ValueError(
            f"batches: images and labels differ in length ({len(images)} vs {len(labels)})"
        )
    if shuffle and rng is None:
        raise ValueError(
            "batches: shuffle=True needs rng, e.g. rng=np.random.default_rng(seed), "
            "so the order is reproducible; or pass shuffle=False"
        )
    n = len(labels)
    order = rng.permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    # The checks above run when batches() is called; the loop runs lazily.
    return _iterate(images, labels, order[first_batch * batch_size : stop], batch_size)


def _iterate(
    images: np.ndarray, labels: np.ndarray, order: np.ndarray, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield images[idx], labels[idx]


def shift_images(images: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Move image n down by dy[n] and right by dx[n] pixels, filling with zeros.

        out[n, c, i, j] = images[n, c, i - dy[n], j - dx[n]]   (0 where that is outside)

    images: (N, C, H, W); dy, dx: (N,) integers (negative = up / left).
    Returns (N, C, H, W), same dtype.

    How: pad every image by s = max |shift| zeros on each side, then gather rows
    i - dy + s and columns j - dx + s with fancy indexing, all images at once.
    """
    n, c, h, w = images.shape
    # A shift by the whole height (width) or more leaves only zeros; clipping to it keeps the
    # padding below small whatever the shifts asked for.
    dy = np.clip(np.asarray(dy, dtype=np.intp), -h, h)
    dx = np.clip(np.asarray(dx, dtype=np.intp), -w, w)
    s = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    padded = np.pad(images, ((0, 0), (0, 0), (s, s), (s, s)))  # (N, C, H+2s, W+2s)
    rows = np.arange(h)[None, :] - dy[:, None] + s  # (N, H) row of padded to read
    cols = np.arange(w)[None, :] - dx[:, None] + s  # (N, W)
    return padded[
        np.arange(n)[:, None, None, None],  # (N, 1, 1, 1)
        np.arange(c)[None, :, None, None],  # (1, C, 1, 1)
        rows[:, None, :, None],  # (N, 1, H, 1)
        cols[:, None, None, :],  # (N, 1, 1, W)
    ]  # broadcasts to (N, C, H, W)


def shift_image_loops(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Slow literal version of `shift_images` for one (C, H, W) image: copy the
    overlapping window with slices."""
    _, h, w = image.shape
    out = np.zeros_like(image)
    # Destination rows max(dy,0)..h+min(dy,0) receive source rows max(-dy,0)..h-max(dy,0).
    if abs(dy) < h and abs(dx) < w:
        out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
            :, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
        ]
    return out


def random_shift(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each image by its own random (dy, dx), each uniform on [-max_shift, max_shift].

    images: (N, C, H, W). Returns (N, C, H, W), same dtype, zeros where the image
    moved away from the border. max_shift=0 returns `images` itself.
    """
    if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
        raise ValueError(f"random_shift: max_shift must be an integer >= 0, got {max_shift!r}")
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"random_shift: images must be (N, C, H, W), got shape {images.shape}")
    if max_shift >= min(images.shape[2:]):
        raise ValueError(f"random_shift: max_shift must be smaller than the image ({images.shape[2]}x"
                         f"{images.shape[3]}), got {max_shift}: larger shifts leave blank images")
    if max_shift == 0:
        return images
    dy = rng.integers(-max_shift, max_shift + 1, size=len(images))
    dx = rng.integers(-max_shift, max_shift + 1, size=len(images))
    return shift_images(images, dy, dx)
