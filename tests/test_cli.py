"""The command line: one clear line and a non-zero exit code for every mistake, no tracebacks;
Ctrl-C and kill -9 in the middle of a real `python -m ack_numpy train` process.

Argument and file errors are checked in-process through `main()` (the same code path as the
command, minus the interpreter start); the end-to-end behaviour (exit codes, signals, what
reaches the terminal) with real subprocesses.
"""
from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ack_numpy.checkpoint import load_checkpoint, save_checkpoint
from ack_numpy.cli import main
from ack_numpy.models import build_model
from ack_numpy.train import CHECKPOINT_NAME, read_metrics

PROJECT_ROOT = Path(__file__).resolve().parents[1]

posix_signals = pytest.mark.skipif(os.name != "posix", reason="sends POSIX signals (SIGINT, SIGKILL) to processes")


def environment(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ACK_PROGRESS_SECONDS"}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def run_cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m ack_numpy ARGS` in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "ack_numpy", *map(str, args)], cwd=PROJECT_ROOT,
                          env=environment(), capture_output=True, text=True, timeout=timeout)


def _as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


class Training:
    """A `python -m ack_numpy train ...` process whose output (stdout and stderr together) we can
    wait on line by line. Ctrl-C and SIGHUP are enabled in it as in a terminal, even if this test
    runs in a background job with SIGINT ignored or under nohup (a child would inherit that)."""

    def __init__(self, *args):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ack_numpy", "train", *map(str, args)], cwd=PROJECT_ROOT,
            env=environment(ACK_PROGRESS_SECONDS="0"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, preexec_fn=_as_in_a_terminal)
        self.lines: queue.Queue = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.process.kill()
                raise AssertionError(f"no {text!r} within {timeout} s; output so far:\n{''.join(self.output)}")
            if line is None:
                raise AssertionError(f"the process ended before printing {text!r}:\n{''.join(self.output)}")
            if text in line:
                return line

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        self.process.stdout.close()
        return code, "".join(self.output)


def one_error_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


# ----------------------------------------------------------------------------- help
def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("train", "evaluate", "download", "reproduce"):
        assert command in result.stdout
    result = run_cli("train", "--help")
    assert result.returncode == 0 and "--resume DIR" in result.stdout and "--overwrite" in result.stdout


# ----------------------------------------------------------------------------- argument errors
@pytest.mark.parametrize("args, message", [
    (["train", "--epochs", "0"], "argument --epochs: must be a whole number >= 1 (at most 100,000), got 0"),
    (["train", "--resume", "somewhere", "--epochs", "100000000000000000000"],
     "argument --epochs: must be a whole number >= 1 (at most 100,000), got 100000000000000000000"),
    (["train", "--data-dir", ""], "argument --data-dir: must be a folder name, got ''"),
    (["train", "--epochs", "-3"], "argument --epochs: must be a whole number >= 1 (at most 100,000), got -3"),
    (["train", "--epochs", "two"], "argument --epochs: must be a whole number, got 'two'"),
    (["train", "--model", "resnet"], "argument --model: invalid choice: 'resnet' (choose from 'lenet', 'adaptive-lenet'"),
    (["train", "--lr", "0"], "argument --lr: must be a positive number, got 0.0"),
    (["train", "--lr", "abc"], "argument --lr: must be a number, got 'abc'"),
    (["train", "--lr", "nan"], "argument --lr: must be a positive number, got nan"),
    (["train", "--lr", "inf"], "argument --lr: must be a positive number, got inf"),
    (["train", "--limit-train", "0"], "argument --limit-train: must be a whole number >= 1, got 0"),
    (["train", "--max-shift", "1000000"], "argument --max-shift: must be a whole number from 0 to 14 (half the 28-pixel image), got 1000000"),
    (["train", "--max-shift", "15"], "argument --max-shift: must be a whole number from 0 to 14"),
    (["train", "--seed", "-1"], "argument --seed: must be a whole number >= 0, got -1"),
    (["train", "--momentum", "2"], "argument --momentum: must be a number in [0, 1), got 2.0"),
    (["train", "--weight-decay", "nan"], "argument --weight-decay: must be a number >= 0, got nan"),
    (["train", "--holdout", "-2"], "argument --holdout: must be a whole number >= 0, got -2"),
    (["train", "--resume", "somewhere", "--epochs", "0"], "argument --epochs: must be a whole number >= 1 (at most 100,000), got 0"),
    (["train", "--optimizer", "rmsprop"], "argument --optimizer: invalid choice: 'rmsprop'"),
    (["train", "--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["evaluate"], "the following arguments are required: --checkpoint"),
    (["fly"], "invalid choice: 'fly'"),
    ([], "the following arguments are required: command"),
])
def test_argument_errors_name_the_problem(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written, not even runs/MODEL
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ")
    assert message in err.strip().splitlines()[-1]
    assert list(tmp_path.iterdir()) == []


def test_argument_errors_end_to_end():
    result = run_cli("train", "--epochs", "0")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.endswith("error: argument --epochs: must be a whole number >= 1 (at most 100,000), got 0")


def test_help_shows_every_setting_with_its_default_from_train_config():
    from dataclasses import fields

    from ack_numpy.train import RESUME_NOTES, TrainConfig

    result = run_cli("train", "--help")
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for f in fields(TrainConfig):
        if "help" in f.metadata:
            default = f.metadata.get("default_text", f.default)
            assert f"{' '.join(f.metadata['help'].split())} (default {default})" in text, f.name
            assert "--" + f.name.replace("_", "-") in text
    assert " ".join(RESUME_NOTES.split()) in text  # the interrupt and resume notes, as the epilog


def test_missing_data_folder(tmp_path, capsys):
    assert main(["train", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"{tmp_path / 'nowhere'}" in line and "no such folder" in line and "--data-dir" in line
    assert not (tmp_path / "run").exists()  # a failed start leaves no empty run folder behind


def test_train_refuses_to_overwrite_a_checkpoint(tmp_path, capsys):
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"the previous run")
    assert main(["train", "--out", str(tmp_path)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"--resume {tmp_path}" in line and "--overwrite" in line
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == b"the previous run"


def test_resume_without_a_checkpoint(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")  # a run killed before its first checkpoint
    assert main(["train", "--resume", str(tmp_path)]) == 1
    assert one_error_line(capsys.readouterr().err).startswith(
        f"error: cannot resume: {tmp_path} has no {CHECKPOINT_NAME}")


def test_resume_does_not_silently_ignore_new_settings(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path), "--lr", "0.1", "--model", "lenet"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "leave out --model, --lr" in line and "only --data-dir and --epochs" in line


# ----------------------------------------------------------------------------- evaluate
def save_untrained(path: Path, name: str = "adaptive-lenet") -> Path:
    return save_checkpoint(path, build_model(name, seed=0).state_dict(), {},
                           {"model": name, "model_options": {}, "epoch": 0})


@pytest.mark.mnist
def test_evaluate_prints_accuracy_and_parameter_count(mnist_path, tmp_path, capsys):
    path = save_untrained(tmp_path / CHECKPOINT_NAME)
    assert main(["evaluate", "--checkpoint", str(path), "--data-dir", str(mnist_path), "--limit-test", "200"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "model adaptive-lenet (6,514 parameters), trained 0 epochs"
    assert lines[1].startswith("test accuracy 0.") and "/200), test loss" in lines[1]


def bad_checkpoints(folder: Path) -> dict[str, Path]:
    good = save_untrained(folder / "good.npz").read_bytes()
    files = {
        "truncated": good[: len(good) // 2],
        "random bytes": np.random.default_rng(0).bytes(3000),
        "empty": b"",
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name.replace(' ', '_')}.npz"
        paths[name].write_bytes(data)
    paths["no meta"] = folder / "no_meta.npz"
    np.savez(paths["no meta"], weights=np.zeros(3))
    paths["wrong format version"] = save_checkpoint(folder / "v99.npz", {}, {}, {"model": "lenet", "format_version": 99})
    paths["weights of another model"] = save_checkpoint(folder / "other.npz", build_model("lenet", seed=0).state_dict(),
                                                        {}, {"model": "adaptive-lenet"})
    paths["missing"] = folder / "missing.npz"
    paths["a folder"] = folder
    return paths


def test_evaluate_bad_checkpoints_give_one_line(tmp_path, capsys):
    for kind, path in bad_checkpoints(tmp_path).items():
        assert main(["evaluate", "--checkpoint", str(path)]) == 1, kind
        line = one_error_line(capsys.readouterr().err)
        assert str(path) in line, (kind, line)


@pytest.mark.parametrize("kind", ["truncated", "weights of another model"])
def test_evaluate_bad_checkpoint_end_to_end(kind, tmp_path):
    path = bad_checkpoints(tmp_path)[kind]
    result = run_cli("evaluate", "--checkpoint", path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert str(path) in one_error_line(result.stderr)


# ----------------------------------------------------------------------------- real processes
@posix_signals
@pytest.mark.mnist
def test_ctrl_c_saves_says_how_to_resume_and_resume_finishes(mnist_path, tmp_path):
    out = tmp_path / "run"
    run = Training("--model", "adaptive-lenet", "--limit-train", "1000", "--limit-test", "100",
                   "--batch-size", "32", "--data-dir", mnist_path, "--out", out)
    run.wait_for("epoch 1/1  batch 2/32")  # training is under way
    run.process.send_signal(signal.SIGINT)
    code, output = run.finish()
    assert code == 130, output
    assert "Traceback" not in output and "interrupted (Ctrl-C)" not in output  # the loop said it all
    resume_lines = [line for line in output.splitlines() if "--resume" in line]
    assert len(resume_lines) == 1, output
    assert resume_lines[0].startswith("interrupted: saved epoch 1, batch ")
    assert resume_lines[0].endswith(f"; continue with: python -m ack_numpy train --resume {out}")
    _, _, meta = load_checkpoint(out / CHECKPOINT_NAME)
    assert meta["epoch"] == 0 and 2 <= meta["batch"] < 32
    assert f"batch {meta['batch']} to" in resume_lines[0]

    result = run_cli("train", "--resume", out)
    assert result.returncode == 0, result.stderr
    first_line = result.stdout.splitlines()[0]
    assert first_line == f"resuming adaptive-lenet from {out / CHECKPOINT_NAME}: epoch 1, batch {meta['batch']}"
    assert [row["epoch"] for row in read_metrics(out / "metrics.csv")] == [1]


@posix_signals
@pytest.mark.mnist
def test_kill_9_loses_at_most_the_current_epoch(mnist_path, tmp_path):
    out = tmp_path / "run"
    args = ("--model", "adaptive-lenet", "--epochs", "2", "--limit-train", "320", "--limit-test", "100",
            "--batch-size", "32", "--data-dir", mnist_path, "--out", out)

    # Killed in the first epoch: no checkpoint yet, and resume says so in one line.
    run = Training(*args)
    run.wait_for("epoch 1/2  batch 3/10")
    run.process.send_signal(signal.SIGKILL)
    assert run.finish()[0] == -signal.SIGKILL
    assert not (out / CHECKPOINT_NAME).exists()
    result = run_cli("train", "--resume", out)
    assert result.returncode == 1 and "has no checkpoint.npz" in one_error_line(result.stderr)

    # Killed in the second epoch: the checkpoint of epoch 1 is there, whole, and resume finishes the run.
    run = Training(*args)
    run.wait_for("epoch 1/2: train loss")
    run.wait_for("epoch 2/2  batch 3/10")
    run.process.send_signal(signal.SIGKILL)
    assert run.finish()[0] == -signal.SIGKILL
    _, _, meta = load_checkpoint(out / CHECKPOINT_NAME)
    assert (meta["epoch"], meta["batch"], len(meta["metrics"])) == (1, 0, 1)
    result = run_cli("train", "--resume", out)
    assert result.returncode == 0, result.stderr
    assert [row["epoch"] for row in read_metrics(out / "metrics.csv")] == [1, 2]


@pytest.mark.mnist
def test_divergence_exits_with_one_line(mnist_path, tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--lr", "1e6", "--optimizer", "sgd", "--limit-train", "320", "--limit-test", "100",
                     "--data-dir", mnist_path, "--out", out)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    line = one_error_line(result.stderr)
    assert line.startswith("error: training diverged at epoch 1, batch ")
    assert "try a smaller learning rate than 1e+06" in line
    assert not (out / CHECKPOINT_NAME).exists()


def test_a_path_that_cannot_be_written_names_the_path(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["download", "--dest", str(blocker / "mnist")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {blocker}: is a file, not a folder") and "check the paths" in line


# ----------------------------------------------------------------------------- before the loop
def test_ctrl_c_before_the_training_loop_says_so(monkeypatch, tmp_path, capsys):
    import ack_numpy.train as train_module

    def interrupted_while_loading(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(train_module, "find_mnist_dir", lambda *args: tmp_path)
    monkeypatch.setattr(train_module, "load_mnist", interrupted_while_loading)
    out = tmp_path / "new" / "deeper" / "run"
    assert main(["train", "--out", str(out), "--data-dir", str(tmp_path)]) == 130
    assert capsys.readouterr().err.strip() == "interrupted (Ctrl-C)"
    assert not (tmp_path / "new").exists()  # the folders made for the run are taken away again


def test_an_output_folder_that_cannot_be_made_fails_before_the_data_is_loaded(monkeypatch, tmp_path, capsys):
    import ack_numpy.train as train_module

    def must_not_load(*args, **kwargs):
        raise AssertionError("MNIST was loaded before the output folder was checked")
    monkeypatch.setattr(train_module, "load_mnist", must_not_load)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["train", "--out", str(blocker / "run"), "--data-dir", str(tmp_path)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {blocker}: is a file, not a folder")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions, not root")
def test_an_output_folder_that_cannot_be_written_fails_before_the_data_is_loaded(monkeypatch, tmp_path, capsys):
    import ack_numpy.train as train_module

    def must_not_load(*args, **kwargs):
        raise AssertionError("MNIST was loaded before the output folder was checked")
    monkeypatch.setattr(train_module, "load_mnist", must_not_load)
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)
    assert main(["train", "--out", str(read_only), "--data-dir", str(tmp_path)]) == 1
    assert one_error_line(capsys.readouterr().err).startswith(f"error: {read_only}: cannot write in this folder")


# ----------------------------------------------------------------------------- SIGTERM, SIGHUP
@posix_signals
@pytest.mark.mnist
@pytest.mark.parametrize("signum, name, code", [(signal.SIGTERM, "SIGTERM", 143), (signal.SIGHUP, "SIGHUP", 129)])
def test_sigterm_and_sighup_save_say_so_and_exit_with_128_plus_the_signal(signum, name, code, mnist_path, tmp_path):
    out = tmp_path / "run"
    run = Training("--model", "lenet", "--limit-train", "640", "--limit-test", "50", "--batch-size", "32",
                   "--data-dir", mnist_path, "--out", out)
    run.wait_for("epoch 1/1  batch 2/20")
    run.process.send_signal(signum)
    code_, output = run.finish()
    assert code_ == code, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "--resume" in line]
    assert len(lines) == 1 and lines[0].startswith(f"stopped by {name}: saved epoch 1, batch "), output
    assert lines[0].endswith(f"; continue with: python -m ack_numpy train --resume {out}")
    _, _, meta = load_checkpoint(out / CHECKPOINT_NAME)
    assert meta["epoch"] == 0 and 2 <= meta["batch"] < 20 and f"batch {meta['batch']} to" in lines[0]
    assert not (out / ".lock").exists()
    result = run_cli("train", "--resume", out)
    assert result.returncode == 0, result.stderr
    assert [row["epoch"] for row in read_metrics(out / "metrics.csv")] == [1]


@posix_signals
@pytest.mark.mnist
def test_sighup_is_left_alone_under_nohup(mnist_path, tmp_path):
    """A run started with SIGHUP ignored (nohup) goes on when the terminal closes."""
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "ack_numpy", "train", "--model", "lenet", "--limit-train", "96", "--limit-test", "20",
         "--batch-size", "32", "--epochs", "2", "--data-dir", str(mnist_path), "--out", str(out)],
        cwd=PROJECT_ROOT, env=environment(ACK_PROGRESS_SECONDS="0"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    for line in process.stdout:
        if "batch 1/3" in line:
            process.send_signal(signal.SIGHUP)
            break
    rest = process.stdout.read()
    assert process.wait(timeout=120) == 0, rest
    assert [row["epoch"] for row in read_metrics(out / "metrics.csv")] == [1, 2]


# ----------------------------------------------------------------------------- one writer per run folder
@posix_signals
@pytest.mark.mnist
def test_a_second_run_into_the_same_out_is_refused_and_a_dead_owners_lock_is_taken_over(mnist_path, tmp_path):
    out = tmp_path / "run"
    first = Training("--model", "lenet", "--limit-train", "3200", "--limit-test", "50", "--batch-size", "32",
                     "--data-dir", mnist_path, "--out", out)
    first.wait_for("epoch 1/1  batch 2/100")
    assert (out / ".lock").read_text() == f"{first.process.pid}\n"

    second = run_cli("train", "--model", "lenet", "--limit-train", "64", "--data-dir", mnist_path, "--out", out)
    assert second.returncode == 1, second.stderr
    assert one_error_line(second.stderr) == (f"error: {out} is in use by another training run "
                                             f"(pid {first.process.pid}); wait for it to finish, or choose another --out")
    first.process.send_signal(signal.SIGKILL)  # its lock file stays behind, with its pid in it
    assert first.finish()[0] == -signal.SIGKILL
    assert (out / ".lock").exists()

    third = run_cli("train", "--model", "lenet", "--limit-train", "64", "--limit-test", "20", "--data-dir",
                    mnist_path, "--out", out)
    assert third.returncode == 0, third.stderr
    assert not (out / ".lock").exists()  # a finished run takes its lock away
    assert json.loads((out / "config.json").read_text())["limit_train"] == 64
    assert load_checkpoint(out / CHECKPOINT_NAME)[2]["config"]["limit_train"] == 64


@posix_signals
@pytest.mark.mnist
def test_a_resume_while_the_run_goes_on_is_refused(mnist_path, tmp_path):
    out = tmp_path / "run"
    args = ("--model", "lenet", "--epochs", "10", "--limit-train", "1600", "--limit-test", "20", "--batch-size", "32",
            "--data-dir", mnist_path, "--out", out)
    first = Training(*args)
    first.wait_for("epoch 1/10: train loss")  # a checkpoint exists from here on
    resumed = run_cli("train", "--resume", out)
    assert resumed.returncode == 1 and "is in use by another training run" in one_error_line(resumed.stderr)
    overwriting = run_cli(*("train", "--overwrite") + args[:-2] + ("--out", out))
    assert overwriting.returncode == 1 and "is in use by another training run" in one_error_line(overwriting.stderr)
    assert first.process.poll() is None, "the first run ended before the test was done"
    first.process.send_signal(signal.SIGKILL)
    first.finish()
    assert load_checkpoint(out / CHECKPOINT_NAME)[2]["config"]["epochs"] == 10  # the refused runs changed nothing


# ----------------------------------------------------------------------------- closed stdout
@pytest.mark.mnist
@pytest.mark.parametrize("stderr_too", [False, True], ids=["stdout", "stdout-and-stderr"])
def test_train_into_head_dash_1_keeps_training(stderr_too, mnist_path, tmp_path):
    """`train | head -1` (and `2>&1 | head -1`): the reader goes away after one line; the run
    finishes and saves everything, with no 'Broken pipe' blamed on the paths."""
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "ack_numpy", "train", "--model", "lenet", "--epochs", "2", "--limit-train", "96",
         "--limit-test", "20", "--batch-size", "32", "--data-dir", str(mnist_path), "--out", str(out)],
        cwd=PROJECT_ROOT, env=environment(ACK_PROGRESS_SECONDS="0"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if stderr_too else subprocess.PIPE)
    assert process.stdout.readline()  # what head -1 reads
    process.stdout.close()            # head exits
    code = process.wait(timeout=120)
    errors = b"" if stderr_too else process.stderr.read()
    assert code == 0, errors
    assert b"Broken pipe" not in errors and b"Traceback" not in errors and b"Exception ignored" not in errors
    assert [row["epoch"] for row in read_metrics(out / "metrics.csv")] == [1, 2]
    assert load_checkpoint(out / CHECKPOINT_NAME)[2]["epoch"] == 2


def test_evaluate_into_a_closed_pipe_exits_quietly(tmp_path):
    path = save_untrained(tmp_path / CHECKPOINT_NAME)
    result = subprocess.run(f"{shlex.quote(sys.executable)} -m ack_numpy evaluate --checkpoint {path} "
                            f"--data-dir {tmp_path / 'no-mnist'} | true", shell=True, cwd=PROJECT_ROOT,
                            env=environment(), capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr and "Broken pipe" not in result.stderr


# ----------------------------------------------------------------------------- paths in messages
def test_paths_in_messages_are_quoted_when_a_space_would_hide(tmp_path, capsys):
    nowhere = f"{tmp_path / 'run'} "  # a stray trailing space
    assert main(["train", "--resume", nowhere]) == 1
    assert f"cannot resume: '{nowhere}' does not exist" in one_error_line(capsys.readouterr().err)
    assert main(["evaluate", "--checkpoint", f"{tmp_path / CHECKPOINT_NAME} "]) == 1
    assert one_error_line(capsys.readouterr().err) == f"error: checkpoint not found: '{tmp_path / CHECKPOINT_NAME} '"


def test_out_pointing_to_a_file_says_so(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert main(["train", "--out", str(a_file), "--data-dir", str(tmp_path)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {a_file}: is a file, not a folder (check the paths given")
    assert a_file.read_text() == "mine"


@posix_signals
def test_sigterm_while_the_data_loads_stops_at_once_and_says_so(monkeypatch, tmp_path, capsys):
    import ack_numpy.train as train_module

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as in a fresh process

    def terminated_while_loading(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the loading")
    monkeypatch.setattr(train_module, "find_mnist_dir", lambda *args: tmp_path)
    monkeypatch.setattr(train_module, "load_mnist", terminated_while_loading)
    out = tmp_path / "new" / "run"
    try:
        assert main(["train", "--out", str(out), "--data-dir", str(tmp_path)]) == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    captured = capsys.readouterr()
    assert captured.out.strip() == "stopped by SIGTERM before training began: nothing was saved"
    assert captured.err == ""
    assert not (tmp_path / "new").exists()  # the folders made for the run (and their lock) are gone


def test_the_usage_line_names_the_program_as_it_was_started():
    from ack_numpy import __version__
    from ack_numpy.cli import program_name

    assert program_name("/somewhere/venv/bin/ack-numpy") == "ack-numpy"
    assert program_name(str(PROJECT_ROOT / "ack_numpy" / "__main__.py")) == "python -m ack_numpy"
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"python -m ack_numpy {__version__}", result.stdout
    assert run_cli("train", "--help").stdout.startswith("usage: python -m ack_numpy train ")


def test_the_default_run_folder_is_filled_in_before_anything_uses_it():
    from ack_numpy.train import TrainConfig

    assert TrainConfig(model="adaptive-lenet").out == "runs/adaptive-lenet"
    assert TrainConfig(model="lenet", out="elsewhere").out == "elsewhere"


@pytest.mark.slow
@pytest.mark.mnist
def test_train_visualize_without_out_draws_into_the_default_folder(tmp_path, mnist_path):
    # The newcomer's command, shortened: no --out, so the run and its figures go to runs/adaptive-lenet.
    result = subprocess.run([sys.executable, "-m", "ack_numpy", "train", "--model", "adaptive-lenet",
                             "--limit-train", "256", "--limit-test", "128", "--visualize"], cwd=tmp_path,
                            env=environment(ACK_MNIST_DIR=str(mnist_path), MPLBACKEND="Agg"),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    figures = tmp_path / "runs" / "adaptive-lenet" / "figures"
    for name in ("kernel_field", "q_filters", "digits", "adaptation", "feature_maps", "curves", "kernel_evolution"):
        assert (figures / f"{name}.png").stat().st_size > 1000, name
