"""ack_numpy.viz: every figure draws the kernels the model really computes.

The references here are independent of viz: the literal loop version
`adaptive_conv2d_loops`, `F.adaptive_kernels` on an input built by calling the
functional ops by hand, and explicit loops for distances and filters.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import Normalize

from ack_numpy import functional as F
from ack_numpy.checkpoint import save_checkpoint
from ack_numpy.cli import main
from ack_numpy.models import build_model
from ack_numpy.train import write_metrics
from ack_numpy.viz import (DPI, FIGURE_FILES, layer_view, plot_adaptation, plot_digit_kernels, plot_feature_maps,
                           plot_kernel_field, plot_q_filters, plot_training_curves, write_figures)
from ack_numpy.viz.figures import cell_label, save


# ----------------------------------------------------------------------------- helpers
def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk: 8-byte signature, length, b'IHDR', then >II."""
    data = Path(path).read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def check_png(fig, path: Path) -> None:
    """Save the figure; the PNG must be non-empty, small, and figsize * DPI pixels."""
    save(fig, path)
    width, height = fig.get_size_inches()
    assert png_size(path) == (round(width * DPI), round(height * DPI))
    assert 0 < path.stat().st_size < 300_000


def save_model(path: Path, model, name: str = "adaptive-lenet", options: dict | None = None) -> Path:
    meta = {"model": name, "model_options": options or {}, "epoch": 0}
    return save_checkpoint(path, model.state_dict(), {}, meta)


@pytest.fixture(scope="module")
def model():
    return build_model("adaptive-lenet", seed=0)


@pytest.fixture(scope="module")
def images():
    """Four synthetic 28x28 'images' in [0, 1] with a bright square each."""
    x = np.random.default_rng(1).uniform(0, 0.2, size=(4, 1, 28, 28)).astype(np.float32)
    for n in range(4):
        x[n, 0, 4 + 4 * n : 12 + 4 * n, 6:20] = 1.0
    return x


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, model):
    return save_model(tmp_path_factory.mktemp("ckpt") / "checkpoint.npz", model)


def assert_diverging_scales_centred(fig) -> None:
    """Every image on the red-blue map has limits -a..a and shares its scale with a colour bar."""
    images = [a for a in fig.findobj() if hasattr(a, "get_clim") and a.get_cmap().name == "RdBu_r"]
    bars = [a.colorbar for a in images if getattr(a, "colorbar", None) is not None]
    assert images and bars
    for image in images:
        lo, hi = image.get_clim()
        assert lo == -hi and hi > 0
        assert any(bar.mappable.norm is image.norm for bar in bars), "a diverging image without a colour bar"


# ----------------------------------------------------------------------------- figures vs references
def test_layer_view_holds_kernels_w_qp_and_sigma_of_the_channel(model, images):
    layer = model.features[0]
    view = layer_view(model, images[:2], layer=0, channel=4)
    kernels = F.adaptive_kernels_loops(images[:2], layer.Q.data, layer.w.data)[:, 4]     # (2, 26, 26, 1, 3, 3)
    np.testing.assert_allclose(view.kernels, kernels, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(view.w, layer.w.data[4].reshape(1, 3, 3))
    qp = F.adaptive_kernels_loops(images[:2], layer.Q.data, None)[:, 4]                  # Q p alone
    np.testing.assert_allclose(view.qp, qp, rtol=1e-5, atol=1e-6)
    sigma = F.adaptive_conv2d_loops(images[:2], layer.Q.data, layer.w.data, layer.b.data)[:, 4]
    np.testing.assert_allclose(view.sigma, sigma, rtol=1e-5, atol=1e-5)
    assert view.b == layer.b.data[4]
    np.testing.assert_allclose(view.outputs[:, 4], np.tanh(sigma), rtol=1e-5, atol=1e-6)


def test_cell_labels_have_no_minus_zero_and_are_readable():
    norm = Normalize(-1.0, 1.0)
    assert cell_label(-0.004, norm) == ("0.00", "black")           # rounds to zero: no sign
    assert cell_label(-0.006, norm) == ("-0.01", "black")
    assert cell_label(-0.9, norm) == ("-0.90", "white")            # a strong colour: white text
    assert cell_label(0.9, Normalize(0.0, 1.0), dark_above=True) == ("0.90", "white")
    assert cell_label(0.1, Normalize(0.0, 1.0), dark_above=True) == ("0.10", "black")


def test_kernel_field_matches_literal_loops(model, images, tmp_path):
    layer = model.features[0]
    fig, arrays = plot_kernel_field(layer_view(model, images[:1], layer=0, channel=3))
    expected = F.adaptive_kernels_loops(images[:1], layer.Q.data, layer.w.data)
    np.testing.assert_allclose(arrays["kernels"], expected[0, 3], rtol=1e-5, atol=1e-6)
    rows, cols = arrays["rows"], arrays["cols"]
    np.testing.assert_array_equal(rows, np.arange(1, 26, 4))  # 3x3 patches one pixel apart, through 13
    np.testing.assert_allclose(arrays["tiles"], expected[0, 3][np.ix_(rows, cols)][:, :, 0], rtol=1e-5, atol=1e-6)
    assert arrays["location"] == (13, 13)
    assert_diverging_scales_centred(fig)
    check_png(fig, tmp_path / "field.png")


@pytest.mark.parametrize("location", [(0, 25), (7, 2), (22, 13)])
def test_kernel_field_grid_passes_through_the_chosen_location(model, images, location):
    fig, arrays = plot_kernel_field(layer_view(model, images[:1]), location=location)
    assert location[0] in arrays["rows"] and location[1] in arrays["cols"]
    assert np.all(np.diff(arrays["rows"]) == 4) and np.all(np.diff(arrays["cols"]) == 4)
    assert any("showing through" in text.get_text() for text in fig.texts)  # the supxlabel (any matplotlib)


def test_q_filters_are_rows_of_Q(model, images, tmp_path):
    layer = model.features[0]
    fig, arrays = plot_q_filters(layer_view(model, images[:1], layer=0, channel=5))
    for u in range(3):
        for v in range(3):
            e = 3 * u + v  # kernel element (u, v) of a 1-channel 3x3 kernel
            np.testing.assert_array_equal(arrays["shown"][u, v], layer.Q.data[5, e].reshape(3, 3))
    np.testing.assert_array_equal(arrays["w"][0], layer.w.data[5].reshape(3, 3))
    assert_diverging_scales_centred(fig)
    check_png(fig, tmp_path / "q.png")


def test_adaptation_distance_by_loops(model, images, tmp_path):
    layer = model.features[0]
    fig, arrays = plot_adaptation(layer_view(model, images[:2], layer=0, channel=2), which=1)
    kernels = F.adaptive_kernels(images[1:2], layer.Q.data, layer.w.data)[0, 2]   # (26, 26, 1, 3, 3)
    np.testing.assert_allclose(arrays["kernels"], kernels)
    mean = kernels.reshape(26 * 26, 9).mean(axis=0)
    expected = np.array([[np.linalg.norm(kernels[i, j].ravel() - mean) for j in range(26)] for i in range(26)])
    np.testing.assert_allclose(arrays["distance"], expected, rtol=1e-4, atol=1e-6)
    check_png(fig, tmp_path / "adapt.png")


def test_feature_maps_are_tanh_sigma(model, images, tmp_path):
    layer = model.features[0]
    fig, arrays = plot_feature_maps(layer_view(model, images[2:3]))
    sigma = F.adaptive_conv2d_loops(images[2:3], layer.Q.data, layer.w.data, layer.b.data)
    np.testing.assert_allclose(arrays["outputs"], np.tanh(sigma[0]), rtol=1e-5, atol=1e-6)
    check_png(fig, tmp_path / "maps.png")


def test_feature_maps_without_tanh_show_sigma_on_its_own_scale(images, tmp_path):
    model = build_model("adaptive-lenet", seed=1)
    layer = model.features[0]
    layer.activation = "none"
    fig, arrays = plot_feature_maps(layer_view(model, images[2:3]))
    sigma = F.adaptive_conv2d_loops(images[2:3], layer.Q.data, layer.w.data, layer.b.data)
    np.testing.assert_allclose(arrays["outputs"], sigma[0], rtol=1e-5, atol=1e-5)
    assert "y = sigma" in fig._suptitle.get_text()
    image = [a for a in fig.findobj() if hasattr(a, "get_clim")][1]
    assert image.get_clim()[1] == pytest.approx(np.abs(sigma).max(), rel=1e-5)


def test_deeper_layer_sees_the_pooled_first_layer(images, tmp_path):
    """--layer 1 of a model with two adaptive layers: its input is pool(tanh(layer 0))."""
    model = build_model("adaptive-lenet", seed=0, adaptive=(True, True), kernel_sizes=(3, 3))
    first, second = model.features[0], model.features[2]
    x1 = F.max_pool2d(F.adaptive_conv2d(images[:1], first.Q, first.w, first.b).tanh(), 2).data  # (1, 8, 13, 13)
    expected = F.adaptive_kernels(x1, second.Q.data, second.w.data)[0, 7]                        # (11, 11, 8, 3, 3)
    fig, arrays = plot_kernel_field(layer_view(model, images[:1], layer=1, channel=7))
    np.testing.assert_allclose(arrays["kernels"], expected, rtol=1e-5, atol=1e-6)
    check_png(fig, tmp_path / "field1.png")
    fig, arrays = plot_q_filters(layer_view(model, images[:1], layer=1, channel=7))
    np.testing.assert_array_equal(arrays["filters"].reshape(72, 72), second.Q.data[7])
    check_png(fig, tmp_path / "q1.png")


def test_digit_kernels_on_real_mnist(model, mnist_path, tmp_path):
    from ack_numpy.data import load_mnist

    x, y = load_mnist("test", mnist_path, limit=100)
    firsts = np.array([np.flatnonzero(y == d)[0] for d in range(10)])
    layer = model.features[0]
    fig, arrays = plot_digit_kernels(layer_view(model, x[firsts], layer=0, channel=1), y[firsts])
    assert arrays["location"] == (13, 13)  # the centre of 26 x 26
    expected = F.adaptive_kernels(x[firsts], layer.Q.data, layer.w.data)[:, 1, 13, 13]   # (10, 1, 3, 3)
    np.testing.assert_allclose(arrays["kernels"], expected)
    np.testing.assert_allclose(arrays["std"], expected.std(axis=0), rtol=1e-5, atol=1e-7)
    assert arrays["std"].max() > 0  # different digits really get different kernels
    # the drawn parts: w, Q p (adaptive_kernels without w), and the patch (k = Q p + w by hand)
    np.testing.assert_array_equal(arrays["w"], layer.w.data[1].reshape(1, 3, 3))
    qp = F.adaptive_kernels(x[firsts], layer.Q.data, None)[:, 1, 13, 13]
    np.testing.assert_allclose(arrays["qp"], qp, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(arrays["patches"], x[firsts][:, :, 13:16, 13:16])
    by_hand = arrays["patches"].reshape(10, 9) @ layer.Q.data[1].T + layer.w.data[1]
    np.testing.assert_allclose(arrays["kernels"].reshape(10, 9), by_hand, rtol=1e-5, atol=1e-6)
    blank = arrays["blank"]
    np.testing.assert_array_equal(blank, x[firsts][:, 0, 13:16, 13:16].max(axis=(1, 2)) == 0)
    assert blank.any() and not blank.all()  # the real centre patches: some blank, some inked
    np.testing.assert_array_equal(arrays["kernels"][blank], np.broadcast_to(arrays["w"], (blank.sum(), 1, 3, 3)))
    assert_diverging_scales_centred(fig)
    check_png(fig, tmp_path / "digits.png")


def test_digit_kernels_honour_location_and_chosen_image(model, mnist_path, tmp_path):
    from ack_numpy.data import load_mnist

    x, y = load_mnist("test", mnist_path, limit=100)
    picked = np.array([5, 0, 1])
    layer = model.features[0]
    fig, arrays = plot_digit_kernels(layer_view(model, x[picked]), y[picked], location=(4, 20),
                                     names=["a", "b", "c"], chosen=0)
    assert arrays["location"] == (4, 20)
    expected = F.adaptive_kernels(x[picked], layer.Q.data, layer.w.data)[:, 0, 4, 20]
    np.testing.assert_allclose(arrays["kernels"], expected, rtol=1e-6)
    np.testing.assert_array_equal(arrays["patches"], x[picked][:, :, 4:7, 20:23])
    assert "(chosen)" in fig.axes[0].get_title()


def test_write_figures_puts_the_chosen_image_first(checkpoint, mnist_path, tmp_path, monkeypatch):
    from ack_numpy import viz

    seen = {}
    real = viz.plot_digit_kernels

    def spy(view, labels, *args, **kwargs):
        seen.update(labels=labels, kwargs=kwargs, args=args, view=view)
        return real(view, labels, *args, **kwargs)

    monkeypatch.setattr(viz, "plot_digit_kernels", spy)
    paths = write_figures(checkpoint, tmp_path, data_dir=mnist_path, digit=4, location=(3, 5))
    assert paths == [tmp_path / name for name in FIGURE_FILES]
    assert seen["labels"][0] == 4 and sorted(seen["labels"]) == list(range(10))
    assert seen["args"][0] == (3, 5) and seen["kwargs"]["chosen"] == 0
    assert len(seen["view"].x) == 10  # one run of the model for every figure: the chosen image and nine others
    assert seen["kwargs"]["names"][0].startswith("test 4")  # the first 4 in the test set is image 4


def test_each_kernel_figure_says_what_it_was_drawn_from(checkpoint, model, mnist_path, tmp_path):
    from PIL import Image

    from ack_numpy.viz import weights_sha256

    digest = weights_sha256(model)
    for path in write_figures(checkpoint, tmp_path, data_dir=mnist_path, digit=4, channel=2):
        with Image.open(path) as image:
            said = image.text["Description"]
        assert said == (f"ack_numpy: adaptive layer 0 (3x3, 1 in, 8 out), output channel 2, test image 4 (digit 4); "
                        f"AdaptiveLeNet with weights sha256 {digest}")


def test_the_weights_digest_changes_with_any_weight_and_only_with_the_weights():
    from ack_numpy.viz import weights_sha256

    model = build_model("adaptive-lenet", seed=0)  # its own: this test changes a weight
    before = weights_sha256(model)
    assert weights_sha256(build_model("adaptive-lenet", seed=0)) == before and len(before) == 64
    assert weights_sha256(build_model("adaptive-lenet", seed=1)) != before
    layer = model.features[0]
    layer.Q.data[0, 0, 0] = np.nextafter(layer.Q.data[0, 0, 0], np.float32(np.inf))  # one float32 step
    assert weights_sha256(model) != before


def test_draw_run_reads_the_checkpoint_once(checkpoint, mnist_path, tmp_path, monkeypatch):
    import shutil

    from ack_numpy import checkpoint as checkpoints
    from ack_numpy.runs import CHECKPOINT_NAME
    from ack_numpy.viz.run_figures import draw_run

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(checkpoint, run / CHECKPOINT_NAME)
    write_metrics(run / "metrics.csv", [{"epoch": 1, "train_loss": 0.2, "train_acc": 0.9, "test_loss": 0.1,
                                         "test_acc": 0.95, "seconds": 1.0, "lr": 1e-3}])
    loads = []
    real = checkpoints.load_model
    monkeypatch.setattr(checkpoints, "load_model", lambda path: loads.append(path) or real(path))
    written = draw_run(run, str(mnist_path))
    assert loads == [run / CHECKPOINT_NAME]
    assert [path.name for path in written] == ["curves.png", *FIGURE_FILES]


def test_training_curves(tmp_path):
    runs = []
    for name, accs in [("lenet", [0.98, 0.99]), ("adaptive-lenet", [0.97, 0.985])]:
        run = tmp_path / name
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"model": name}))
        write_metrics(run / "metrics.csv", [
            {"epoch": e + 1, "train_loss": 0.3 / (e + 1), "train_acc": a - 0.01, "test_loss": 0.2 / (e + 1),
             "test_acc": a, "seconds": 1.0, "lr": 1e-3} for e, a in enumerate(accs)])
        runs.append(run)
    fig, data = plot_training_curves(runs)
    assert [[r["test_acc"] for r in rows] for rows in data.values()] == [[0.98, 0.99], [0.97, 0.985]]
    assert list(data)[1] == f"adaptive-lenet ({runs[1]})"
    check_png(fig, tmp_path / "curves.png")


# ----------------------------------------------------------------------------- the command
def test_visualize_command_writes_every_figure(checkpoint, mnist_path, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    write_metrics(run / "metrics.csv", [{"epoch": 1, "train_loss": 0.2, "train_acc": 0.9, "test_loss": 0.1,
                                         "test_acc": 0.95, "seconds": 1.0, "lr": 1e-3}])
    out = tmp_path / "figures"
    code = main(["visualize", "--checkpoint", str(checkpoint), "--data-dir", str(mnist_path), "--digit", "3",
                 "--channel", "2", "--runs", str(run), "--out", str(out)])
    assert code == 0
    for name in FIGURE_FILES + ("curves.png",):
        assert 0 < (out / name).stat().st_size < 300_000, name
        width, height = png_size(out / name)
        assert 400 <= width <= 1500 and 300 <= height <= 720, (name, width, height)
    printed = capsys.readouterr().out
    assert "to write them again: python -m ack_numpy visualize --checkpoint" in printed
    assert "--digit 3 --layer 0 --channel 2" in printed


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, checkpoint):
    folder = tmp_path_factory.mktemp("bad")
    lenet = save_model(folder / "lenet.npz", build_model("lenet", seed=0), name="lenet")
    truncated = folder / "truncated.npz"
    truncated.write_bytes(Path(checkpoint).read_bytes()[:2000])
    garbage = folder / "garbage.npz"
    garbage.write_bytes(b"not a checkpoint at all")
    return {"lenet": lenet, "truncated": truncated, "garbage": garbage, "missing": folder / "missing.npz"}


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "GOOD", "--layer", "1"], "layer 1 does not exist"),
    (["--checkpoint", "GOOD", "--layer", "-1"], "layer -1 does not exist"),
    (["--checkpoint", "GOOD", "--channel", "8"], "channel 8 is out of range"),
    (["--checkpoint", "GOOD", "--index", "3", "--digit", "4"], "either --index or --digit"),
    (["--checkpoint", "lenet"], "no adaptive layers"),
    (["--checkpoint", "missing"], "checkpoint not found"),
    (["--checkpoint", "truncated"], "ack_numpy checkpoint"),
    (["--checkpoint", "garbage"], "ack_numpy checkpoint"),
    (["--runs", "missing"], "metrics.csv not found"),
    ([], "needs --checkpoint"),
])
def test_bad_arguments_give_one_error_line(args, message, checkpoint, bad_files, tmp_path, capsys):
    files = {"GOOD": checkpoint, **bad_files}
    args = [str(files.get(a, a)) for a in args]
    code = main(["visualize", "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert message in err
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.parametrize("args, message", [
    (["--index", "10000"], "index 10000 is out of range"),
    (["--index", "-1"], "index -1 is out of range"),
    (["--digit", "10"], "digit must be 0..9"),
    (["--location", "26", "0"], "location (26, 0) is out of range"),
])
def test_bad_image_arguments(args, message, checkpoint, mnist_path, tmp_path, capsys):
    code = main(["visualize", "--checkpoint", str(checkpoint), "--data-dir", str(mnist_path),
                 "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- kernels across training
def test_kernel_recorder_stores_adaptive_kernels_each_epoch(images, tmp_path):
    from ack_numpy.viz.evolution import KernelRecorder, plot_kernel_evolution, read_record

    model = build_model("adaptive-lenet", seed=3)
    layer = model.features[0]
    recorder = KernelRecorder(images[:2], locations=[(13, 13), (2, 20)], channel=4, path=tmp_path / "rec.npz")
    expected = []
    for epoch in (1, 2):
        recorder(epoch, model)
        expected.append(F.adaptive_kernels(images[:2], layer.Q.data, layer.w.data)[:, 4][:, [13, 2], [13, 20]])
        layer.Q.data += 0.05  # stands in for an epoch of training
    record = read_record(tmp_path / "rec.npz")
    np.testing.assert_array_equal(record["epochs"], [1, 2])
    np.testing.assert_allclose(record["kernels"], np.stack(expected), rtol=1e-6)
    assert not np.allclose(record["kernels"][0], record["kernels"][1])
    fig, arrays = plot_kernel_evolution(record)
    np.testing.assert_allclose(arrays["kernels"][:, 3], np.stack(expected)[:, 1, 1, 0], rtol=1e-6)  # image 1, (2, 20)
    np.testing.assert_allclose(arrays["change"], arrays["kernels"][-1] - arrays["kernels"][0])
    assert arrays["rows"][3] == (1, 2, 20)
    assert_diverging_scales_centred(fig)
    check_png(fig, tmp_path / "evolution.png")


def test_kernel_recorder_continues_a_record_when_resuming(images, tmp_path):
    from ack_numpy.viz.evolution import KernelRecorder, read_record

    model, path = build_model("adaptive-lenet", seed=3), tmp_path / "rec.npz"
    KernelRecorder(images[:1], path=path)(1, model)
    resumed = KernelRecorder(images[:1], path=path, keep=True)
    resumed(2, model)
    resumed(2, model)  # an epoch recorded again replaces its entry
    assert list(read_record(path)["epochs"]) == [1, 2]
    assert list(read_record(path)["locations"].ravel()) == [13, 13, 8, 13]  # centre and upper centre
    KernelRecorder(images[:1], path=path)(1, model)  # a new run starts the record again
    assert list(read_record(path)["epochs"]) == [1]
    with pytest.raises(ValueError, match="other images"):
        KernelRecorder(images[1:2], path=path, keep=True)
    KernelRecorder(images[:1], path=path)(1, build_model("lenet", seed=0))  # no adaptive layer: nothing
    assert list(read_record(path)["epochs"]) == [1]


def test_train_visualize_draws_kernels_across_training(mnist_path, tmp_path, capsys):
    from ack_numpy.checkpoint import load_model
    from ack_numpy.data import load_mnist
    from ack_numpy.viz.evolution import read_record

    out = tmp_path / "run"
    tiny = ["--limit-train", "256", "--limit-test", "64", "--schedule", "constant", "--data-dir", str(mnist_path)]
    assert main(["train", "--model", "adaptive-lenet", "--epochs", "2", "--out", str(out), "--visualize", *tiny]) == 0
    record = read_record(out / "figures" / "kernel_evolution.npz")
    assert list(record["epochs"]) == [0, 1, 2] and (out / "figures" / "kernel_evolution.png").stat().st_size > 0
    untrained = build_model("adaptive-lenet", seed=0).features[0]  # the run starts from the seed's weights
    x, y = load_mnist("test", mnist_path)
    firsts = [int(np.flatnonzero(y == d)[0]) for d in (0, 1, 7)]
    start = F.adaptive_kernels(x[firsts], untrained.Q.data, untrained.w.data)[:, 0][:, [13, 8], [13, 13]]
    np.testing.assert_allclose(record["kernels"][0], start, rtol=1e-5, atol=1e-6)
    assert list(record["indices"]) == firsts and list(record["labels"]) == [0, 1, 7]
    model, _ = load_model(out / "checkpoint.npz")  # the kernels after the last epoch are the saved model's
    layer = model.features[0]
    final = F.adaptive_kernels(x[firsts], layer.Q.data, layer.w.data)[:, 0][:, [13, 8], [13, 13]]
    np.testing.assert_allclose(record["kernels"][-1], final, rtol=1e-5, atol=1e-6)
    kept = (out / "figures" / "kernel_evolution.npz").read_bytes()
    again = ["train", "--model", "adaptive-lenet", "--epochs", "2", "--out", str(out), "--visualize", *tiny]
    assert main(again) != 0  # refused (the folder holds a finished run), and its record is left as it was
    assert (out / "figures" / "kernel_evolution.npz").read_bytes() == kept
    assert main(["train", "--resume", str(out), "--epochs", "3", "--visualize", "--data-dir", str(mnist_path)]) == 0
    assert list(read_record(out / "figures" / "kernel_evolution.npz")["epochs"]) == [0, 1, 2, 3]
    assert "kernel_evolution.png" in capsys.readouterr().out


def test_resume_visualize_of_a_run_stopped_in_its_first_epoch_records_the_untrained_kernels(mnist_path, tmp_path):
    import io

    from ack_numpy.progress import Progress
    from ack_numpy.train import TrainConfig, train
    from ack_numpy.viz.evolution import read_record

    def stop_at_batch_3(position, model):
        if position.batch == 3:
            raise KeyboardInterrupt  # as a Ctrl-C between two batches: the loop saves where it is

    out = tmp_path / "run"
    config = TrainConfig(model="adaptive-lenet", epochs=1, limit_train=256, limit_test=64, batch_size=32,
                         data_dir=str(mnist_path), out=str(out))
    with pytest.raises(KeyboardInterrupt):
        train(config, log=lambda line: None, progress=Progress(io.StringIO()), on_batch_end=stop_at_batch_3)
    assert not (out / "figures").exists()  # nothing recorded yet
    assert main(["train", "--resume", str(out), "--visualize", "--data-dir", str(mnist_path)]) == 0
    record = read_record(out / "figures" / "kernel_evolution.npz")
    assert list(record["epochs"]) == [0, 1]
    untrained = build_model("adaptive-lenet", seed=0).features[0]
    x = record["images"]
    start = F.adaptive_kernels(x, untrained.Q.data, untrained.w.data)[:, 0][:, [13, 8], [13, 13]]
    np.testing.assert_allclose(record["kernels"][0], start, rtol=1e-5, atol=1e-6)
