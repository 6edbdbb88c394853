"""The small hostile cases of the command line: each gets one clear line, the same
wording for the same problem in every command, and nothing saved is lost."""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from ack_numpy.assets import TRAINED_ADAPTIVE_LENET
from ack_numpy.cli import main
from ack_numpy.runs import RunLock
from ack_numpy.train import CHECKPOINT_NAME


def one_error_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


# ----------------------------------------------------------------------------- a file where a folder goes
def commands_given_a_file(a_file: Path) -> dict[str, list[str]]:
    return {
        "train": ["train", "--out", str(a_file), "--data-dir", str(a_file.parent)],
        "download": ["download", "--dest", str(a_file)],
        "visualize": ["visualize", "--checkpoint", str(TRAINED_ADAPTIVE_LENET), "--out", str(a_file)],
        "reproduce": ["reproduce", "--out", str(a_file), "--report-only"],
        "study": ["study", "budget", "--out", str(a_file), "--report-only"],
        "train under a file": ["train", "--out", str(a_file / "run"), "--data-dir", str(a_file.parent)],
        "download under a file": ["download", "--dest", str(a_file / "mnist")],
        "explore --save under a file": ["explore", "--save", str(a_file / "x.png")],
        "explore --gif under a file": ["explore", "--gif", str(a_file / "x.gif")],
        "bench --json under a file": ["bench", "--quick", "--json", str(a_file / "b.json")],
        "visualize --runs": ["visualize", "--runs", str(a_file), "--out", str(a_file.parent / "figures")],
    }


@pytest.mark.parametrize("command", list(commands_given_a_file(Path("x"))))
def test_a_file_where_a_folder_goes_reads_the_same_in_every_command(command, tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert main(commands_given_a_file(a_file)[command]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {a_file}: is a file, not a folder (check the paths given"), line
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize("command", [["explore", "--save", "{folder}/x.png"], ["explore", "--gif", "{folder}/x.gif"],
                                     ["bench", "--quick", "--json", "{folder}/b.json"]])
def test_a_missing_folder_for_an_output_file_reads_the_same_in_every_command(command, tmp_path, capsys):
    folder = tmp_path / "no" / "such"
    assert main([part.format(folder=folder) for part in command]) == 1
    option = command[-2]
    assert one_error_line(capsys.readouterr().err) == (
        f"error: {folder}: no such folder for the {option} file (check the paths given with --out, --dest, "
        f"--json, --save, --gif, --data-dir, --runs or --checkpoint)")
    assert not (tmp_path / "no").exists()


def test_a_data_dir_that_is_a_file_is_called_a_file(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert main(["evaluate", "--checkpoint", str(TRAINED_ADAPTIVE_LENET), "--data-dir", str(a_file)]) == 1
    assert one_error_line(capsys.readouterr().err).startswith(
        f"error: {a_file} (given as data_dir): is a file, not a folder. To get MNIST:")


# ----------------------------------------------------------------------------- checkpoints that are not files
def test_evaluate_a_device_or_a_fifo_is_not_called_missing(tmp_path, capsys):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    for path in (Path("/dev/null"), fifo):
        assert main(["evaluate", "--checkpoint", str(path)]) == 1
        assert one_error_line(capsys.readouterr().err) == (
            f"error: {path} is not a regular file (a device or a pipe?); a checkpoint is a .npz file")


def test_an_unreadable_checkpoint_says_why_before_anything_else(tmp_path, capsys, monkeypatch):
    path = tmp_path / CHECKPOINT_NAME
    shutil.copy(TRAINED_ADAPTIVE_LENET, path)
    real_open = open

    def refusing_open(file, *args, **kwargs):  # what chmod 000 does for anyone but root
        if Path(file) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)
    assert main(["evaluate", "--checkpoint", str(path)]) == 1
    assert one_error_line(capsys.readouterr().err) == f"error: cannot read checkpoint {path}: Permission denied"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file")
def test_a_chmod_000_checkpoint_says_permission_denied(tmp_path, capsys):
    path = tmp_path / CHECKPOINT_NAME
    shutil.copy(TRAINED_ADAPTIVE_LENET, path)
    path.chmod(0)
    assert main(["evaluate", "--checkpoint", str(path)]) == 1
    assert "Permission denied" in one_error_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------- data
@pytest.mark.mnist
def test_evaluate_needs_only_the_two_test_files(mnist_path, tmp_path, capsys):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_path / name, tmp_path)
    assert main(["evaluate", "--checkpoint", str(TRAINED_ADAPTIVE_LENET), "--data-dir", str(tmp_path),
                 "--limit-test", "100"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert main(["train", "--out", str(tmp_path / "run"), "--data-dir", str(tmp_path)]) == 1
    assert "lacks MNIST files: train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]" in \
        one_error_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------- memory
@pytest.mark.parametrize("command, message", [
    ("train", "Unable to allocate 1.07 GiB for an array with shape (1, 5, 5, 24, 24, 20000)"),  # NumPy's, under `ulimit -v`
    ("evaluate", ""),                                                                          # Python's own: no text
])
def test_running_out_of_memory_is_one_line(command, message, tmp_path, capsys, monkeypatch):
    import ack_numpy.train as train_module

    def out_of_memory(*args, **kwargs):
        raise MemoryError(message) if message else MemoryError

    monkeypatch.setattr(train_module, "train" if command == "train" else "evaluate", out_of_memory)
    monkeypatch.setattr("ack_numpy.data.load_mnist", lambda *a, **k: (None, [0]))
    args = {"train": ["train", "--out", str(tmp_path / "run")],
            "evaluate": ["evaluate", "--checkpoint", str(TRAINED_ADAPTIVE_LENET)]}[command]
    assert main(args) == 1
    assert one_error_line(capsys.readouterr().err) == {
        "train": "error: out of memory: Unable to allocate 1.07 GiB for an array with shape (1, 5, 5, 24, 24, 20000) "
                 "(a smaller --batch-size needs less)",
        "evaluate": "error: out of memory: an allocation failed (--limit-test needs less)"}[command]


# ----------------------------------------------------------------------------- saving
@pytest.mark.mnist
@pytest.mark.parametrize("fault", ["disk full", "immutable"])
def test_a_checkpoint_that_cannot_be_saved_names_it_and_keeps_the_old_one(fault, mnist_path, tmp_path, capsys,
                                                                          monkeypatch):
    out = tmp_path / "run"
    settings = ["--data-dir", str(mnist_path), "--limit-train", "64", "--limit-test", "64", "--model", "plain-small",
                "--schedule", "constant"]
    assert main(["train", "--out", str(out), "--epochs", "1", *settings]) == 0
    before = (out / CHECKPOINT_NAME).read_bytes()
    capsys.readouterr()
    if fault == "disk full":
        def no_space(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(os, "fsync", no_space)
    else:  # chattr +i: the rename over the checkpoint is refused, the error names the temp file
        real_replace = os.replace

        def immutable(src, dst):
            if Path(dst).name == CHECKPOINT_NAME:
                raise PermissionError(errno.EPERM, "Operation not permitted", str(src), None, str(dst))
            return real_replace(src, dst)
        monkeypatch.setattr(os, "replace", immutable)
    assert main(["train", "--resume", str(out), "--epochs", "2"]) == 1
    line = one_error_line(capsys.readouterr().err)
    reason = "No space left on device" if fault == "disk full" else "Operation not permitted"
    assert line.startswith(f"error: {out / CHECKPOINT_NAME}: {reason}: could not save the checkpoint; "
                           f"the previous checkpoint was kept as it was"), line
    assert ".tmp" not in line
    assert (out / CHECKPOINT_NAME).read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- resume
@pytest.mark.mnist
def test_resume_with_fewer_epochs_than_done_is_refused_not_3_of_1(mnist_path, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--epochs", "3", "--data-dir", str(mnist_path), "--limit-train", "64",
                 "--limit-test", "64", "--model", "plain-small", "--schedule", "constant"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "1"]) == 1
    assert one_error_line(capsys.readouterr().err) == (
        f"error: cannot resume {out} with --epochs 1: it has already trained 3 epochs; "
        f"give --epochs 4 or more to train further")


# ----------------------------------------------------------------------------- the lab
def test_two_reproductions_into_one_out_are_refused_up_front(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    with RunLock(tmp_path / "runs"):  # another `reproduce --out tmp_path` is running
        assert main(["reproduce", "--out", str(tmp_path), "--seeds", "1", "--lenet-seeds", "1", "--epochs", "1",
                     "--limit-train", "64", "--limit-test", "64"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line == (f"error: {tmp_path / 'runs'} is in use by another training run (pid {os.getpid()}); "
                    f"wait for it to finish, or choose another --out")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == []   # nothing was started


@pytest.mark.parametrize("study", ["budget", "ablation"])
def test_study_reuse_of_a_missing_folder_is_refused(study, tmp_path, capsys):
    selection = ["--selection", str(tmp_path / "selection")] if study == "ablation" else []
    assert main(["study", study, "--reuse", "/nonexistent", "--out", str(tmp_path / "s"), "--report-only",
                 *selection]) == 1
    assert one_error_line(capsys.readouterr().err) == (
        "error: --reuse /nonexistent: no reproduction there (no runs/ folder); give the --out folder of a "
        "`reproduce`, e.g. data/reproduction")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("target", ["/dev/full", "fifo", "folder"])
def test_bench_json_that_cannot_be_written_fails_before_the_benchmark(target, tmp_path, capsys, monkeypatch):
    import ack_numpy.lab.bench as bench

    monkeypatch.setattr(bench, "run_benchmark", lambda mode: pytest.fail("the benchmark ran"))
    path = {"/dev/full": Path("/dev/full"), "fifo": tmp_path / "fifo", "folder": tmp_path}[target]
    if target == "fifo":
        os.mkfifo(path)
    assert main(["bench", "--tiny", "--json", str(path)]) == 1
    line = one_error_line(capsys.readouterr().err)
    reason = "is a folder, not a file" if target == "folder" else "is not a regular file (a device or a pipe?)"
    assert line.startswith(f"error: {path}: {reason}")
    if target == "/dev/full":
        assert Path("/dev/full").is_char_device()  # never replaced by a rename


@pytest.mark.parametrize("argv, message", [
    (["study", "budget", "--lr", "0.1"], "error: study budget does not take --lr; see python -m ack_numpy study --help"),
    (["study", "compute", "--reuse", "/nonexistent"], "error: study compute does not take --reuse;"),
    (["study", "ledger", "--seeds", "3", "--max-epochs", "4"], "error: study ledger does not take --seeds, --max-epochs;"),
    (["study", "budget", "--report-only", "--print-commands"], "error: give either --report-only or --print-commands, not both"),
    (["reproduce", "--report-only", "--print-commands"], "error: give either --report-only or --print-commands, not both"),
])
def test_a_study_option_that_would_be_ignored_is_refused(argv, message, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "out")]) == 1
    assert one_error_line(capsys.readouterr().err).startswith(message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["train"], ["evaluate"], ["visualize"], ["explore"], ["bench"]])
def test_a_thread_count_beyond_any_cpu_is_refused_in_one_line(command, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(command + ["--threads", "100000"])
    assert stopped.value.code == 2
    assert "--threads: must be at most 256, got 100000" in capsys.readouterr().err


def test_a_hint_names_the_program_as_it_was_started(tmp_path, capsys, monkeypatch):
    """Installed, the reader types `ack-numpy`: the hints say that, not `python -m ack_numpy`."""
    monkeypatch.setenv("ACK_MNIST_DIR", str(tmp_path))  # a folder without MNIST
    monkeypatch.setattr("sys.argv", ["/venv/bin/ack-numpy"])
    assert main(["evaluate", "--checkpoint", str(TRAINED_ADAPTIVE_LENET)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "run `ack-numpy download`" in line and "python -m ack_numpy" not in line
