"""Installed, not only editable: the wheel works from another folder and leaves nothing behind.

Builds the wheel, installs it into a fresh venv, runs `ack-numpy explore --save x.png`
from another folder (the default checkpoint is the package's own copy), checks that
nothing was written into site-packages and that MNIST would be looked for and downloaded
in the user data folder, never in the package's folder; then uninstalls and checks that
nothing of ack_numpy is left. The venv is made without pip and borrows this Python's
numpy and matplotlib through a .pth file (a path file: it adds a folder to sys.path;
.pth files inside that folder, such as an editable install's, are not read), so no
download is needed; this Python's pip installs into it (`pip --python`).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT


def pip(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout)


def build_wheel(folder: Path) -> Path:
    """Build from a copy of what the wheel is made of, so that setuptools' build/ and
    egg-info folders land in `folder`, not in the checkout."""
    source = folder / "source"
    shutil.copytree(PROJECT_ROOT / "ack_numpy", source / "ack_numpy",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    done = pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(folder), str(source))
    if done.returncode != 0:  # this Python lacks the build backend: let pip fetch it
        done = pip("wheel", "--no-deps", "-w", str(folder), str(source))
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = folder.glob("ack_numpy-*.whl")
    return wheel


def listing(folder: Path) -> dict[str, int]:
    """Every file under `folder` with its modification time, so a rewritten file counts too."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def site_packages(env_dir: Path) -> Path:
    (found,) = env_dir.glob("lib/python3*/site-packages")
    return found


@pytest.mark.slow
@pytest.mark.mnist
@pytest.mark.skipif(os.name != "posix", reason="the venv layout (bin/, lib/) of POSIX")
def test_the_installed_wheel_explores_from_another_folder_and_uninstalls_cleanly(tmp_path, mnist_path):
    wheel = build_wheel(tmp_path / "wheel")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    site = site_packages(env_dir)
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # numpy, matplotlib
    python = env_dir / "bin" / "python"
    done = pip("--python", str(python), "install", "--no-deps", "--no-index", str(wheel))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (site / "ack_numpy" / "assets" / "adaptive-lenet.npz").is_file(), "the trained model is not in the wheel"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ACK_MNIST_DIR")}
    env.update(MPLBACKEND="Agg", ACK_MNIST_DIR=str(mnist_path), XDG_DATA_HOME=str(tmp_path / "user-data"),
               MPLCONFIGDIR=str(tmp_path / "mpl"), PATH=f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    before = listing(site)
    done = subprocess.run(["ack-numpy", "explore", "--save", "x.png"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert (elsewhere / "x.png").stat().st_size > 10_000
    assert "wrote x.png" in done.stdout.splitlines()
    usage = subprocess.run(["ack-numpy", "--version"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert usage.stdout.strip() == "ack-numpy 0.1.0", usage.stdout + usage.stderr

    # Where MNIST would be looked for and downloaded, with no folder named (ACK_MNIST_DIR unset):
    # never in site-packages.
    code = ("from ack_numpy.assets import TRAINED_ADAPTIVE_LENET as T; from ack_numpy.data import mnist; "
            "print(mnist.download_folder()); print(*mnist.default_mnist_dirs(), sep='\\n'); print(T)")
    unnamed = {k: v for k, v in env.items() if k != "ACK_MNIST_DIR"}
    done = subprocess.run([str(python), "-c", code], cwd=elsewhere, env=unnamed, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    download, *searched, checkpoint = done.stdout.splitlines()
    assert Path(download) == (tmp_path / "user-data" / "ack_numpy" / "mnist").resolve()
    assert not any(Path(p).is_relative_to(site.resolve()) for p in searched)
    assert Path(checkpoint).is_relative_to(site.resolve())  # the installed copy, not this checkout's
    assert listing(site) == before, "running ack-numpy wrote into site-packages"

    done = pip("--python", str(python), "uninstall", "--yes", "ack_numpy")
    assert done.returncode == 0, done.stdout + done.stderr
    left = sorted(p.name for p in site.iterdir() if "ack" in p.name.lower())
    assert not left, f"uninstall left {left} in site-packages"
    assert not (env_dir / "bin" / "ack-numpy").exists()
