"""A report publishes only what a run's checkpoint or record vouches for: tampered,
swapped and truncated run folders are refused, naming the run, and every file already
written stays byte-identical."""
import json
import shutil
from pathlib import Path

import pytest

from ack_numpy.lab import lrselect
from ack_numpy.lab.records import RECORD_NAME, RecordError, verified_rows
from ack_numpy.lab.runner import Run
from ack_numpy.train import TrainConfig, train

pytestmark = pytest.mark.mnist


def small_run(mnist_path, folder: Path, model: str = "adaptive-lenet", name: str = "adaptive-lenet-seed0") -> Run:
    config = TrainConfig(model=model, epochs=1, data_dir=str(mnist_path), limit_train=128, limit_test=64,
                         out=str(folder))
    train(config, log=lambda m: None)
    return Run(name, config)


@pytest.fixture(scope="module")
def finished(mnist_path, tmp_path_factory):
    """One finished adaptive-lenet run and one lenet run, trained once for every test here."""
    root = tmp_path_factory.mktemp("runs")
    return (small_run(mnist_path, root / "adaptive"), small_run(mnist_path, root / "lenet", "lenet", "lenet-seed0"))


def copy_of(run: Run, tmp_path: Path) -> Run:
    folder = tmp_path / run.folder.name
    shutil.copytree(run.folder, folder)
    return Run(run.name, TrainConfig(**{**vars(run.config), "out": str(folder)}))


def test_a_good_run_is_read_and_gets_a_record(finished, tmp_path):
    run = copy_of(finished[0], tmp_path)
    rows = verified_rows(run)
    record = json.loads((run.folder / RECORD_NAME).read_text())
    assert rows and record["made_from"] == "checkpoint" and record["evaluated_acc"] == rows[-1]["test_acc"]
    assert verified_rows(run) == rows                         # the second time the record is checked, not rewritten


def test_an_edited_metrics_csv_is_refused(finished, tmp_path):
    run = copy_of(finished[0], tmp_path)
    text = (run.folder / "metrics.csv").read_text().splitlines()
    fields = text[1].split(",")
    fields[4] = "0.9999"                                     # test_acc
    (run.folder / "metrics.csv").write_text("\n".join([text[0], ",".join(fields)]) + "\n")
    with pytest.raises(RecordError, match="run adaptive-lenet-seed0 .*metrics.csv is not the metrics its checkpoint"):
        verified_rows(run)


def test_a_lenet_checkpoint_in_an_adaptive_folder_is_refused(finished, tmp_path):
    run = copy_of(finished[0], tmp_path)
    shutil.copyfile(finished[1].folder / "checkpoint.npz", run.folder / "checkpoint.npz")
    with pytest.raises(RecordError, match="run adaptive-lenet-seed0 .*checkpoint holds model 'lenet'"):
        verified_rows(run)


def test_a_truncated_checkpoint_is_refused(finished, tmp_path):
    run = copy_of(finished[0], tmp_path)
    data = (run.folder / "checkpoint.npz").read_bytes()
    (run.folder / "checkpoint.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordError, match="run adaptive-lenet-seed0 .*checkpoint cannot be read"):
        verified_rows(run)


def test_without_a_checkpoint_the_record_vouches_for_the_files(finished, tmp_path):
    run = copy_of(finished[0], tmp_path)
    rows = verified_rows(run)                                 # makes the record
    (run.folder / "checkpoint.npz").unlink()                  # as in a fresh clone
    assert verified_rows(run) == rows
    (run.folder / "metrics.csv").write_text((run.folder / "metrics.csv").read_text().replace("0.", "0.0", 1))
    with pytest.raises(RecordError, match="metrics.csv is not the file its record.json was made from"):
        verified_rows(run)
    (run.folder / RECORD_NAME).unlink()
    with pytest.raises(RecordError, match="no checkpoint.npz and no record.json"):
        verified_rows(run)


def test_a_record_of_another_run_is_refused(finished, tmp_path):
    run = copy_of(finished[0], tmp_path)
    verified_rows(run)
    record = json.loads((run.folder / RECORD_NAME).read_text())
    (run.folder / RECORD_NAME).write_text(json.dumps({**record, "run": "plain-tanh-seed0"}))  # copied from another
    with pytest.raises(RecordError, match="is not this run's record"):
        verified_rows(run)


def test_a_refused_report_leaves_every_written_file_byte_identical(mnist_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = Path("sel")
    plan = lrselect.selection_plan(out, str(mnist_path), limit_train=256, limit_test=64, holdout=64, epochs=1)
    train(plan[0].config, log=lambda m: None)                  # one run of the selection; the rest missing
    lrselect.lr_selection(out, data_dir=str(mnist_path), limit_train=256, limit_test=64, holdout=64, epochs=1,
                          report_only=True, log=lambda m: None)
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != "train.log"}
    metrics = plan[0].folder / "metrics.csv"
    (plan[0].folder / "checkpoint.npz").unlink()
    metrics.write_text(metrics.read_text().replace(",0.", ",0.9", 1))
    with pytest.raises(RecordError, match=plan[0].name):
        lrselect.lr_selection(out, data_dir=str(mnist_path), limit_train=256, limit_test=64, holdout=64, epochs=1,
                              report_only=True, log=lambda m: None)
    kept = {p: c for p, c in before.items() if p not in (metrics, plan[0].folder / "checkpoint.npz")}
    assert {p.name for p in kept} >= {"results.json", "results.md", "record.json", "config.json"}
    for path, content in kept.items():
        assert path.read_bytes() == content, path


def test_printed_commands_train_each_run_on_its_own(mnist_path, tmp_path):
    import subprocess
    import sys

    from ack_numpy.lab.runner import is_finished, run_commands

    runs = [Run(f"plain-small-seed{seed}", TrainConfig(model="plain-small", epochs=1, seed=seed, data_dir=str(mnist_path),
                                                       limit_train=64, limit_test=32, out=str(tmp_path / f"s{seed}")))
            for seed in range(2)]
    lines = run_commands(runs)
    assert len(lines) == 2 and all(line.startswith("OPENBLAS_NUM_THREADS=1 python -m ack_numpy.lab.runner '")
                                   for line in lines)
    subprocess.run(lines[1].replace(" python ", f" {sys.executable} ", 1), shell=True, check=True, cwd=tmp_path,
                   stdout=subprocess.DEVNULL)
    assert not is_finished(runs[0]) and is_finished(runs[1])
    assert run_commands(runs) == lines[:1]                    # a finished run prints no command


def test_a_metrics_row_cut_short_says_how_many_cells_it_has(tmp_path):
    from ack_numpy.runs import read_metrics

    path = tmp_path / "metrics.csv"
    path.write_text("epoch,train_loss,train_acc,test_loss,test_acc,seconds,lr\n1,0.3,0.9,0.08,0.97,15.2,0.003\n2,0.1,0.96\n")
    with pytest.raises(ValueError, match="line 3: 3 cells where the header has 7"):
        read_metrics(path)
    path.write_text("epoch,train_loss\n1,0.3,0.9\n")
    with pytest.raises(ValueError, match="line 2: 3 cells where the header has 2"):
        read_metrics(path)


@pytest.mark.parametrize("row, problem", [
    ("1,nan,0.9,0.08,0.97,15.2,0.003", "train_loss nan is not a finite number >= 0"),
    ("1,0.3,0.9,inf,0.97,15.2,0.003", "test_loss inf is not a finite number >= 0"),
    ("1,0.3,0.9,0.08,5.0,15.2,0.003", "test_acc 5 is not an accuracy between 0 and 1"),
    ("1,0.3,0.9,0.08,0.97,-1,0.003", "seconds -1 is not a finite number >= 0"),
    ("2,0.3,0.9,0.08,0.97,15.2,0.003", "epoch 2 where epoch 1 comes"),
])
def test_a_metrics_row_no_training_writes_is_refused(tmp_path, row, problem):
    from ack_numpy.runs import read_metrics

    path = tmp_path / "metrics.csv"
    path.write_text("epoch,train_loss,train_acc,test_loss,test_acc,seconds,lr\n" + row + "\n")
    with pytest.raises(ValueError, match=f"line 2: {problem} \\(edited\\?\\)"):
        read_metrics(path)
