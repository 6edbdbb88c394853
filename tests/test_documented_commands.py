"""Every command a reader is told to type still works, and none disappears unnoticed.

The commands are read from the text a reader reads: README.md, tutorials/README.md,
data/README.md (inline code, fenced and indented blocks), `train --help`'s epilogue and
the resume hint a stopped training prints. DOCUMENTED below is the explicit list of what
those texts must hold: a command that leaves a text, or a new command that is not in the
list, fails `test_the_documents_hold_exactly_the_listed_commands`, so that each one is
also run here. Each runs in a fresh process, in a shortened form where the text names the
option that shortens it (`--limit-train`, `--epochs 1`, `ACK_QUICK=1`, `--save` instead
of a window), with its output folders moved into a temporary folder. The README's "Two
commands" are typed verbatim by CI (`.ci/run`), not here.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

DOCUMENTS = ("README.md", "tutorials/README.md", "data/README.md")
STARTS = ("python -m ack_numpy", "python tutorials/", "python 0", "ACK_QUICK=1 python", "python -m pytest")

# What each text tells the reader to type (placeholders such as `...` and `COMMAND` left out).
DOCUMENTED = {
    "README.md": [
        "python -m ack_numpy explore --digit 3",
        "python -m ack_numpy download",
        "python -m ack_numpy train --model adaptive-lenet --epochs 10 --download --visualize",  # CI
        "python -m pytest",  # CI
        "python -m ack_numpy --help",
        "python -m ack_numpy train --help",
        "python -m ack_numpy study ledger --out README.md",
        "python -m ack_numpy bench",
        "python tutorials/03_adaptive_kernels.py",
        "python tutorials/check.py 03",
        "python tutorials/one_pixel.py",
        "python tutorials/make_notebooks.py",
    ],
    "tutorials/README.md": [
        "python -m ack_numpy download",
        "python tutorials/01_autograd.py",
        "python 03_adaptive_kernels.py",
        "ACK_QUICK=1 python tutorials/04_train_mnist.py",
        "python -m ack_numpy reproduce --seeds 10 --lenet-seeds 10 --epochs 10 --jobs 2 --out data/reproduction",
        "python tutorials/check.py 03",
        "python tutorials/check.py 03 --answers my_ex03.py",
        "python tutorials/check.py 03 --solutions",
        "python tutorials/one_pixel.py",
        "python tutorials/one_pixel.py --from-model",
        "python -m pytest tests/test_tutorials.py",
        "python tutorials/make_notebooks.py",
        "python tutorials/make_notebooks.py 03",
    ],
    "data/README.md": [
        "python -m ack_numpy reproduce --seeds 10 --lenet-seeds 10 --epochs 10 --jobs 2 --out data/reproduction",
        "python -m ack_numpy study convergence --seeds 3 --max-epochs 15 --lr 0.001 --jobs 2 --out data/convergence",
        "python -m ack_numpy study budget --seeds 3 --epochs 10 --reuse data/reproduction --jobs 2 --out data/budget-sweep",
        "python -m ack_numpy bench",
        "python -m ack_numpy download",
        "python -m ack_numpy visualize --checkpoint ack_numpy/assets/adaptive-lenet.npz --index 0 --out data/figures",
        "python -m ack_numpy visualize --help",
        "python -m ack_numpy explore --digit 3 --location 13 12 --every 3 --save data/figures/explorer.png "
        "--gif data/figures/explorer_sweep.gif",
        "python -m ack_numpy study lr-selection --jobs 2 --out data/lr-selection",
        "python -m ack_numpy study ablation --seeds 10 --selection data/lr-selection --jobs 2 --out data/ablation",
        "python -m ack_numpy study time-to-accuracy --seeds 10 --selection data/lr-selection --jobs 2 "
        "--out data/time-to-accuracy",
        "python -m ack_numpy study ledger --out README.md",
        "python -m ack_numpy study compute --out data/compute",
        "python -m ack_numpy train --model adaptive-lenet --epochs 5 --out /tmp/evo --visualize",
    ],
}
# Typed elsewhere: the README's two commands by CI, the test suite by itself, and
# tutorial 04 (it trains) in quick mode by tests/test_tutorials.py, as the text says.
TYPED_ELSEWHERE = {
    "python -m ack_numpy train --model adaptive-lenet --epochs 10 --download --visualize": ".ci/run",
    "python -m pytest": ".ci/run",
    "python -m pytest tests/test_tutorials.py": "the test suite itself",
    "ACK_QUICK=1 python tutorials/04_train_mnist.py": "tests/test_tutorials.py",
    # It rewrites the committed notebooks (minutes, in full mode): tests/test_notebooks.py
    # runs it with --quick --out on a tutorial, and its child process on a small one.
    "python tutorials/make_notebooks.py": "tests/test_notebooks.py",
    "python tutorials/make_notebooks.py 03": "tests/test_notebooks.py",
}
# Values that shorten a command, replacing the documented ones (each option is the
# command's own, documented in its --help as the quick check).
SHORTER = {"--seeds": "1", "--lenet-seeds": "1", "--epochs": "1", "--max-epochs": "1", "--jobs": "1"}
LIMITS = ["--limit-train", "256", "--limit-test", "128"]


def code_spans(text: str) -> list[str]:
    """Inline code (`...`, possibly wrapped over lines), fenced-block lines and indented-block lines."""
    spans = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S):
        spans += block.splitlines()
    text = re.sub(r"^```[a-z]*\n.*?^```", "", text, flags=re.M | re.S)
    spans += [line[4:] for line in text.splitlines() if line.startswith("    ") and line.strip()]
    spans += re.findall(r"`([^`]+)`", text)
    return spans


def documented_commands(text: str) -> list[str]:
    found = []
    for span in code_spans(text):
        line = " ".join(span.split("#", 1)[0].split())  # one line, no trailing comment
        line = re.sub(r"^(\$ )?(nice -n \d+ )?", "", line)  # a prompt, a lower priority
        for command in line.split(" && "):
            if command.startswith(STARTS) and "..." not in command and "COMMAND" not in command:
                found.append(command)
    return list(dict.fromkeys(found))


def test_the_documents_hold_exactly_the_listed_commands():
    for document, listed in DOCUMENTED.items():
        found = documented_commands((PROJECT_ROOT / document).read_text(encoding="utf-8"))
        gone = [c for c in listed if c not in found]
        new = [c for c in found if c not in listed]
        assert not gone, f"{document} no longer tells the reader to type {gone}: fix the text or DOCUMENTED"
        assert not new, f"{document} tells the reader to type {new}: add them to DOCUMENTED (and so run them)"


def test_the_reader_of_commands_finds_wrapped_and_indented_ones():
    text = "run `python -m ack_numpy bench --out\nx` then\n\n    python -m ack_numpy download\n\n`python x.py`"
    assert documented_commands(text) == ["python -m ack_numpy download", "python -m ack_numpy bench --out x"]


# ----------------------------------------------------------------------------- running them
def every_command() -> list[str]:
    commands = dict.fromkeys(c for listed in DOCUMENTED.values() for c in listed)
    return [c for c in commands if c not in TYPED_ELSEWHERE]


def shortened(command: str, tmp: Path) -> tuple[list[str], dict, Path, str]:
    """(argv, extra environment, working folder, stdin) of the shortened form of `command`."""
    words = shlex.split(command)
    if ">" in words:  # `> FILE`: the test reads the output itself
        words = words[: words.index(">")]
    env = {}
    while "=" in words[0]:  # VAR=value in front of the command
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    cwd, stdin = PROJECT_ROOT, ""
    argv = [sys.executable, *words[1:]]
    if words[1].startswith("0"):  # `python 03_...py`, typed inside tutorials/
        cwd = PROJECT_ROOT / "tutorials"
    if words[1].startswith(("tutorials/", "0")):
        env.update(ACK_QUICK="1", ACK_TUTORIAL_OUT=str(tmp / "tutorial-out"))
    if words[1:3] != ["-m", "ack_numpy"] or "--help" in words:
        if words[1] == "tutorials/one_pixel.py":
            stdin = "continue\ncontinue\n"
        if "--answers" in words:  # the reader's answers file: the solutions, here
            shutil.copy(PROJECT_ROOT / "tutorials" / "solutions" / "ex03.py", tmp / "my_ex03.py")
            argv[argv.index("my_ex03.py")] = str(tmp / "my_ex03.py")
        return argv, env, cwd, stdin
    command_name = words[3]
    if words[3:5] == ["study", "ledger"]:  # rewrites README.md from data/: typed in a copy of both
        shutil.copytree(PROJECT_ROOT / "data", tmp / "data", ignore=shutil.ignore_patterns("mnist"))
        shutil.copy(PROJECT_ROOT / "README.md", tmp / "README.md")
        return argv, env, tmp, stdin
    if words[3:5] == ["study", "compute"]:  # measuring takes minutes: redo the report of the committed measurement
        shutil.copytree(PROJECT_ROOT / "data" / "compute", tmp / "out")
        argv[argv.index("--out") + 1] = str(tmp / "out")
        return argv + ["--report-only"], env, cwd, stdin
    if "--reuse" in words or words[3:5] in (["study", "lr-selection"], ["study", "ablation"],
                                            ["study", "time-to-accuracy"]):
        # Reused runs must match the settings, and the other three train dozens of runs: keep the
        # settings, train nothing; write the report (or plan the runs: --print-commands).
        argv[argv.index("--out") + 1] = str(tmp / "out")
        quick = "--report-only" if "--reuse" in words else "--print-commands"
        return argv + ([quick] if "--print-commands" not in argv else []), env, cwd, stdin
    for i, word in enumerate(argv[:-1]):
        if word in SHORTER:
            argv[i + 1] = SHORTER[word]
        if word == "--out":
            argv[i + 1] = str(tmp / "out")
        if word in ("--save", "--gif"):  # the committed figures stay as they are
            argv[i + 1] = str(tmp / Path(argv[i + 1]).name)
    if command_name in ("reproduce", "study", "train"):
        argv += LIMITS
    if command_name == "reproduce":  # typed without them, it trains 30 runs at its defaults
        argv += [word for option in ("--seeds", "--lenet-seeds", "--epochs") if option not in argv
                 for word in (option, SHORTER[option])]
    if command_name == "explore" and "--save" not in argv:  # no screen in the tests
        argv += ["--save", str(tmp / "explore.png")]
    if command_name == "bench":
        argv += ["--tiny"]
    if command_name == "download":  # no internet in the tests: a folder that already holds MNIST
        dest = tmp / "mnist"
        shutil.copytree(os.environ["ACK_MNIST_DIR"], dest)
        argv += ["--dest", str(dest)]
    return argv, env, cwd, stdin


@pytest.fixture
def mnist_env(mnist_path, monkeypatch):
    monkeypatch.setenv("ACK_MNIST_DIR", str(mnist_path))


def run(argv: list[str], env: dict, cwd: Path, stdin: str = "", timeout: float = 600) -> subprocess.CompletedProcess:
    full = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", **env)
    return subprocess.run(argv, cwd=cwd, env=full, input=stdin, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.mnist
@pytest.mark.parametrize("command", every_command(), ids=lambda c: re.sub(r"\W+", "-", c)[:90])
def test_a_documented_command_works(command, tmp_path, mnist_env):
    if "study ablation" in command and not (PROJECT_ROOT / "data" / "lr-selection" / "results.json").is_file():
        pytest.skip("ablation reads the lr-selection record (data/README.md types lr-selection first), "
                    "which is not committed yet")
    argv, env, cwd, stdin = shortened(command, tmp_path)
    done = run(argv, env, cwd, stdin)
    said = done.stdout + done.stderr
    assert "Traceback" not in said, f"{command}\n{said}"
    if argv[1:2] == [str(Path("tutorials/check.py"))] and "--answers" not in argv:
        # The exercises are the reader's to write: unsolved, the checker says which is wrong.
        assert done.returncode in (0, 1) and "ex03" in said, f"{command}\n{said}"
    else:
        assert done.returncode == 0, f"{command} exited {done.returncode}\n{said}"


# ----------------------------------------------------------------------------- the resume hint
@pytest.mark.slow
@pytest.mark.mnist
@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_the_resume_hint_printed_on_ctrl_c_works_and_is_the_one_train_help_shows(tmp_path, mnist_env):
    from ack_numpy.train import RESUME_NOTES

    # Started as a reader would, without --out: the run goes to runs/lenet of the current folder.
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", ACK_PROGRESS_SECONDS="0")
    training = subprocess.Popen(
        [sys.executable, "-m", "ack_numpy", "train", "--model", "lenet", "--epochs", "2", "--limit-train", "20000",
         "--limit-test", "128"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    output = []
    for line in training.stdout:  # the first progress line: training has begun
        output.append(line)
        if "batch" in line or "epoch 1/2" in line:
            break
    training.send_signal(signal.SIGINT)
    output += training.stdout.readlines()
    assert training.wait(timeout=120) == 130, "".join(output)
    # "interrupted: saved epoch 1, batch B to runs/lenet/checkpoint.npz; continue with: COMMAND"
    hint = next((line.split("continue with:", 1)[1].strip() for line in output if "continue with:" in line), None)
    assert hint == "python -m ack_numpy train --resume runs/lenet", "".join(output)
    assert hint in RESUME_NOTES  # train --help's epilogue shows the same command
    done = run([sys.executable, *shlex.split(hint)[1:]], {}, tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert (tmp_path / "runs" / "lenet" / "checkpoint.npz").is_file()
