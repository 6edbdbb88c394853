"""The reproduction's bookkeeping: epochs to 99%, medians over seeds, verdicts (on fake metrics)."""
import json

import pytest

from ack_numpy.lab import reproduce as R
from ack_numpy.train import write_metrics


def fake_run(out, model, seed, accs):
    folder = R.run_dir(out, model, seed)
    folder.mkdir(parents=True)
    write_metrics(folder / "metrics.csv", [
        {"epoch": e + 1, "train_loss": 0.1, "train_acc": 0.9, "test_loss": 0.1, "test_acc": a, "seconds": 10.0 + seed,
         "lr": 0.001} for e, a in enumerate(accs)])


def test_epochs_to_target():
    assert R.epochs_to_target([0.97, 0.99, 0.995]) == 2
    assert R.epochs_to_target([0.97, 0.985]) is None


def test_summary_and_verdicts(tmp_path):
    accs = {
        "lenet": [[0.98, 0.985, 0.99, 0.992], [0.98, 0.99, 0.99, 0.993], [0.97, 0.98, 0.985, 0.991]],
        "adaptive-lenet": [[0.985, 0.99, 0.991, 0.992], [0.98, 0.99, 0.99, 0.991], [0.97, 0.98, 0.99, 0.990]],
        "plain-small": [[0.97, 0.98, 0.985, 0.989]] * 3,
    }
    for model, runs in accs.items():
        for seed, a in enumerate(runs):
            fake_run(tmp_path, model, seed, a)
    s = R.summarize(tmp_path, [0, 1, 2], 4)
    ada, lenet, plain = s["models"]["adaptive-lenet"], s["models"]["lenet"], s["models"]["plain-small"]
    assert ada["epochs_to_99_per_seed"] == {"0": 2, "1": 2, "2": 3}
    assert ada["epochs_to_99_median"] == 2
    assert lenet["epochs_to_99_median"] == 3            # seeds need 3, 2 and 4 epochs
    assert plain["epochs_to_99_median"] is None         # never reached
    assert ada["final_test_acc_median"] == pytest.approx(0.991)
    assert ada["test_acc_min"][0] == 0.97 and ada["test_acc_max"][0] == 0.985
    assert ada["seconds_per_epoch_median"] == 11.0
    v = s["verdicts"]
    assert v["accuracy_with_66x_fewer_parameters"]["holds"] is True
    assert v["half_the_epochs"]["holds"] is True          # 2 <= ceil(3 / 2)
    assert v["ablation"]["holds"] is True
    assert R.median_seed(s, "adaptive-lenet") == 1        # finals 0.992, 0.991, 0.990 -> median 0.991
    json.dumps(s)                                          # no infinities or numpy types in the JSON
    R.write_markdown(s, tmp_path / "results.md", "python -m ack_numpy reproduce --out X")
    text = (tmp_path / "results.md").read_text()
    assert "HOLDS" in text and "not reached" in text and "| adaptive-lenet | 6,514 |" in text
    R.plot_accuracy(s, tmp_path / "accuracy.png")
    assert (tmp_path / "accuracy.png").stat().st_size > 10_000


def test_claim_two_fails_when_adaptive_is_slower(tmp_path):
    runs = {"lenet": [0.99, 0.99], "adaptive-lenet": [0.98, 0.991], "plain-small": [0.98, 0.99]}
    for model, a in runs.items():
        fake_run(tmp_path, model, 0, a)
    v = R.summarize(tmp_path, [0], 2)["verdicts"]
    assert v["half_the_epochs"]["holds"] is False
    assert "adaptive-lenet 2, LeNet 1" in v["half_the_epochs"]["evidence"]


@pytest.mark.mnist
@pytest.mark.slow
def test_reproduce_end_to_end_on_a_sliver_of_mnist(mnist_path, tmp_path):
    """The real command: subprocess runs, summary, report, plot and the median checkpoint;
    a second call keeps the finished runs and only rewrites the report."""
    from ack_numpy.checkpoint import load_model

    kwargs = dict(seeds=1, epochs=1, jobs=2, data_dir=str(mnist_path), limit_train=300, limit_test=200,
                  log=lambda message: None)
    summary = R.reproduce(tmp_path, **kwargs)
    for name in ("results.md", "results.json", "accuracy.png", "adaptive-lenet-median.npz"):
        assert (tmp_path / name).stat().st_size > 0
    assert set(summary["models"]) == set(R.STUDY_MODELS)
    assert summary["train_images"] == 300 and summary["test_images"] == 200
    model, meta = load_model(tmp_path / "adaptive-lenet-median.npz")
    assert meta["model"] == "adaptive-lenet" and meta["config"]["seed"] == 0
    before = (tmp_path / "runs" / "lenet-seed0" / "metrics.csv").stat().st_mtime_ns
    messages = []
    R.reproduce(tmp_path, **{**kwargs, "log": messages.append})
    assert any("already finished, kept" in m for m in messages)
    assert (tmp_path / "runs" / "lenet-seed0" / "metrics.csv").stat().st_mtime_ns == before


def test_claim_two_when_lenet_never_reaches_99(tmp_path):
    for folder, runs in (("early", {"lenet": [0.98, 0.985, 0.986, 0.987], "adaptive-lenet": [0.98, 0.991, 0.992, 0.993]}),
                         ("late", {"lenet": [0.98, 0.985, 0.986, 0.987], "adaptive-lenet": [0.98, 0.985, 0.989, 0.991]})):
        runs["plain-small"] = [0.98] * 4
        for model, a in runs.items():
            fake_run(tmp_path / folder, model, 0, a)
        v = R.summarize(tmp_path / folder, [0], 4)["verdicts"]["half_the_epochs"]
        assert v["holds"] is (True if folder == "early" else None), v
        assert "LeNet more than 4" in v["evidence"]


def test_a_kept_run_must_have_the_settings_asked_for(tmp_path):
    folder = tmp_path / "lenet-seed0"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model": "lenet", "seed": 0, "epochs": 1}))
    R.check_same_settings(folder, {"model": "lenet", "seed": 0, "epochs": 1})
    with pytest.raises(ValueError, match=r"other settings: epochs=1 \(asked: 2\).*another --out"):
        R.check_same_settings(folder, {"model": "lenet", "seed": 0, "epochs": 2})
