"""The reproduction's bookkeeping: statistics over seeds, verdicts, report (on fake metrics),
and the real command end to end on a sliver of MNIST."""
import json

import pytest

from ack_numpy.lab import reproduce as R
from ack_numpy.lab.records import record_committed_files, with_digest
from ack_numpy.train import write_metrics


def fake_run(out, model, seed, accs, epochs=None):
    """A run folder as a report reads it: config.json of the plan's settings (for `epochs`,
    by default as many as `accs`: a finished run), metrics.csv, and the record that vouches
    for them (records.py)."""
    run = next(r for r in R.plan(out, seeds=10, lenet_seeds=3, epochs=epochs or len(accs))
               if r.name == f"{model}-seed{seed}")
    run.folder.mkdir(parents=True)
    (run.folder / "config.json").write_text(json.dumps(json.loads(json.dumps(vars(run.config)))))
    write_metrics(run.folder / "metrics.csv", [
        {"epoch": e + 1, "train_loss": 0.1, "train_acc": 0.9, "test_loss": 0.1, "test_acc": a, "seconds": 10.0 + seed,
         "lr": 0.001} for e, a in enumerate(accs)])
    record_committed_files(run, "test")


def test_epochs_to_target():
    assert R.epochs_to_target([0.97, 0.99, 0.995]) == 2
    assert R.epochs_to_target([0.97, 0.985]) is None


def fake_study(tmp_path, adaptive_finals, plain_finals, width8_finals):
    for seed in range(3):
        fake_run(tmp_path, "lenet", seed, [0.98, 0.99, 0.993])
    for label, finals in (("adaptive-lenet", adaptive_finals), ("plain-small", plain_finals),
                          ("plain-width8", width8_finals)):
        for seed, final in enumerate(finals):
            fake_run(tmp_path, label, seed, [0.97, 0.985, final])
    return R.summarize(tmp_path, seeds=len(adaptive_finals), epochs=3, lenet_seeds=3)


def test_summary_statistics_and_a_verdict_that_holds(tmp_path):
    s = fake_study(tmp_path, [0.992, 0.993, 0.991, 0.992, 0.994], [0.989, 0.988, 0.990, 0.989, 0.987],
                   [0.9920, 0.9915, 0.9925, 0.9922, 0.9918])
    ada = s["models"]["adaptive-lenet"]
    assert ada["final_test_acc"]["mean"] == pytest.approx(0.9924)
    assert ada["final_test_acc"]["median"] == pytest.approx(0.992)
    assert ada["final_test_acc"]["min"] == 0.991 and ada["final_test_acc"]["max"] == 0.994
    assert ada["epochs_to_99_per_seed"] == {str(k): 3 for k in range(5)}
    assert s["models"]["plain-width8"]["parameters"] == 5866
    c = s["comparisons"]["adaptive-lenet - plain-small"]
    assert c["difference"] == pytest.approx(0.0038) and c["ci95"][0] > 0
    assert c["p"] == pytest.approx(2 / 252)  # the observed split and its mirror: 2 of C(10, 5)
    v = s["verdicts"]
    assert v["ablation"]["verdict"] == "HOLDS" and "+0.38 points" in v["ablation"]["evidence"]
    assert v["ablation_equal_width"]["verdict"] == "NOT SHOWN"
    assert "cannot tell it from seed noise" in v["ablation_equal_width"]["evidence"]
    assert v["accuracy_with_66x_fewer_parameters"]["holds"] is True
    assert s["missing"] == []
    json.dumps(s)
    R.write_markdown(s, tmp_path / "results.md", "python -m ack_numpy reproduce --out X")
    text = (tmp_path / "results.md").read_text()
    assert "**ablation, equal budget" in text and ": HOLDS." in text and "| adaptive-lenet | 6,514 |" in text
    assert "../time-to-accuracy/results.md" in text
    R.plot_accuracy(s, tmp_path / "accuracy.png")
    assert (tmp_path / "accuracy.png").stat().st_size > 10_000
    # sorted: .991(2) .992(0) .992(3) .993(1) .994(4): the median accuracy .992 is shared by seeds 0 and 3
    assert R.median_seed(s, "adaptive-lenet") == 0


def test_a_better_plain_model_reverses_the_ablation(tmp_path):
    s = fake_study(tmp_path, [0.985, 0.986, 0.984], [0.991, 0.992, 0.990], [0.985, 0.986, 0.984])
    assert s["verdicts"]["ablation"]["verdict"] == "REVERSED"
    assert s["verdicts"]["ablation"]["holds"] is False
    assert s["verdicts"]["accuracy_with_66x_fewer_parameters"]["holds"] is False


def test_unfinished_runs_are_listed_not_counted(tmp_path):
    s = fake_study(tmp_path, [0.992, 0.993, 0.991], [0.989, 0.988, 0.990], [0.99, 0.99, 0.99])
    fake_run(tmp_path, "adaptive-lenet", 3, [0.97], epochs=3)   # one epoch of three
    s = R.summarize(tmp_path, seeds=4, epochs=3, lenet_seeds=3)
    assert s["missing"] == ["adaptive-lenet-seed3", "plain-small-seed3", "plain-width8-seed3"]
    assert s["models"]["adaptive-lenet"]["seeds"] == [0, 1, 2]
    R.write_markdown(s, tmp_path / "results.md", "cmd")
    assert "Partial: 3 runs have not finished" in (tmp_path / "results.md").read_text()


def test_mcnemar_per_seed_pair_where_the_records_hold_per_image_results(tmp_path):
    """Seed s of adaptive-lenet against seed s of LeNet, on the same (here 100) test images;
    only seeds whose two records both hold per-image results are paired."""
    import base64

    import numpy as np

    fake_study(tmp_path, [0.992, 0.993, 0.991], [0.989, 0.988, 0.990], [0.99, 0.99, 0.99])
    images = np.ones(100, dtype=bool)
    for label, seed, wrong in (("adaptive-lenet", 0, [0]), ("lenet", 0, range(1, 11)),
                               ("adaptive-lenet", 1, [5]), ("lenet", 1, [5])):   # seed 2: no per-image results
        path = tmp_path / "runs" / f"{label}-seed{seed}" / "record.json"
        record, correct = json.loads(path.read_text()), images.copy()
        correct[list(wrong)] = False
        record["correct"] = base64.b64encode(np.packbits(correct).tobytes()).decode("ascii")
        record["evaluated_images"] = len(correct)
        path.write_text(json.dumps(with_digest(record)))  # as a report writes a record made from a checkpoint
    s = R.summarize(tmp_path, seeds=3, epochs=3, lenet_seeds=3)
    pairs = s["comparisons"]["adaptive-lenet - lenet"]["mcnemar_per_seed"]
    assert pairs == [{"seed": 0, "a_only": 10, "b_only": 1, "p": pytest.approx(2 * 12 / 2 ** 11)},
                     {"seed": 1, "a_only": 0, "b_only": 0, "p": 1.0}]
    assert s["comparisons"]["adaptive-lenet - plain-small"]["mcnemar_per_seed"] == []
    R.write_markdown(s, tmp_path / "results.md", "cmd")
    text = (tmp_path / "results.md").read_text()
    assert "| adaptive-lenet - lenet | nothing: LeNet has 66x the parameters | 3 and 3 |" in text
    assert "| 1 of 2 (10 / 1) |" in text and "- (no per-image records)" in text
    assert "- (too few seeds)" in text  # no percentile bootstrap at 3 seeds


@pytest.mark.parametrize("asked", [2, 5])
def test_a_report_for_other_epochs_is_refused_not_partial(tmp_path, asked):
    """Runs trained for 3 epochs are other runs whether 2 or 5 are asked: refused, naming one."""
    fake_study(tmp_path, [0.992, 0.993, 0.991], [0.989, 0.988, 0.990], [0.99, 0.99, 0.99])
    from ack_numpy.lab.records import RecordError
    with pytest.raises(RecordError, match=rf"run \S+-seed0 .*other settings: epochs=3 \(asked: {asked}\)"):
        R.summarize(tmp_path, seeds=3, epochs=asked, lenet_seeds=3)


@pytest.mark.mnist
@pytest.mark.slow
def test_reproduce_end_to_end_on_a_sliver_of_mnist(mnist_path, tmp_path):
    """The real command: runs in processes, summary, report, plot and the median checkpoint;
    a second call keeps the finished runs; a median run kept without its checkpoint is
    trained again and must give the same metrics."""
    from ack_numpy.checkpoint import load_model

    kwargs = dict(seeds=2, lenet_seeds=1, epochs=1, jobs=2, data_dir=str(mnist_path), limit_train=300,
                  limit_test=200, log=lambda message: None)
    summary = R.reproduce(tmp_path, **kwargs)
    for name in ("results.md", "results.json", "accuracy.png", "adaptive-lenet-median.npz"):
        assert (tmp_path / name).stat().st_size > 0
    assert set(summary["models"]) == set(R.STUDY_MODELS)
    assert summary["train_images"] == 300 and summary["test_images"] == 200
    best = summary["median_checkpoint_seed"]
    model, meta = load_model(tmp_path / "adaptive-lenet-median.npz")
    assert meta["model"] == "adaptive-lenet" and meta["config"]["seed"] == best
    width8, meta8 = load_model(tmp_path / "runs" / "plain-width8-seed0" / "checkpoint.npz")
    assert width8.num_parameters() == 5866 and meta8["model"] == "plain-small"

    # A truncated median file: the report refuses before writing anything, a new median included.
    median = tmp_path / "adaptive-lenet-median.npz"
    good = median.read_bytes()
    median.write_bytes(good[: len(good) // 2])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    from ack_numpy.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match="adaptive-lenet-median.npz"):
        R.reproduce(tmp_path, **{**kwargs, "report_only": True})
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    median.write_bytes(good)

    before = (tmp_path / "runs" / "lenet-seed0" / "metrics.csv").stat().st_mtime_ns
    (tmp_path / "runs" / f"adaptive-lenet-seed{best}" / "checkpoint.npz").unlink()  # as in a committed folder
    (tmp_path / "adaptive-lenet-median.npz").unlink()
    messages = []
    R.reproduce(tmp_path, **{**kwargs, "log": messages.append})
    assert any("already finished, kept" in m for m in messages)
    assert any("training it again" in m for m in messages)
    assert (tmp_path / "runs" / "lenet-seed0" / "metrics.csv").stat().st_mtime_ns == before
    assert load_model(tmp_path / "adaptive-lenet-median.npz")[1]["config"]["seed"] == best
    assert not (tmp_path / "median-retrain").exists()
    # The median trained again has other bytes than the run's checkpoint (timings, zip dates):
    # the report that wrote it vouches for it, so the next report accepts it.
    kept = (tmp_path / "adaptive-lenet-median.npz").read_bytes()
    assert R.reproduce(tmp_path, **{**kwargs, "report_only": True})["median_checkpoint_file_seed"] == best
    assert (tmp_path / "adaptive-lenet-median.npz").read_bytes() == kept


def test_a_median_file_already_there_is_never_written_over(tmp_path):
    target, source = tmp_path / "adaptive-lenet-median.npz", tmp_path / "checkpoint.npz"
    target.write_bytes(b"the committed median")
    source.write_bytes(b"the committed median")
    assert R._new_median_name(target, source, 3, log=lambda m: None) == target       # the same file: kept
    source.write_bytes(b"another median")
    said = []
    new = R._new_median_name(target, source, 3, log=said.append)
    assert new.name.startswith("adaptive-lenet-median-seed3-") and new.suffix == ".npz" and "is kept" in said[0]
    assert target.read_bytes() == b"the committed median"
