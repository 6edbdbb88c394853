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

from ack_numpy import functional as F
from ack_numpy.checkpoint import save_checkpoint
from ack_numpy.cli import main
from ack_numpy.models import build_model
from ack_numpy.train import write_metrics
from ack_numpy.viz import (DPI, FIGURE_FILES, plot_adaptation, plot_digit_kernels, plot_feature_maps,
                           plot_kernel_field, plot_q_filters, plot_training_curves, write_figures)
from ack_numpy.viz.figures import save


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


# ----------------------------------------------------------------------------- figures vs references
def test_kernel_field_matches_literal_loops(model, images, tmp_path):
    layer = model.features[0]
    fig, arrays = plot_kernel_field(model, images[0], layer=0, channel=3)
    expected = F.adaptive_kernels_loops(images[:1], layer.Q.data, layer.w.data)
    np.testing.assert_allclose(arrays["kernels"], expected[0, 3], rtol=1e-5, atol=1e-6)
    rows, cols = arrays["rows"], arrays["cols"]
    np.testing.assert_array_equal(rows, np.arange(0, 26, 4))  # 3x3 patches one pixel apart
    np.testing.assert_allclose(arrays["tiles"], expected[0, 3][np.ix_(rows, cols)][:, :, 0], rtol=1e-5, atol=1e-6)
    check_png(fig, tmp_path / "field.png")


def test_q_filters_are_rows_of_Q(model, tmp_path):
    layer = model.features[0]
    fig, arrays = plot_q_filters(model, layer=0, channel=5)
    for u in range(3):
        for v in range(3):
            e = 3 * u + v  # kernel element (u, v) of a 1-channel 3x3 kernel
            np.testing.assert_array_equal(arrays["shown"][u, v], layer.Q.data[5, e].reshape(3, 3))
    np.testing.assert_array_equal(arrays["w"][0], layer.w.data[5].reshape(3, 3))
    check_png(fig, tmp_path / "q.png")


def test_adaptation_distance_by_loops(model, images, tmp_path):
    layer = model.features[0]
    fig, arrays = plot_adaptation(model, images[1], layer=0, channel=2)
    kernels = F.adaptive_kernels(images[1:2], layer.Q.data, layer.w.data)[0, 2]   # (26, 26, 1, 3, 3)
    np.testing.assert_allclose(arrays["kernels"], kernels)
    mean = kernels.reshape(26 * 26, 9).mean(axis=0)
    expected = np.array([[np.linalg.norm(kernels[i, j].ravel() - mean) for j in range(26)] for i in range(26)])
    np.testing.assert_allclose(arrays["distance"], expected, rtol=1e-4, atol=1e-6)
    check_png(fig, tmp_path / "adapt.png")


def test_feature_maps_are_tanh_sigma(model, images, tmp_path):
    layer = model.features[0]
    fig, arrays = plot_feature_maps(model, images[2], layer=0)
    sigma = F.adaptive_conv2d_loops(images[2:3], layer.Q.data, layer.w.data, layer.b.data)
    np.testing.assert_allclose(arrays["outputs"], np.tanh(sigma[0]), rtol=1e-5, atol=1e-6)
    check_png(fig, tmp_path / "maps.png")


def test_feature_maps_without_tanh_show_sigma_on_its_own_scale(images, tmp_path):
    model = build_model("adaptive-lenet", seed=1)
    layer = model.features[0]
    layer.activation = "none"
    fig, arrays = plot_feature_maps(model, images[2], layer=0)
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
    fig, arrays = plot_kernel_field(model, images[0], layer=1, channel=7)
    np.testing.assert_allclose(arrays["kernels"], expected, rtol=1e-5, atol=1e-6)
    check_png(fig, tmp_path / "field1.png")
    fig, arrays = plot_q_filters(model, layer=1, channel=7)
    np.testing.assert_array_equal(arrays["filters"].reshape(72, 72), second.Q.data[7])
    check_png(fig, tmp_path / "q1.png")


def test_digit_kernels_on_real_mnist(model, mnist_path, tmp_path):
    from ack_numpy.data import load_mnist

    x, y = load_mnist("test", mnist_path, limit=100)
    firsts = np.array([np.flatnonzero(y == d)[0] for d in range(10)])
    layer = model.features[0]
    fig, arrays = plot_digit_kernels(model, x[firsts], y[firsts], layer=0, channel=1)
    assert arrays["location"] == (13, 13)  # the centre of 26 x 26
    expected = F.adaptive_kernels(x[firsts], layer.Q.data, layer.w.data)[:, 1, 13, 13]   # (10, 1, 3, 3)
    np.testing.assert_allclose(arrays["kernels"], expected)
    np.testing.assert_allclose(arrays["std"], expected.std(axis=0), rtol=1e-5, atol=1e-7)
    assert arrays["std"].max() > 0  # different digits really get different kernels
    check_png(fig, tmp_path / "digits.png")


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
        assert 400 <= width <= 1500 and 300 <= height <= 700, (name, width, height)
    printed = capsys.readouterr().out
    assert "to write them again: python -m ack_numpy visualize --checkpoint" in printed
    assert "--digit 3 --layer 0 --channel 2" in printed


def test_write_figures_uses_the_requested_image(checkpoint, mnist_path, tmp_path):
    paths = write_figures(checkpoint, tmp_path, data_dir=mnist_path, index=5, layer=0, channel=0)
    assert [p.name for p in paths] == list(FIGURE_FILES)


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
    (["--location", "26", "0"], "location (26, 0) is outside"),
])
def test_bad_image_arguments(args, message, checkpoint, mnist_path, tmp_path, capsys):
    code = main(["visualize", "--checkpoint", str(checkpoint), "--data-dir", str(mnist_path),
                 "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists()
