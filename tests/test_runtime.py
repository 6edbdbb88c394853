"""runtime.use_blas_threads: one BLAS thread unless the user asks for more (--threads, or a
thread variable set before Python started). Each case in a fresh process: the BLAS reads its
environment once, when NumPy loads it."""
import os
import subprocess
import sys

import pytest

from ack_numpy import runtime
from conftest import PROJECT_ROOT

# The count OpenBLAS reports after use_blas_threads(ARG), through its own getter.
REPORT = """
import sys
from ack_numpy.runtime import OPENBLAS_SETTERS, _loaded_openblas, use_blas_threads
print(use_blas_threads(None if sys.argv[1] == "None" else int(sys.argv[1])))
for lib in _loaded_openblas():
    for name in OPENBLAS_SETTERS:
        getter = getattr(lib, name.replace("set_num", "get_num"), None)
        if getter is not None and hasattr(lib, name):
            print(getter())
            raise SystemExit
print("no OpenBLAS")
"""


def threads_after(argument, **env_update) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in runtime.THREAD_VARIABLES}
    env.update(env_update)
    done = subprocess.run([sys.executable, "-c", REPORT, str(argument)], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return tuple(done.stdout.split())


def test_the_choice_one_thread_unless_asked(monkeypatch):
    for name in runtime.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert runtime.chosen_blas_threads(None) == 1
    assert runtime.chosen_blas_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert runtime.chosen_blas_threads(None) is None  # the user's own setting stands
    assert runtime.chosen_blas_threads(1) == 1  # --threads wins over it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds OpenBLAS through /proc/self/maps")
def test_openblas_uses_the_count_chosen():
    if threads_after(None)[-1] == "no OpenBLAS":
        pytest.skip("this NumPy is not built with OpenBLAS")
    assert threads_after(None) == ("True", "1")
    assert threads_after(2) == ("True", "2")
    assert threads_after(None, OPENBLAS_NUM_THREADS="2") == ("False", "2")


def test_every_command_but_bench_sets_one_thread_in_its_own_process(monkeypatch, tmp_path, capsys):
    """A study's report re-evaluates each checkpoint in the parent process: with the one
    thread its runs were trained with, not the BLAS default."""
    from ack_numpy import cli

    calls = []
    monkeypatch.setattr(cli, "use_blas_threads", lambda threads=None: calls.append(threads))
    assert cli.main(["reproduce", "--print-commands", "--seeds", "1", "--lenet-seeds", "1",
                     "--out", str(tmp_path / "study")]) == 0
    assert calls == [None]
    monkeypatch.setattr(cli, "cmd_bench", lambda args: 0)
    assert cli.main(["bench"]) == 0 and calls == [None]
