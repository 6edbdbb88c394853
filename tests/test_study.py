"""The run scheduler and the two studies: real processes on slivers of MNIST, signals,
resuming, refusing foreign folders, and the reports."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ack_numpy.lab import runner, study
from ack_numpy.models import build_model
from ack_numpy.lab.variants import adaptive_width_options, plain_width_options
from ack_numpy.train import TrainConfig, read_metrics, train

ROOT = Path(__file__).resolve().parents[1]


def test_the_budget_family_spans_one_to_thirty_thousand_parameters():
    sizes = []
    for width in study.BUDGET_WIDTHS:
        adaptive = build_model("adaptive-lenet", **adaptive_width_options(width)).num_parameters()
        plain = build_model("plain-small", **plain_width_options(width)).num_parameters()
        wider = plain_width_options(width)["channels"][0] + 1
        bigger = build_model("plain-small", channels=(wider, 2 * width)).num_parameters()
        assert plain <= adaptive < bigger   # the most first-layer channels that fit the budget
        sizes.append(adaptive)
    assert sizes[0] < 1100 and 25_000 < sizes[-1] < 31_000 and sizes == sorted(sizes)
    assert plain_width_options(8) == {"channels": (9, 16)}                  # = plain-small
    assert build_model("adaptive-lenet", **adaptive_width_options(8)).num_parameters() == 6514


def test_a_folder_with_other_settings_is_refused(tmp_path):
    run = runner.Run("x", TrainConfig(model="lenet", epochs=2, out=str(tmp_path)))
    (tmp_path / "config.json").write_text(json.dumps({**json.loads(json.dumps(vars(run.config))), "epochs": 1,
                                                      "out": "elsewhere"}))
    with pytest.raises(ValueError, match=r"other settings: epochs=1 \(asked: 2\).*another --out"):
        runner.check_same_settings(run)
    runner.check_same_settings(runner.Run("x", TrainConfig(model="lenet", epochs=1, out=str(tmp_path))))


@pytest.mark.mnist
@pytest.mark.slow
def test_a_run_extended_epoch_by_epoch_equals_one_trained_straight(mnist_path, tmp_path):
    """The convergence study grows constant-rate runs one epoch at a time until a target."""
    settings = dict(model="plain-small", schedule="constant", lr=1e-3, data_dir=str(mnist_path), limit_train=256,
                    limit_test=100, batch_size=32)
    straight = train(TrainConfig(epochs=3, out=str(tmp_path / "straight"), **settings), log=lambda m: None)
    grown = runner.Run("grown", TrainConfig(epochs=3, out=str(tmp_path / "grown"), **settings), until=1.01)
    rows = runner.train_run(grown)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in rows] == \
           [{k: v for k, v in r.items() if k != "seconds"} for r in straight]
    reached = runner.Run("reached", TrainConfig(epochs=3, out=str(tmp_path / "reached"), **settings), until=0.0)
    assert len(runner.train_run(reached)) == 1 and runner.is_finished(reached)


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")


def _trainers_in(folder: Path) -> list[int]:
    """Pids of live processes whose command line mentions `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
                state = (entry / "stat").read_text().split()[2]
            except OSError:
                continue
            if str(folder) in cmdline and "ack_numpy.lab.runner" in cmdline and state != "Z":
                found.append(int(entry.name))
    return found


def _start_reproduce(mnist_path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ack_numpy", "reproduce", "--out", str(out), "--seeds", "1", "--lenet-seeds", "1",
           "--epochs", "2", "--jobs", "2", "--data-dir", str(mnist_path), "--limit-train", "6000",
           "--limit-test", "100"]
    process = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    log = out / "runs" / "lenet-seed0" / "train.log"
    while not (log.exists() and "training lenet" in log.read_text()):
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.1)
    time.sleep(1.0)  # into the first epoch
    return process


@pytest.mark.mnist
@pytest.mark.slow
def test_sigterm_stops_the_children_and_a_rerun_resumes(mnist_path, tmp_path):
    process = _start_reproduce(mnist_path, tmp_path)
    assert _trainers_in(tmp_path)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines()[-1].startswith("stopped by SIGTERM") and "Traceback" not in err
    assert _trainers_in(tmp_path) == []                       # no orphan trainer left behind
    assert (tmp_path / "runs" / "lenet-seed0" / "checkpoint.npz").exists()
    assert "interrupted: saved epoch 1" in (tmp_path / "runs" / "lenet-seed0" / "train.log").read_text()

    again = subprocess.run([sys.executable, "-m", "ack_numpy", "reproduce", "--out", str(tmp_path), "--seeds", "1",
                            "--lenet-seeds", "1", "--epochs", "2", "--jobs", "2", "--data-dir", str(mnist_path),
                            "--limit-train", "6000", "--limit-test", "100"],
                           env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    log = (tmp_path / "runs" / "lenet-seed0" / "train.log").read_text()
    assert "resuming lenet" in log and len(read_metrics(tmp_path / "runs" / "lenet-seed0" / "metrics.csv")) == 2
    assert (tmp_path / "results.md").exists()


@pytest.mark.mnist
@pytest.mark.slow
def test_a_trainer_whose_runner_is_killed_stops_by_itself(mnist_path, tmp_path):
    process = _start_reproduce(mnist_path, tmp_path)
    process.kill()                                            # no chance to stop the children
    process.communicate()
    deadline = time.monotonic() + 60
    while _trainers_in(tmp_path):
        assert time.monotonic() < deadline, "the trainers outlived their runner"
        time.sleep(0.2)
    assert "interrupted: saved" in (tmp_path / "runs" / "lenet-seed0" / "train.log").read_text()


@pytest.mark.mnist
@pytest.mark.slow
def test_the_two_studies_on_a_sliver(mnist_path, tmp_path):
    common = dict(jobs=2, data_dir=str(mnist_path), limit_train=300, limit_test=100, log=lambda m: None)
    c = study.convergence(tmp_path / "c", seeds=1, max_epochs=2, **common)
    assert set(c["models"]) == {"lenet", "adaptive-lenet", "plain-small"} and c["missing"] == []
    assert c["verdict"]["verdict"] in ("HOLDS", "DOES NOT HOLD", "NOT SHOWN")
    assert "constant" in (tmp_path / "c" / "results.md").read_text()
    b = study.budget(tmp_path / "b", seeds=2, epochs=1, widths=(2, 4), **common)
    assert [p["width"] for p in b["pairs"]] == [2, 4] and all("ci95" in p for p in b["pairs"])
    text = (tmp_path / "b" / "results.md").read_text()
    assert "| 2 | 1,036 |" in text and any(line.startswith("With 2 seeds") for line in b["reading"])
    assert b["reading"][-1].startswith("All 2 budgets together") and 0 < b["across_budgets"]["p"] <= 1
    for png in (tmp_path / "c" / "convergence.png", tmp_path / "b" / "budget.png"):
        assert png.stat().st_size > 10_000
    report = study.budget(tmp_path / "b", seeds=3, epochs=1, widths=(2, 4), report_only=True, **common)
    assert report["missing"] == ["adaptive-w4-seed2", "plain-w4-seed2", "adaptive-w2-seed2", "plain-w2-seed2"]


def test_the_budget_reading_follows_the_numbers():
    # One budget per outcome: interval above 0 with a small p, above 0 with a large p,
    # containing 0, below 0 with a small p.
    arms, pairs = {}, []
    for width, (low, high, p) in zip((2, 4, 8, 14), [(0.001, 0.003, 0.01), (0.001, 0.003, 0.2),
                                                      (-0.001, 0.002, 0.5), (-0.004, -0.001, 0.02)]):
        arms[f"adaptive-w{width}"] = {"parameters": 1000 * width}
        pairs.append({"width": width, "adaptive": f"adaptive-w{width}", "plain": f"plain-w{width}",
                      "difference": (low + high) / 2, "ci95": [low, high], "welch_ci95": [low, high], "p": p, "n": [10, 10]})
    lines = study.budget_reading({"arms": arms, "pairs": pairs, "across_budgets": None})
    assert lines[0].startswith("2,000 parameters") and lines[0].endswith("; adaptive ahead.")
    assert lines[1].endswith("adaptive ahead by the interval but not by p: a hint, not established.")
    assert lines[2].endswith("the interval contains 0: no difference shown.")
    assert lines[3].endswith("; plain ahead.")
    assert lines[4] == ("The difference is largest at 2,000 parameters (+0.20 points) "
                        "and smallest at 14,000 (-0.25).")
    assert lines[5].startswith("With 10 seeds per model") and len(lines) == 6


@pytest.mark.parametrize("argv", [["reproduce"], ["study", "lr-selection"], ["study", "convergence"],
                                  ["study", "budget"], ["study", "time-to-accuracy", "--selection", "data/lr-selection"],
                                  ["study", "ablation", "--selection", "data/lr-selection"]],
                         ids=lambda argv: argv[-1] if argv[0] == "study" and len(argv) == 2 else argv[1] if len(argv) > 1 else argv[0])
def test_print_commands_prints_one_line_per_run_and_makes_no_folder(argv, tmp_path, capsys, monkeypatch):
    from ack_numpy.cli import main

    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the committed lr-selection record
    out = tmp_path / "new"
    assert main(argv + ["--out", str(out), "--print-commands"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("OPENBLAS_NUM_THREADS=1 python -m ack_numpy.lab.runner ") for line in lines)
    assert not out.exists()  # printing the plan writes nothing


def test_study_help_states_the_defaults_the_studies_have():
    """The CLI passes on only the options given; each study's signature owns its defaults,
    and `study --help` must say the same."""
    import inspect

    from ack_numpy.cli import build_parser
    from ack_numpy.lab import study
    from ack_numpy.lab.ablation import ablation
    from ack_numpy.lab.time_to_accuracy import time_to_accuracy

    def default(function, name):
        return inspect.signature(function).parameters[name].default

    text = " ".join(build_parser("ack-numpy")._subparsers._group_actions[0].choices["study"].format_help().split())
    assert (default(study.convergence, "seeds"), default(study.budget, "seeds"), default(ablation, "seeds"),
            default(time_to_accuracy, "seeds")) == (3, 3, 10, 10)
    assert "seeds 0..N-1 (default 3; ablation and time-to-accuracy 10)" in text
    assert f"(default {default(study.budget, 'epochs')})" in text
    assert f"after N epochs (default {default(study.convergence, 'max_epochs')})" in text
    assert default(study.convergence, "lr") == 1e-3 and "(default 1e-3)" in text
    assert default(ablation, "selection") == default(time_to_accuracy, "selection")
    assert f"(default {default(ablation, 'selection')})" in text
