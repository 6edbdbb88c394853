"""Tests for ack_numpy/data/batching.py: minibatches and random-shift augmentation."""

import numpy as np
import pytest

from ack_numpy.data import batches, random_shift, shift_image_loops, shift_images


def _dataset(n=23):
    """Images whose first pixel is their index, so a batch tells us which examples it holds."""
    images = np.zeros((n, 1, 4, 4), np.float32)
    images[:, 0, 0, 0] = np.arange(n)
    labels = np.arange(n) % 10
    return images, labels


def _epoch(images, labels, **kwargs):
    return [(x.copy(), y.copy()) for x, y in batches(images, labels, **kwargs)]


# ------------------------------------------------------------------ batches


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("batch_size", [1, 5, 23, 100])
def test_every_example_exactly_once(batch_size, shuffle):
    images, labels = _dataset(23)
    epoch = _epoch(images, labels, batch_size=batch_size, rng=np.random.default_rng(3), shuffle=shuffle)
    seen = np.concatenate([x[:, 0, 0, 0] for x, _ in epoch]).astype(int)
    assert sorted(seen) == list(range(23))
    # images and labels stay paired
    for x, y in epoch:
        np.testing.assert_array_equal(y, x[:, 0, 0, 0].astype(int) % 10)
    # sizes: full batches, then the remainder
    sizes = [len(y) for _, y in epoch]
    full, rest = divmod(23, batch_size)
    assert sizes == [batch_size] * full + ([rest] if rest else [])


def test_no_shuffle_keeps_order():
    images, labels = _dataset(10)
    epoch = _epoch(images, labels, batch_size=4, shuffle=False)
    np.testing.assert_array_equal(np.concatenate([y for _, y in epoch]), labels)


def test_drop_last():
    images, labels = _dataset(23)
    epoch = _epoch(images, labels, batch_size=5, rng=np.random.default_rng(0), drop_last=True)
    assert [len(y) for _, y in epoch] == [5, 5, 5, 5]
    seen = np.concatenate([x[:, 0, 0, 0] for x, _ in epoch]).astype(int)
    assert len(set(seen)) == 20  # no repeats; the 3 left over are skipped this epoch
    # exact multiple: nothing is dropped
    assert len(_epoch(images[:20], labels[:20], batch_size=5, shuffle=False, drop_last=True)) == 4


def test_shuffle_deterministic_per_seed():
    images, labels = _dataset(50)

    def order(seed):
        epoch = _epoch(images, labels, batch_size=7, rng=np.random.default_rng(seed))
        return np.concatenate([y for _, y in epoch]), np.concatenate([x[:, 0, 0, 0] for x, _ in epoch])

    a, b, c = order(1), order(1), order(2)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    # a shuffled epoch is not the stored order
    assert not np.array_equal(a[1], np.arange(50))


def test_successive_epochs_differ_with_one_generator():
    images, labels = _dataset(30)
    rng = np.random.default_rng(0)
    first = np.concatenate([y for _, y in batches(images, np.arange(30), 8, rng=rng)])
    second = np.concatenate([y for _, y in batches(images, np.arange(30), 8, rng=rng)])
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)


def test_batches_argument_errors():
    images, labels = _dataset(5)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            batches(images, labels, bad, shuffle=False)  # raises at the call, not when iterated
    with pytest.raises(ValueError, match="differ in length"):
        batches(images, labels[:4], 2, shuffle=False)
    with pytest.raises(ValueError, match="shuffle=True needs rng"):
        batches(images, labels, 2)


# ------------------------------------------------------------------ random_shift


def test_shift_preserves_shape_and_dtype():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64, np.uint8):
        images = rng.integers(0, 255, size=(6, 3, 9, 7)).astype(dtype)
        out = random_shift(images, 2, rng)
        assert out.shape == images.shape and out.dtype == images.dtype


def test_max_shift_zero_is_identity():
    images = np.random.default_rng(0).random((4, 1, 5, 5))
    assert random_shift(images, 0, np.random.default_rng(1)) is images


def test_single_bright_pixel_moves_at_most_max_shift():
    n, s = 200, 3
    images = np.zeros((n, 1, 28, 28), np.float32)
    images[:, 0, 14, 14] = 1.0
    out = random_shift(images, s, np.random.default_rng(0))
    assert np.all(out.reshape(n, -1).sum(axis=1) == 1.0)  # content preserved: still one pixel
    _, _, rows, cols = np.nonzero(out)
    dy, dx = rows - 14, cols - 14
    assert np.abs(dy).max() <= s and np.abs(dx).max() <= s
    # all (2s+1)^2 shifts occur, roughly uniformly
    counts = np.bincount((dy + s) * (2 * s + 1) + (dx + s), minlength=(2 * s + 1) ** 2)
    assert counts.min() > 0


def test_pixel_pushed_out_disappears():
    images = np.zeros((1, 1, 5, 5), np.float32)
    images[0, 0, 0, 0] = 1.0
    out = shift_images(images, np.array([-1]), np.array([0]))  # move up: off the top edge
    assert out.sum() == 0.0


def test_shift_direction_convention():
    images = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    out = shift_images(images, np.array([1]), np.array([-2]))  # down 1, left 2
    expected = np.array([[0, 0, 0, 0], [2, 3, 0, 0], [6, 7, 0, 0], [10, 11, 0, 0]], np.float64)
    np.testing.assert_array_equal(out[0, 0], expected)


def test_fast_shift_matches_reference():
    rng = np.random.default_rng(7)
    images = rng.random((40, 2, 6, 5))
    dy = rng.integers(-7, 8, size=40)  # includes shifts larger than the image
    dx = rng.integers(-6, 7, size=40)
    fast = shift_images(images, dy, dx)
    for i in range(40):
        np.testing.assert_array_equal(fast[i], shift_image_loops(images[i], int(dy[i]), int(dx[i])))


def test_random_shift_deterministic_and_does_not_modify_input():
    images = np.random.default_rng(0).random((8, 1, 6, 6))
    copy = images.copy()
    a = random_shift(images, 2, np.random.default_rng(5))
    b = random_shift(images, 2, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(images, copy)


def test_random_shift_argument_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="max_shift must be an integer >= 0"):
        random_shift(np.zeros((1, 1, 3, 3)), -1, rng)
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\)"):
        random_shift(np.zeros((3, 3)), 1, rng)
