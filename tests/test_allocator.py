"""allocator.keep_freed_memory: freed arrays are reused instead of mapped afresh (glibc only)."""
import os
import platform
import subprocess
import sys

import pytest

from ack_numpy.runtime import keep_freed_memory
from conftest import PROJECT_ROOT

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# One adaptive layer's forward+backward on the bench's shape A, 5 times after a warm-up:
# arrays of 1-4 MiB made and freed, as in training. Prints the page faults per call and
# some bytes of the gradients.
FAULTS_PER_CALL = """
import resource
import numpy as np
from ack_numpy import Tensor
from ack_numpy.runtime import keep_freed_memory
from ack_numpy.functional import adaptive_conv2d
print(keep_freed_memory())
rng = np.random.default_rng(0)
x = Tensor(rng.random((64, 1, 28, 28), dtype=np.float32), requires_grad=True)
Q = Tensor(rng.random((8, 25, 25), dtype=np.float32), requires_grad=True)
def call():
    x.grad = Q.grad = None
    adaptive_conv2d(x, Q).sum().backward()
call()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    call()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
print(x.grad.tobytes().hex()[:64], Q.grad.tobytes().hex()[-64:])
"""


def faults_per_call(switch: str) -> tuple[str, int, str]:
    env = {**os.environ, "ACK_KEEP_FREED_MEMORY": switch}
    done = subprocess.run([sys.executable, "-c", FAULTS_PER_CALL], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    in_force, faults, gradient_bytes = done.stdout.split(maxsplit=2)
    return in_force, int(faults), gradient_bytes


@glibc_only
def test_freed_memory_is_reused_instead_of_mapped_again():
    kept, faults_kept, gradients_kept = faults_per_call("1")
    default, faults_default, gradients_default = faults_per_call("0")
    assert (kept, default) == ("True", "False")
    assert gradients_kept == gradients_default  # where the memory comes from changes no number
    # With the setting, the pages of one call's arrays serve the next one; with glibc's
    # defaults (about 5,500 faults per call on the development machine) they are
    # given back to the OS and mapped again.
    assert faults_kept < 300
    assert faults_kept * 10 < faults_default


@pytest.mark.parametrize("word", ["0", "false", "No", " off "])
def test_the_switch_turns_it_off(word, monkeypatch):
    monkeypatch.setenv("ACK_KEEP_FREED_MEMORY", word)
    assert keep_freed_memory() is False


@pytest.mark.mnist
def test_the_train_command_sets_the_allocator_and_the_library_call_does_not(mnist_path, tmp_path, monkeypatch):
    """A tutorial or notebook that calls train() changes no process setting it did not ask
    for; the `train` command, a process that trains, keeps freed memory (runtime.py)."""
    import ack_numpy.cli as cli
    import ack_numpy.runtime as runtime
    from ack_numpy.train import TrainConfig, train

    calls = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append("set") or True)
    settings = dict(model="plain-small", epochs=1, data_dir=str(mnist_path), limit_train=64, limit_test=32)
    train(TrainConfig(**settings, out=str(tmp_path / "library")), log=lambda m: None)
    assert calls == []
    assert cli.main(["train", "--model", "plain-small", "--epochs", "1", "--data-dir", str(mnist_path),
                     "--limit-train", "64", "--limit-test", "32", "--out", str(tmp_path / "command")]) == 0
    assert calls == ["set"]
