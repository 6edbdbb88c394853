"""The time-to-accuracy study: its rules on made-up curves, then a tiny study end to end."""
import math
from pathlib import Path

import pytest

from ack_numpy.lab import time_to_accuracy as tta
from ack_numpy.lab.records import RecordError, summary_text
from ack_numpy.lab.runner import check_batches

ROOT = Path(__file__).resolve().parents[1]


def test_checks_are_evenly_spaced_and_never_at_the_end_of_an_epoch():
    assert sorted(check_batches(782, 10)) == [78, 156, 235, 313, 391, 469, 547, 626, 704]
    assert sorted(check_batches(8, 4)) == [2, 4, 6]
    assert sorted(check_batches(4, 10)) == [1, 2, 3]  # an epoch of few batches: fewer checks, never batch 0 or 4


def test_a_target_counts_where_the_curve_first_crosses_it():
    points = [(100, 0.97), (200, 0.985), (300, 0.984), (400, 0.994)]
    assert tta.first_reach(points, 0.985) == 200
    assert tta.first_reach(points, 0.98) == pytest.approx(100 + 100 * 2 / 3)  # between the two checks around it
    assert tta.first_reach(points, 0.989) == pytest.approx(350)  # after the dip: the first crossing from below
    assert tta.first_reach(points, 0.95) == 100                   # already there at the first check
    assert tta.first_reach(points, 0.995) is None


def test_the_third_target_is_a_fraction_of_the_models_own_plateau():
    goals = tta.targets(0.99)
    assert list(goals) == ["98.5%", "99.0%", "99.8% of plateau"]
    assert goals["99.8% of plateau"] == pytest.approx(0.98802)


def test_ratios_are_of_geometric_means_with_a_welch_interval_on_the_logs():
    r = tta.ratio([100, 400], [200, 800])
    assert r["ratio"] == pytest.approx(0.5)
    low, high = r["ci95"]
    assert low < 0.5 < high and low * high == pytest.approx(0.25)  # symmetric on the log scale
    same = tta.ratio([100, 100], [200, 200])
    assert same["ratio"] == pytest.approx(0.5) and same["ci95"] is None  # no spread: no interval, not a point


@pytest.mark.parametrize("low, high, verdict", [(0.3, 0.6, "HOLDS"), (0.38, 0.93, "NOT SHOWN"),
                                                (0.7, 0.9, "DOES NOT HOLD"), (0.4, 1.2, "NOT SHOWN"),
                                                (1.1, 1.5, "DOES NOT HOLD")])
def test_the_half_the_epochs_verdict_needs_the_whole_interval_on_one_side_of_two_thirds(low, high, verdict):
    comparison = {"99.0%": {"images": {"ratio": math.sqrt(low * high), "ci95": [low, high]}}}
    assert tta.half_the_epochs(comparison)["verdict"] == verdict
    no_interval = {"99.0%": {"images": {"ratio": 0.5, "ci95": None}}}
    assert tta.half_the_epochs(no_interval)["verdict"] == "NOT SHOWN"


def test_a_median_counts_never_reached_as_slowest():
    assert tta._median([3, 1, 2]) == 2
    assert tta._median([1, None, 2]) == 2
    assert tta._median([1, None, None]) is None
    assert tta._median([1, 2, 3, None]) == 2.5


def selection(tmp_path: Path) -> Path:
    folder = tmp_path / "selection"
    folder.mkdir()
    arms = {label: {"chosen_lr": 3e-3, "chosen_holdout_acc": 0.5} for label in ("adaptive-lenet", "lenet", "plain-5x5")}
    (folder / "results.json").write_text(summary_text({"arms": arms, "best_plain": "plain-5x5", "command": "c"}))
    return folder


@pytest.mark.slow
@pytest.mark.mnist
def test_a_tiny_study_trains_budget_by_budget_and_refuses_an_edited_curve(mnist_path, tmp_path):
    out = tmp_path / "tta"
    common = dict(selection=selection(tmp_path), seeds=2, jobs=2, data_dir=str(mnist_path), limit_train=456,
                  holdout=200, budgets=(1, 2), compute_results=ROOT / "data" / "compute" / "results.json",
                  log=lambda line: None)
    s = tta.time_to_accuracy(out, **common)
    assert s["missing"] == []
    for label, arm in s["arms"].items():
        assert sorted(arm["per_seed"]) == ["0", "1"]
        for cost in arm["per_seed"].values():
            assert cost["99.0%"] is None  # 256 images cannot reach 99%, so every budget was trained
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == 12 and "lenet-E2-seed1" in runs
    checks = (out / "runs" / "lenet-E2-seed1" / "checks.csv").read_text().splitlines()
    assert len(checks) == 1 + 2 * 3  # 4 batches of 64 per epoch: checks after batches 1, 2 and 3
    text = (out / "results.md").read_text()
    assert "| lenet | 99.0% | 1.00 (no interval: no spread), no bound |" in text  # every seed at the cap
    assert "About half the epochs of LeNet**: NOT SHOWN" in text and (out / "time-to-accuracy.png").exists()
    assert tta.time_to_accuracy(out, print_commands=True, **common)["commands"] == []

    edited = out / "runs" / "lenet-E2-seed1" / "checks.csv"
    edited.write_text(edited.read_text().replace("0.", "0.9", 1))
    with pytest.raises(RecordError, match="lenet-E2-seed1"):
        tta.time_to_accuracy(out, report_only=True, **common)


def costs(images_by_seed: list) -> dict:
    return {"targets": {"99.0%": 0.99},
            "per_seed": {str(i): {"99.0%": None if v is None else {"budget": 8, "images": v}}
                         for i, v in enumerate(images_by_seed)}}


def test_a_seed_that_never_reaches_a_target_bounds_the_ratio_from_one_side():
    compute = {m: {"step_seconds": 0.01, "multiply_adds": 1} for m in ("adaptive-lenet", "lenet")}
    same = {"adaptive-lenet": "adaptive-lenet", "lenet": "lenet"}
    arms = {"adaptive-lenet": costs([300_000, None, 350_000]), "lenet": costs([100_000, 120_000, 110_000])}
    c = tta.compare(arms, "adaptive-lenet", "lenet", compute, same, cap=400_000)["99.0%"]
    assert c["images"]["censored"] == "adaptive" and c["images"]["not_reached"] == [1, 0]
    verdict = tta.half_the_epochs({"99.0%": c})
    assert verdict["verdict"] == "DOES NOT HOLD" and "at least this" in verdict["why"]  # slower even so
    arms["lenet"] = costs([500_000, None, 600_000])  # both censored: no bound either way
    both = tta.compare(arms, "adaptive-lenet", "lenet", compute, same, cap=400_000)
    assert tta.half_the_epochs(both)["verdict"] == "NOT SHOWN"
