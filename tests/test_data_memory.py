"""Memory is bounded by what a genuine MNIST file needs, under a real memory limit.

A gzip "bomb" of about 2 MB whose IDX header declares almost 2 GiB of images (just under
the IDX reader's general cap) must be refused from its header, before the payload is
decompressed, by `load_mnist` and by `train`, in a process whose address space is
limited (resource.setrlimit) to an amount in which the genuine MNIST loads and trains.
"""
from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ack_numpy.data import MNIST_FILES
from ack_numpy.data.idx import MAX_PAYLOAD_BYTES

from conftest import PROJECT_ROOT
from conftest import mnist_dir as find_real_mnist
from idx_files import write_idx

resource = pytest.importorskip("resource")  # POSIX only

# Address-space limit of the child: python + numpy + ack_numpy take about 110 MB, the
# genuine training set about 340 MB at its peak; the bomb would need more than 2 GiB.
LIMIT_BYTES = 768 * 2**20
BOMB_IMAGES = MAX_PAYLOAD_BYTES // (28 * 28) - 1


def write_bomb(path: Path) -> None:
    """A gzip whose IDX header declares uint8 images (N, 28, 28) with N*784 just under
    MAX_PAYLOAD_BYTES, followed by that many zero bytes: a few MB on disk."""
    n = BOMB_IMAGES
    header = struct.pack(">BBBB3I", 0, 0, 0x08, 3, n, 28, 28)
    block = 64 * 2**20
    zeros = gzip.compress(bytes(block), compresslevel=9)      # one gzip member of 64 MiB of zeros
    payload = n * 28 * 28
    with open(path, "wb") as f:
        # gzip allows members one after another; a reader decompresses them as one stream
        f.write(gzip.compress(header + bytes(payload % block), compresslevel=9))
        for _ in range(payload // block):
            f.write(zeros)


@pytest.fixture(scope="module")
def bomb_dir(tmp_path_factory) -> Path:
    """An MNIST folder whose training images are the bomb (the other files are tiny fakes)."""
    directory = tmp_path_factory.mktemp("bomb")
    write_bomb(directory / f"{MNIST_FILES['train_images']}.gz")
    write_idx(directory / f"{MNIST_FILES['train_labels']}.gz", np.zeros(3, np.uint8))
    write_idx(directory / f"{MNIST_FILES['test_images']}.gz", np.zeros((3, 28, 28), np.uint8))
    write_idx(directory / f"{MNIST_FILES['test_labels']}.gz", np.zeros(3, np.uint8))
    return directory


def run_limited(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run python with `args` under an address-space limit of LIMIT_BYTES."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))

    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MPLBACKEND="Agg")
    env.pop("ACK_MNIST_DIR", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, preexec_fn=limit,
                          capture_output=True, text=True, timeout=300)


def test_the_bomb_is_small_on_disk_and_declares_almost_the_cap(bomb_dir):
    path = bomb_dir / f"{MNIST_FILES['train_images']}.gz"
    assert path.stat().st_size < 4 * 2**20
    with gzip.open(path) as f:
        n, h, w = struct.unpack(">3I", f.read(16)[4:])
    assert MAX_PAYLOAD_BYTES - 2 * 28 * 28 < n * h * w < MAX_PAYLOAD_BYTES


def test_load_mnist_refuses_the_bomb_from_its_header_under_a_memory_limit(bomb_dir, tmp_path):
    code = ("from ack_numpy.data import DataFormatError, load_mnist\n"
            "for verify in (True, False):\n"
            "    try:\n"
            f"        load_mnist('train', data_dir={str(bomb_dir)!r}, verify=verify)\n"
            "    except DataFormatError as err:\n"
            "        print(err)\n")
    done = run_limited(["-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and "MemoryError" not in done.stderr
    for line in lines:
        assert f"train-images-idx3-ubyte.gz: header declares shape ({BOMB_IMAGES}, 28, 28) of uint8" in line
        assert "more than MNIST's train-images-idx3-ubyte holds (47,040,000 bytes)" in line


def test_train_refuses_the_bomb_with_one_line_under_a_memory_limit(bomb_dir, tmp_path):
    done = run_limited(["-m", "ack_numpy", "train", "--data-dir", str(bomb_dir), "--out", str(tmp_path / "run"),
                        "--epochs", "1"], tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
    message = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(message) == 1 and "more than MNIST's train-images-idx3-ubyte holds" in message[0], done.stderr


@pytest.mark.mnist
def test_the_genuine_training_set_loads_within_the_same_limit(tmp_path):
    # The control: the limit above is not simply too small for anything.
    real = find_real_mnist()
    if real is None:
        pytest.skip("real MNIST not found")
    code = ("from ack_numpy.data import load_mnist\n"
            f"x, y = load_mnist('train', data_dir={str(real)!r})\n"
            "print(x.shape, y.shape)\n")
    done = run_limited(["-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "(60000, 1, 28, 28) (60000,)\n"
