"""The committed study folders, tampered with as a user could: every report refuses in one
line naming the run or file, and leaves every file of the folder byte-identical. (The same
checks on freshly trained runs, checkpoints included, are in test_records.py.)"""
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ack_numpy.assets import TRAINED_ADAPTIVE_LENET
from ack_numpy.cli import main

ROOT = Path(__file__).resolve().parents[1]


def committed_lenet_seeds() -> int:
    return len(list((ROOT / "data" / "reproduction" / "runs").glob("lenet-seed*")))


@pytest.fixture
def reproduction(tmp_path):
    copy = tmp_path / "reproduction"
    shutil.copytree(ROOT / "data" / "reproduction", copy)
    return copy


def fingerprint(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def report(folder: Path) -> list[str]:
    """The reproduction's report, as its record names it, on the copy `folder`."""
    return ["reproduce", "--seeds", "10", "--lenet-seeds", str(committed_lenet_seeds()), "--epochs", "10",
            "--report-only", "--out", str(folder)]


def refused(argv: list[str], folder: Path, capsys) -> str:
    before = fingerprint(folder)
    assert main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert fingerprint(folder) == before, "a refused report changed a file"
    return lines[0]


def test_the_untouched_folder_reports(reproduction, capsys):
    assert main(report(reproduction)) == 0


@pytest.mark.parametrize("tamper, names", [
    (lambda f: f.write_text("\n".join(f.read_text().splitlines()[:-1]) + "\n"), "adaptive-lenet-seed9"),  # last epoch cut
    (lambda f: f.write_bytes(f.read_bytes()[:300]), "adaptive-lenet-seed9"),                           # cut mid-row
    (lambda f: f.write_text(f.read_text().replace("0.99", "0.999", 1)), "adaptive-lenet-seed9"),       # an edit
])
def test_a_cut_or_edited_metrics_csv_is_refused_naming_the_run(tamper, names, reproduction, capsys):
    tamper(reproduction / "runs" / "adaptive-lenet-seed9" / "metrics.csv")
    assert f"run {names} " in refused(report(reproduction), reproduction, capsys)


def test_a_cut_config_json_is_refused_naming_the_run(reproduction, capsys):
    config = reproduction / "runs" / "plain-small-seed3" / "config.json"
    config.write_text(config.read_text()[:60])
    line = refused(report(reproduction), reproduction, capsys)
    assert "run plain-small-seed3 " in line and "config.json cannot be read" in line


@pytest.mark.parametrize("remove", ["metrics.csv", "the whole folder"])
def test_a_removed_run_never_makes_a_partial_report_over_a_complete_one(remove, reproduction, capsys):
    folder = reproduction / "runs" / "adaptive-lenet-seed4"
    (folder / "metrics.csv").unlink() if remove == "metrics.csv" else shutil.rmtree(folder)
    line = refused(report(reproduction), reproduction, capsys)
    assert "counts 1 runs as finished that this report would leave out (adaptive-lenet-seed4)" in line


def test_a_record_edited_alone_is_refused(reproduction, capsys):
    record = reproduction / "runs" / "lenet-seed1" / "record.json"
    content = json.loads(record.read_text())
    content["made_from"] += " "
    record.write_text(json.dumps(content, indent=1) + "\n")
    line = refused(report(reproduction), reproduction, capsys)
    assert "run lenet-seed1 " in line and "record.json was edited after it was written" in line


def test_per_image_results_edited_in_a_record_are_refused(tmp_path, capsys):
    ablation = tmp_path / "ablation"
    shutil.copytree(ROOT / "data" / "ablation", ablation)
    record = ablation / "runs" / "adaptive-lenet-seed0" / "record.json"
    content = json.loads(record.read_text())
    content["correct"] = content["correct"][::-1]  # other images right and wrong: McNemar would change
    record.write_text(json.dumps(content, indent=1) + "\n")
    argv = ["study", "ablation", "--seeds", "10", "--selection", str(ROOT / "data" / "lr-selection"),
            "--out", str(ablation), "--report-only"]
    assert "run adaptive-lenet-seed0 " in refused(argv, ablation, capsys)


@pytest.mark.mnist
def test_a_median_file_of_another_model_is_refused(reproduction, mnist_path, capsys):
    from ack_numpy.train import TrainConfig, train

    lenet = TrainConfig(model="lenet", epochs=1, data_dir=str(mnist_path), limit_train=64, limit_test=32,
                        out=str(reproduction.parent / "lenet"))
    train(lenet, log=lambda m: None)
    shutil.copy(reproduction.parent / "lenet" / "checkpoint.npz", reproduction / "adaptive-lenet-median.npz")
    line = refused(report(reproduction), reproduction, capsys)
    assert "adaptive-lenet-median.npz is not the median checkpoint of this study: it holds a lenet model" in line


def test_a_median_file_with_changed_weights_is_refused(reproduction, capsys):
    """Same model, seed and metrics, other weights: the bytes differ from the checkpoint its
    run's record names."""
    median = reproduction / "adaptive-lenet-median.npz"
    arrays = dict(np.load(median))
    arrays["model/features.0.Q"] = np.zeros_like(arrays["model/features.0.Q"])
    with open(median, "wb") as f:
        np.savez(f, **arrays)
    line = refused(report(reproduction), reproduction, capsys)
    assert "adaptive-lenet-median.npz is not the median checkpoint of this study: its bytes are not those" in line


def test_a_median_file_cut_short_is_refused(reproduction, capsys):
    median = reproduction / "adaptive-lenet-median.npz"
    median.write_bytes(median.read_bytes()[:20000])
    line = refused(report(reproduction), reproduction, capsys)
    assert "adaptive-lenet-median.npz is not the median checkpoint of this study: it cannot be read" in line
    assert line.endswith("refusing to report it (restore the file, or remove it to have it written again)")


def test_a_report_that_cannot_write_one_file_writes_none(reproduction, capsys):
    (reproduction / "accuracy.png").unlink()
    (reproduction / "accuracy.png").mkdir()  # a folder where the figure goes
    line = refused(report(reproduction), reproduction, capsys)
    assert "accuracy.png" in line and "is a folder, not a file" in line


def test_write_report_files_checks_every_file_before_writing_any(tmp_path):
    from ack_numpy.lab.records import write_report_files

    (tmp_path / "results.json").write_text("old")
    (tmp_path / "figure.png").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder, not a file"):
        write_report_files(tmp_path, {"results.json": "new"}, {"figure.png": lambda f: f.write(b"png")})
    assert (tmp_path / "results.json").read_text() == "old"


def test_a_results_json_edited_alone_never_reaches_the_ledger(tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data", data, ignore=shutil.ignore_patterns("mnist", "runs", "*.png", "*.gif", "*.npz"))
    results = data / "reproduction" / "results.json"
    summary = json.loads(results.read_text())
    summary["models"]["adaptive-lenet"]["final_test_acc_per_seed"]["0"] = 0.9999
    results.write_text(json.dumps(summary, indent=2) + "\n")
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    before = fingerprint(tmp_path)
    assert main(["study", "ledger", "--out", str(readme)]) == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"error: {results} is not the file its report wrote") and "\n" not in line
    assert f"--out {results.parent} --report-only" in line  # the command for the folder at fault
    assert fingerprint(tmp_path) == before


# ----------------------------------------------------------------------------- the committed figures
def block_means(path: Path, n: int = 8) -> np.ndarray:
    """The PNG in grey, averaged over n x n blocks: a one-pixel shift between matplotlib
    versions moves these little, another model's kernels move them a lot."""
    from matplotlib.image import imread

    grey = imread(path)[..., :3].mean(axis=-1)
    h, w = grey.shape[0] // n * n, grey.shape[1] // n * n
    return grey[:h, :w].reshape(h // n, n, w // n, n).mean(axis=(1, 3))


def png_text(path: Path) -> dict[str, str]:
    """A PNG's text chunks (Software, Description), read with Pillow, which matplotlib needs anyway."""
    from PIL import Image

    with Image.open(path) as image:
        return dict(image.text)


@pytest.mark.mnist
def test_the_committed_kernel_figures_are_the_packaged_models(mnist_path, tmp_path):
    """data/README.md: data/figures is what `visualize` draws from the packaged model
    (`--checkpoint ack_numpy/assets/adaptive-lenet.npz --index 0`). Each PNG's Description (layer,
    channel, image and the weights' digest) must be what a redraw writes, on any machine. The pixels
    are compared too where this matplotlib is the one that drew them: redrawn from the packaged
    model, matplotlib 3.6.3 and 3.9.4 move the block means by 0.009-0.078 (their own text layout),
    as much as another model does with the same matplotlib (0.017-0.083, the reproduction's
    median checkpoint); the same matplotlib moves them by 0.000."""
    from ack_numpy.viz import write_figures

    redrawn = [p for p in write_figures(TRAINED_ADAPTIVE_LENET, tmp_path, data_dir=mnist_path, index=0)
               if p.suffix == ".png"]
    assert len(redrawn) == 5
    for drawn in redrawn:
        committed = ROOT / "data" / "figures" / drawn.name
        said, says = png_text(committed), png_text(drawn)
        assert said.get("Description") == says["Description"], (
            f"data/figures/{drawn.name} says it was drawn from {said.get('Description')!r}, not from the packaged model")
        if said.get("Software") != says.get("Software"):
            continue  # another matplotlib: another layout, so the Description above is the check
        new, old = block_means(drawn), block_means(committed)
        h, w = min(new.shape[0], old.shape[0]), min(new.shape[1], old.shape[1])
        difference = np.abs(new[:h, :w] - old[:h, :w]).mean()
        assert difference < 0.005, f"data/figures/{drawn.name} is not what the packaged model draws ({difference:.3f})"


def test_the_ablation_and_the_reproduction_hold_the_same_adaptive_lenet_runs():
    """data/ablation/results.md says so: same settings, same machine, the same runs seed by seed."""
    def numbers(study: str, seed: int) -> list[list[str]]:  # every column but the seconds and the lr
        text = (ROOT / "data" / study / "runs" / f"adaptive-lenet-seed{seed}" / "metrics.csv").read_text()
        return [line.split(",")[:5] for line in text.splitlines()]

    for seed in range(10):
        assert numbers("ablation", seed) == numbers("reproduction", seed), f"seed {seed}"
