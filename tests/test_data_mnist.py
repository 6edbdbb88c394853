"""Tests for ack_numpy/data/mnist.py: finding, verifying and loading MNIST.

Tests marked `mnist` use the real files: $ACK_MNIST_DIR, else ../shared/data/mnist
next to the project; they are skipped when neither holds the data.
"""

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from ack_numpy.data import (
    MNIST_FILES,
    DataFormatError,
    find_mnist_dir,
    load_mnist,
    read_idx,
    verify_mnist,
)
from ack_numpy.data import mnist

from conftest import mnist_dir as find_real_mnist
from idx_files import write_idx

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def real_mnist_dir() -> Path:
    directory = find_real_mnist()  # the one rule, in conftest.py
    if directory is None:
        pytest.skip("real MNIST not found: set ACK_MNIST_DIR to a folder with the four files")
    return directory


@pytest.fixture(scope="module")
def mnist_dir():
    return real_mnist_dir()


@pytest.fixture(scope="module")
def train(mnist_dir):
    return load_mnist("train", data_dir=mnist_dir)


@pytest.fixture(scope="module")
def t10k(mnist_dir):
    return load_mnist("test", data_dir=mnist_dir)


def _touch_mnist(directory: Path, gz=True) -> Path:
    """A directory that *looks* like MNIST (empty files): enough for find_mnist_dir."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES.values():
        (directory / (f"{name}.gz" if gz else name)).touch()
    return directory


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No env var, a fake source checkout as project root, a fake user data folder and a
    fake cwd, so only what a test creates exists."""
    monkeypatch.delenv("ACK_MNIST_DIR", raising=False)
    root, cwd = tmp_path / "root", tmp_path / "cwd"
    (root / "ack_numpy").mkdir(parents=True)
    (root / "setup.cfg").touch()
    cwd.mkdir()
    monkeypatch.setattr(mnist, "PROJECT_ROOT", root)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user-data"))
    monkeypatch.chdir(cwd)
    return root, cwd


def test_a_source_checkout_downloads_into_its_data_folder(isolated):
    root, _ = isolated
    assert mnist.download_folder() == (root / "data" / "mnist").resolve()


def test_an_installed_package_uses_the_user_data_folder_not_its_own(isolated, tmp_path):
    root, cwd = isolated
    (root / "setup.cfg").unlink()  # site-packages: the package's parent is no checkout
    user = (tmp_path / "user-data" / "ack_numpy" / "mnist").resolve()
    assert mnist.download_folder() == user
    assert mnist.default_mnist_dirs() == [user, (cwd / "data" / "mnist").resolve()]
    _touch_mnist(root / "data" / "mnist")  # never looked at outside a checkout
    in_user = _touch_mnist(user)
    assert find_mnist_dir() == in_user.resolve()


# ------------------------------------------------------------------ real data


@pytest.mark.mnist
def test_train_shapes_and_values(train):
    x, y = train
    assert x.shape == (60000, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (60000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert y.min() == 0 and y.max() == 9
    assert set(np.unique(y)) == set(range(10))
    # the published statistics of the training pixels (mean 0.1307, standard deviation 0.3081)
    assert abs(x.mean(dtype=np.float64) - 0.1307) < 1e-4
    assert abs(x.std(dtype=np.float64) - 0.3081) < 1e-4


@pytest.mark.mnist
def test_test_split_shapes_and_values(t10k):
    x, y = t10k
    assert x.shape == (10000, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (10000,) and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))


@pytest.mark.mnist
def test_read_idx_on_real_files(mnist_dir, train):
    raw = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")
    assert raw.shape == (60000, 28, 28) and raw.dtype == np.uint8
    # load_mnist is exactly pixel / 255 with a channel axis
    np.testing.assert_array_equal(train[0][:100, 0], raw[:100].astype(np.float32) / 255)
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and labels.dtype == np.uint8


@pytest.mark.mnist
def test_verify_mnist_ok(mnist_dir):
    assert verify_mnist(mnist_dir) == {name: "ok" for name in MNIST_FILES.values()}


@pytest.mark.mnist
def test_limit_takes_first_examples(mnist_dir, t10k):
    x, y = load_mnist("test", data_dir=mnist_dir, limit=25)
    assert x.shape == (25, 1, 28, 28) and y.shape == (25,)
    np.testing.assert_array_equal(x, t10k[0][:25])
    np.testing.assert_array_equal(y, t10k[1][:25])


@pytest.mark.mnist
def test_uncompressed_copy_loads_and_verifies(mnist_dir, tmp_path, t10k):
    """Checksums are of the content: a gunzipped copy passes too."""
    for key in ("test_images", "test_labels"):
        name = MNIST_FILES[key]
        (tmp_path / name).write_bytes(gzip.decompress((mnist_dir / f"{name}.gz").read_bytes()))
    for key in ("train_images", "train_labels"):
        shutil.copy(mnist_dir / f"{MNIST_FILES[key]}.gz", tmp_path)
    x, y = load_mnist("test", data_dir=tmp_path)
    np.testing.assert_array_equal(x, t10k[0])
    np.testing.assert_array_equal(y, t10k[1])
    assert verify_mnist(tmp_path)["t10k-images-idx3-ubyte"] == "ok"


@pytest.mark.mnist
def test_one_flipped_byte_fails_checksum(mnist_dir, tmp_path):
    for name in MNIST_FILES.values():
        if name != "t10k-images-idx3-ubyte":
            shutil.copy(mnist_dir / f"{name}.gz", tmp_path)
    content = bytearray(gzip.decompress((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes()))
    content[5000] ^= 0x01  # one pixel, one bit: still a well-formed IDX file
    bad = tmp_path / "t10k-images-idx3-ubyte"
    bad.write_bytes(bytes(content))

    expected = mnist.MNIST_SHA256["t10k-images-idx3-ubyte"]
    pattern = re.escape(str(bad)) + r": checksum mismatch.*is [0-9a-f]{64}, expected " + expected
    with pytest.raises(DataFormatError, match=pattern):
        load_mnist("test", data_dir=tmp_path)
    with pytest.raises(DataFormatError, match=pattern):
        verify_mnist(tmp_path)
    # verify=False skips the hash; the file is structurally fine, so it loads
    x, _ = load_mnist("test", data_dir=tmp_path, verify=False)
    assert x.shape == (10000, 1, 28, 28)
    # the training split does not touch the bad file
    assert load_mnist("train", data_dir=tmp_path, limit=3)[0].shape == (3, 1, 28, 28)


# ------------------------------------------------------------------ lookup order


def test_explicit_dir_beats_env_and_defaults(isolated, tmp_path, monkeypatch):
    root, cwd = isolated
    explicit = _touch_mnist(tmp_path / "explicit")
    monkeypatch.setenv("ACK_MNIST_DIR", str(_touch_mnist(tmp_path / "env")))
    _touch_mnist(root / "data" / "mnist")
    assert find_mnist_dir(explicit) == explicit
    assert find_mnist_dir(str(explicit)) == explicit


def test_env_beats_defaults(isolated, tmp_path, monkeypatch):
    root, cwd = isolated
    env = _touch_mnist(tmp_path / "env", gz=False)  # uncompressed names count too
    monkeypatch.setenv("ACK_MNIST_DIR", str(env))
    _touch_mnist(root / "data" / "mnist")
    assert find_mnist_dir() == env


def test_project_root_beats_cwd(isolated):
    root, cwd = isolated
    in_root = _touch_mnist(root / "data" / "mnist")
    _touch_mnist(cwd / "data" / "mnist")
    assert find_mnist_dir() == in_root.resolve()


def test_cwd_is_last_resort(isolated):
    root, cwd = isolated
    in_cwd = _touch_mnist(cwd / "data" / "mnist")
    assert find_mnist_dir() == in_cwd.resolve()


def test_incomplete_default_dir_is_skipped(isolated):
    root, cwd = isolated
    partial = root / "data" / "mnist"
    partial.mkdir(parents=True)
    (partial / "train-images-idx3-ubyte.gz").touch()
    in_cwd = _touch_mnist(cwd / "data" / "mnist")
    assert find_mnist_dir() == in_cwd.resolve()


def test_incomplete_explicit_dir_is_an_error(isolated, tmp_path):
    root, _ = isolated
    _touch_mnist(root / "data" / "mnist")  # must NOT be used instead
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    (explicit / "train-images-idx3-ubyte.gz").touch()
    (explicit / "t10k-labels-idx1-ubyte").touch()
    with pytest.raises(DataFormatError) as info:
        find_mnist_dir(explicit)
    message = str(info.value)
    assert str(explicit) in message and "given as data_dir" in message
    assert "train-labels-idx1-ubyte" in message and "t10k-images-idx3-ubyte" in message
    assert "train-images-idx3-ubyte[" not in message  # present files are not listed
    assert "--data-dir" in message and "python -m ack_numpy download" in message


def test_incomplete_env_dir_is_an_error(isolated, tmp_path, monkeypatch):
    root, _ = isolated
    _touch_mnist(root / "data" / "mnist")
    monkeypatch.setenv("ACK_MNIST_DIR", str(tmp_path / "does-not-exist"))
    with pytest.raises(DataFormatError, match=r"does-not-exist \(from \$ACK_MNIST_DIR\): no such folder"):
        find_mnist_dir()


def test_nothing_found_lists_places_and_remedies(isolated):
    root, cwd = isolated
    with pytest.raises(DataFormatError) as info:
        find_mnist_dir()
    message = str(info.value)
    assert str((root / "data" / "mnist").resolve()) in message
    assert str((cwd / "data" / "mnist").resolve()) in message
    for remedy in ("--data-dir", "ACK_MNIST_DIR", "python -m ack_numpy download"):
        assert remedy in message
    with pytest.raises(DataFormatError, match="MNIST not found"):
        load_mnist("test")


# ------------------------------------------------------------------ structure checks (synthetic files)


def _fake_split(directory: Path, images, labels, split="test"):
    directory.mkdir(parents=True, exist_ok=True)
    _touch_mnist(directory)  # the other split, so the directory counts as complete
    write_idx(directory / f"{MNIST_FILES[split + '_images']}.gz", images)
    write_idx(directory / f"{MNIST_FILES[split + '_labels']}.gz", labels)
    return directory


def test_synthetic_split_loads_scaled(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    labels = np.array([0, 9, 4], np.uint8)
    directory = _fake_split(tmp_path / "d", images.astype(np.uint8), labels)
    x, y = load_mnist("test", data_dir=directory, verify=False)
    np.testing.assert_allclose(x[:, 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, [0, 9, 4])
    # with verification on, the synthetic files are (rightly) rejected
    with pytest.raises(DataFormatError, match="checksum mismatch"):
        load_mnist("test", data_dir=directory)


@pytest.mark.parametrize(
    "images, labels, problem",
    [
        (np.zeros((3, 28, 28), np.uint8), np.zeros(4, np.uint8), "3 images but .* 4 labels"),
        (np.zeros((3, 27, 28), np.uint8), np.zeros(3, np.uint8), r"shape \(N, 28, 28\)"),
        (np.zeros((3, 28, 28), np.float32), np.zeros(3, np.uint8), "uint8 images"),
        (np.zeros((3, 28, 28), np.uint8), np.array([1, 10, 2], np.uint8), "0..9, found 10"),
        (np.zeros((3, 28, 28), np.uint8), np.zeros((3, 1), np.uint8), r"labels of shape \(N,\)"),
    ],
)
def test_structure_checks(tmp_path, images, labels, problem):
    directory = _fake_split(tmp_path / "d", images, labels)
    with pytest.raises(DataFormatError, match=problem):
        load_mnist("test", data_dir=directory, verify=False)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='split must be "train" or "test"'):
        load_mnist("validation", data_dir=tmp_path)
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        load_mnist("test", data_dir=tmp_path, limit=0)


def test_a_folder_named_like_an_mnist_file_is_reported_as_a_folder(tmp_path):
    directory = tmp_path / "d"
    _touch_mnist(directory)
    (directory / "t10k-labels-idx1-ubyte.gz").unlink()
    (directory / "t10k-labels-idx1-ubyte.gz").mkdir()
    with pytest.raises(DataFormatError, match=r"lacks MNIST files: t10k-labels-idx1-ubyte\[\.gz\] "
                                              r"\('t10k-labels-idx1-ubyte\.gz' is a folder, not a file\)"):
        find_mnist_dir(directory)
