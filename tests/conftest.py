"""Shared test helpers: the MNIST location, and which test files check the maths.
(The gradient check is public: ack_numpy/gradcheck.py.)"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# The files that check the maths: `pytest -m engine` runs them alone, `pytest -m plumbing`
# the rest; a plain `pytest` runs both. A new file is plumbing unless it is named here.
ENGINE_FILES = {"test_autograd.py", "test_functional.py", "test_adaptive.py", "test_quadratic.py",
                "test_rungs.py", "test_nn_optim.py", "test_gradcheck.py"}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        item.add_marker("engine" if item.path.name in ENGINE_FILES else "plumbing")


def mnist_dir() -> Path | None:
    """ACK_MNIST_DIR if set, else the shared copy beside the project, else a downloaded copy
    in data/mnist; None if none exists (the tests that need MNIST then skip)."""
    candidates = [os.environ.get("ACK_MNIST_DIR"), PROJECT_ROOT.parent / "shared" / "data" / "mnist",
                  PROJECT_ROOT / "data" / "mnist"]
    for c in candidates:
        if c and Path(c, "train-images-idx3-ubyte.gz").exists():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    path = mnist_dir()
    if path is None:
        pytest.skip("real MNIST not found: set ACK_MNIST_DIR or put it at ../shared/data/mnist")
    return path
