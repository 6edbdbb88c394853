"""The explorer (ack_numpy/viz/explorer.py) driven without a screen, and `python -m ack_numpy explore`.

The window is sent synthetic matplotlib mouse and key events on the Agg backend through the
figure's own canvas, exactly as a GUI would deliver them; the arrays it reports drawing are
compared with `adaptive_kernels` called directly."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.backend_bases import KeyEvent, MouseEvent
from PIL import Image

from ack_numpy import functional as F
from ack_numpy.checkpoint import save_checkpoint
from ack_numpy.cli import main
from ack_numpy.models import build_model
from ack_numpy.viz.explorer import Explorer, write_sweep_gif
from ack_numpy.viz.kernels import layer_input, select_adaptive_layer

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def synthetic_images() -> tuple[np.ndarray, np.ndarray]:
    """Ten 28x28 images, one per digit label: a bar at a different place in each, zeros elsewhere."""
    images = np.zeros((10, 1, 28, 28), dtype=np.float32)
    for d in range(10):
        images[d, 0, 4 + 2 * d : 7 + 2 * d, 6:20] = 1.0
    return images, np.arange(10)


@pytest.fixture
def explorer():
    images, labels = synthetic_images()
    e = Explorer(build_model("adaptive-lenet", seed=0), images, labels)
    e.fig.canvas.draw()
    yield e
    matplotlib.pyplot.close(e.fig)


def send_key(e: Explorer, key: str) -> None:
    event = KeyEvent("key_press_event", e.fig.canvas, key)
    e.fig.canvas.callbacks.process(event.name, event)


def send_mouse(e: Explorer, name: str, ax, row: float, col: float, button=None) -> None:
    """A mouse event at data point (row, col) of `ax`, placed in display pixels as a GUI would."""
    x, y = ax.transData.transform((col, row))
    event = MouseEvent(name, e.fig.canvas, x, y, button=button)
    assert event.inaxes is ax
    e.fig.canvas.callbacks.process(name, event)


def kernels_now(e: Explorer, w: bool = True) -> np.ndarray:
    """adaptive_kernels called directly on the explorer's current input: (Ho, Wo, C, m, m)."""
    module = select_adaptive_layer(e.model, e.layer)
    x = layer_input(e.model, e.image[None, None], e.layer)
    return F.adaptive_kernels(x, module.Q, module.w if w else None, module.stride, module.padding)[0, e.channel]


# ----------------------------------------------------------------------------- the window's logic
def test_painting_changes_the_input_and_the_probabilities(explorer):
    before_image = explorer.image.copy()
    before = explorer.shown()["probabilities"].copy()
    send_mouse(explorer, "button_press_event", explorer.ax_input, 20, 5, button=1)
    for col in range(6, 20):
        send_mouse(explorer, "motion_notify_event", explorer.ax_input, 20, col, button=1)
    send_mouse(explorer, "button_release_event", explorer.ax_input, 20, 20, button=1)
    assert explorer.image[20, 5:20].min() == 1.0 and before_image[20, 5:20].max() == 0.0
    after = explorer.shown()["probabilities"]
    assert np.isclose(after.sum(), 1.0) and np.abs(after - before).max() > 1e-4
    with_stroke = explorer.image.copy()

    send_mouse(explorer, "button_press_event", explorer.ax_input, 20, 10, button=3)  # the right button erases
    assert explorer.image[20, 10] == 0.0 and explorer.image[20, 5] == 1.0
    send_mouse(explorer, "button_release_event", explorer.ax_input, 20, 10, button=3)
    send_mouse(explorer, "motion_notify_event", explorer.ax_input, 20, 14)           # no button: only moves
    assert explorer.image[20, 14] == 1.0 and (explorer.image != with_stroke).sum() == 5

    send_key(explorer, "c")
    assert not explorer.image.any()


def test_it_starts_at_the_centre_or_the_nearest_patch_with_ink():
    images, labels = synthetic_images()                            # image 0: a bar on rows 4-6, columns 6-19
    model = build_model("adaptive-lenet", seed=0)
    bar = Explorer(model, images, labels)
    assert not bar.patch(13, 13).any() and bar.location == (6, 13)  # the lowest row whose 3x3 patch reaches the bar
    images = images.copy()
    images[0, 0, 12:17, 12:17] = 1.0                               # now the centre's patch has ink
    inked_centre = Explorer(model, images, labels)
    assert inked_centre.location == (13, 13)
    images[0] = 0.0
    images[0, 0, 13, [9, 19]] = 1.0          # two dots; locations (13, 9) and (13, 17) are 4 from the centre
    tie = Explorer(model, images, labels)
    assert tie.location == (13, 9)                                 # a tie goes to the upper-left one
    images[0] = 0.0
    blank = Explorer(model, images, labels)
    assert blank.location == (13, 13)                              # nothing inked anywhere: the centre
    # moving off the centre is said, in the figure's status line (and by `explore` in the terminal)
    note = "the patch at the centre (13, 13) is blank (there k = w); starting at (13, 9), the nearest location with ink"
    assert tie.start_note == note and note in tie.help_text.get_text()
    assert inked_centre.start_note == blank.start_note == ""
    # once the mouse points at a location the note is out of date: the first hover clears it
    send_mouse(tie, "motion_notify_event", tie.ax_input, 14, 10)   # the patch of (13, 9) itself: no move
    assert tie.location == (13, 9) and note not in tie.help_text.get_text()
    assert "arrows move the location" in tie.help_text.get_text()
    send_mouse(bar, "motion_notify_event", bar.ax_field, 20, 20)
    assert bar.start_note and bar.start_note not in bar.help_text.get_text()
    for e in (bar, inked_centre, tie, blank):
        matplotlib.pyplot.close(e.fig)


def test_moving_the_mouse_and_the_arrows_change_the_location(explorer):
    assert explorer.shown()["location"] == (6, 13)                  # the inked patch nearest the centre
    send_mouse(explorer, "motion_notify_event", explorer.ax_input, 5, 20)
    assert explorer.shown()["location"] == (4, 19)                  # the 3x3 patch centred on pixel (5, 20)
    send_mouse(explorer, "motion_notify_event", explorer.ax_field, 10, 2)
    assert explorer.shown()["location"] == (9, 1)
    send_key(explorer, "down")
    send_key(explorer, "right")
    send_key(explorer, "right")
    assert explorer.shown()["location"] == (10, 3)
    explorer.set_location(-4, 99)
    assert explorer.shown()["location"] == (0, 25)                  # clipped to the grid


def test_shown_kernel_is_adaptive_kernels_and_w_on_a_blank_patch(explorer):
    explorer.show_image(3)                                          # bar in rows 10..12, columns 6..19
    explorer.set_location(9, 10)
    shown = explorer.shown()
    assert shown["patch"].any()
    assert np.array_equal(shown["k"], kernels_now(explorer)[9, 10])
    assert np.allclose(shown["k"], shown["w"] + shown["Qp"], atol=1e-6)
    assert np.allclose(shown["Qp"], kernels_now(explorer, w=False)[9, 10], atol=1e-6)   # Q p = k - w
    assert np.abs(shown["Qp"]).max() > 1e-3                          # the patch changed the kernel
    assert np.isclose(shown["y"], np.tanh(shown["sigma"]))
    assert np.isclose(shown["sigma"], float((shown["k"] * shown["patch"]).sum())
                      + float(explorer.module.b.data[0]), atol=1e-5)
    assert "patch not blank" in explorer.info_text.get_text()

    explorer.set_location(22, 2)                                    # far from the bar: the patch is empty
    shown = explorer.shown()
    assert not shown["patch"].any()
    assert np.array_equal(shown["k"], shown["w"])
    assert "blank patch: k = w exactly" in explorer.info_text.get_text()


def test_the_arithmetic_of_the_hovered_location_is_shown(explorer):
    # the D products k_e p_e, their sum k . p, + b and tanh, for the location under the mouse
    send_mouse(explorer, "motion_notify_event", explorer.ax_input, 5, 12)
    shown = explorer.shown()
    assert shown["location"] == (4, 11) and shown["patch"].any()
    np.testing.assert_array_equal(shown["products"], shown["k"] * shown["patch"])
    b = float(explorer.module.b.data[0])
    assert shown["b"] == b
    dot = float(shown["products"].sum())
    assert dot + b == pytest.approx(shown["sigma"], abs=1e-5)       # the sum shown is the engine's sigma
    text = explorer.info_text.get_text()
    terms = [f"{v:+.3f}" for v in shown["products"].reshape(-1) + 0.0]
    assert f"k . p = sum of the 9 products k * p = {' '.join(terms)} = {dot:+.4f}" in text
    assert f"sigma = k . p + b = {dot:+.4f} + ({b:+.4f}) = {shown['sigma']:+.4f}" in text
    assert f"y = tanh(sigma) = {np.tanh(shown['sigma']):+.4f}" in text
    drawn = [ax.get_title() for ax in explorer.ax_small]
    assert drawn[-1].startswith("k * p")
    cells = [t.get_text() for t in explorer.ax_small[-1].texts]
    assert cells == [f"{v:.2f}".replace("-0.00", "0.00") for v in shown["products"][0].reshape(-1)]


def test_cells_never_show_minus_zero(explorer):
    w = explorer.shown()["w"][0]                                   # (3, 3); one of its values is about -0.002
    (u, v), = np.argwhere((w < 0) & (w > -0.005))
    assert explorer.ax_small[1].get_title() == "w (fixed)"
    assert explorer.small_texts[1][u, v].get_text() == "0.00"      # as figures.write_values writes it
    assert "-0.00" not in [t.get_text() for ax in explorer.ax_small for t in ax.texts]


def test_several_input_channels_show_the_sum_over_channels_of_k_times_p():
    images, labels = synthetic_images()
    model = build_model("adaptive-lenet", seed=1, kernel_sizes=(3, 3), adaptive=(True, True))
    e = Explorer(model, images, labels, layer=1, channel=2, index=3, location=(4, 5))   # C = 8 input channels
    shown = e.shown()
    assert shown["products"].shape == (8, 3, 3)
    per_position = shown["products"].sum(axis=0)                 # (3, 3): what the k * p panel draws
    assert np.array_equal(e.small_images[-1].get_array(), per_position)
    assert "summed over channels" in e.ax_small[-1].get_title() and "their sum is k . p" in e.ax_small[-1].get_title()
    assert all("mean over channels" in ax.get_title() for ax in e.ax_small[:-1])
    dot = float(shown["products"].sum())
    assert float(per_position.sum()) == pytest.approx(dot, abs=1e-5)
    assert dot + shown["b"] == pytest.approx(shown["sigma"], abs=1e-5)
    terms = " ".join(f"{v:+.3f}" for v in per_position.reshape(-1))
    assert (f"k . p = sum of the 72 products k * p = sum over the 9 positions of (k * p summed over the 8 channels)\n"
            f"      = {terms} = {dot:+.4f}\n" in e.info_text.get_text())
    matplotlib.pyplot.close(e.fig)


def test_a_fast_drag_paints_a_line_not_dots(explorer):
    explorer.show_image(0)
    explorer.image[:] = 0.0
    # a fast mouse: the motion events arrive many pixels apart
    send_mouse(explorer, "button_press_event", explorer.ax_input, 20, 3, button=1)
    send_mouse(explorer, "motion_notify_event", explorer.ax_input, 20, 22, button=1)
    send_mouse(explorer, "motion_notify_event", explorer.ax_input, 10, 12, button=1)   # up and to the left
    send_mouse(explorer, "button_release_event", explorer.ax_input, 10, 12, button=1)
    assert explorer.image[20, 3:23].min() == 1.0                   # every pixel of the first line
    for r in range(10, 21):                                        # the diagonal: one pixel of ink on every row
        assert explorer.image[r, 12 + (r - 10) - 1 : 12 + (r - 10) + 2].max() == 1.0, r
    # a drag that leaves the input and comes back elsewhere starts a new line there
    send_mouse(explorer, "button_press_event", explorer.ax_input, 2, 2, button=1)
    send_mouse(explorer, "motion_notify_event", explorer.ax_field, 2, 10, button=1)
    send_mouse(explorer, "motion_notify_event", explorer.ax_input, 2, 25, button=1)
    send_mouse(explorer, "button_release_event", explorer.ax_input, 2, 25, button=1)
    assert explorer.image[2, 2] == explorer.image[2, 25] == 1.0 and explorer.image[2, 5:23].max() == 0.0
    # releasing ends the stroke: the next press does not join it to the last (2, 25)
    send_mouse(explorer, "button_press_event", explorer.ax_input, 26, 26, button=1)
    send_mouse(explorer, "button_release_event", explorer.ax_input, 26, 26, button=1)
    assert explorer.image[26, 26] == 1.0 and explorer.image[5:18, 23:28].max() == 0.0


def test_space_plays_the_sweep_in_the_window_and_pauses_it(explorer):
    explorer.set_location(0, 23)
    send_key(explorer, " ")
    assert explorer.timer is not None and "playing the sweep" in explorer.help_text.get_text()
    visited = []
    for _ in range(3):                   # what the timer does every SWEEP_INTERVAL ms (Agg has no clock)
        explorer.sweep_step()
        visited.append(explorer.location)
    assert visited == [(0, 24), (2, 0), (2, 2)]                    # every 2nd row and column, row by row
    explorer.set_location(24, 24)
    explorer.sweep_step()
    assert explorer.location == (0, 0)                             # after the last location: the first
    send_key(explorer, " ")
    assert explorer.timer is None and "sweep paused" in explorer.help_text.get_text()


def test_a_fixed_scale_makes_two_pictures_comparable():
    images, labels = synthetic_images()
    model = build_model("adaptive-lenet", seed=0)
    places = [(6, 13), (22, 2)]                                    # on the bar (p up to 1), and blank (p = 0)
    fitted = [Explorer(model, images, labels, location=spot) for spot in places]
    fixed = [Explorer(model, images, labels, location=spot, scale=1.5) for spot in places]
    assert fitted[0].cells_norm.get_clim() != fitted[1].cells_norm.get_clim()
    assert fixed[0].cells_norm.get_clim() == fixed[1].cells_norm.get_clim() == (-1.5, 1.5)
    assert "fixed: -1.5 to 1.5" in fixed[0].ax_cbar.get_ylabel()
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="the colour scale must be a positive number"):
            Explorer(model, images, labels, scale=bad)
    for e in fitted + fixed:
        matplotlib.pyplot.close(e.fig)


def test_keys_change_image_digit_channel_and_layer():
    images, labels = synthetic_images()
    model = build_model("adaptive-lenet", seed=1, kernel_sizes=(3, 3), adaptive=(True, True))
    e = Explorer(model, images, labels)
    send_key(e, "n")
    assert e.index == 1 and np.array_equal(e.image, images[1, 0])
    send_key(e, "p")
    send_key(e, "p")
    assert e.index == 9                                             # wraps around
    send_key(e, "4")
    assert e.index == 4 and "digit 4" in e.ax_input.get_title()
    send_key(e, "]")
    assert e.channel == 1
    send_key(e, "[")
    send_key(e, "[")
    assert e.channel == 7
    send_key(e, "l")                                                # the second adaptive layer: 8 -> 16 channels on 13x13
    shown = e.shown()
    assert e.layer == 1 and shown["k"].shape == (8, 3, 3) and e.sigma.shape == (11, 11)
    i, j = shown["location"]
    assert np.array_equal(shown["k"], kernels_now(e)[i, j])         # its input is the activation before it
    send_key(e, "h")
    assert "w is the layer's fixed kernel" in e.help_text.get_text()
    assert "arrows move the location" in e.help_text.get_text()
    matplotlib.pyplot.close(e.fig)


def test_an_input_that_is_not_28_pixels_wide():
    from ack_numpy.models import AdaptiveLeNet

    model = AdaptiveLeNet(kernel_sizes=(3, 3), adaptive=(True, True), image_size=32, rng=np.random.default_rng(0))
    images = np.zeros((10, 1, 32, 32), dtype=np.float32)
    e = Explorer(model, images, np.arange(10))                     # layer 0: 30x30 locations
    send_mouse(e, "button_press_event", e.ax_input, 31, 31, button=1)
    send_mouse(e, "button_release_event", e.ax_input, 31, 31, button=1)
    assert e.image[31, 31] == 1.0                                  # the corner can be painted
    send_mouse(e, "motion_notify_event", e.ax_input, 30, 30)
    assert e.location == (29, 29) and e.input_box.get_bbox().bounds == (28.5, 28.5, 3.0, 3.0)
    send_key(e, "l")                                               # layer 1 sees 15x15: 32/15 pixels each
    send_mouse(e, "motion_notify_event", e.ax_input, 16, 16)       # layer-input pixel 7.5, so its patch starts at 6
    assert e.location == (6, 6)
    np.testing.assert_allclose(e.input_box.get_bbox().bounds, (6 * 32 / 15 - 0.5,) * 2 + (3 * 32 / 15,) * 2)
    matplotlib.pyplot.close(e.fig)


def test_explorer_rejects_bad_layer_channel_location():
    images, labels = synthetic_images()
    model = build_model("adaptive-lenet", seed=0)
    with pytest.raises(ValueError, match="channel 8 is out of range"):
        Explorer(model, images, labels, channel=8)
    with pytest.raises(ValueError, match="layer 1 does not exist"):
        Explorer(model, images, labels, layer=1)
    with pytest.raises(ValueError, match=r"location \(26, 0\) is out of range"):
        Explorer(model, images, labels, location=(26, 0))


def test_sweep_gif_frames_and_size(tmp_path):
    images, _ = synthetic_images()
    path = tmp_path / "sweep.gif"
    frames = write_sweep_gif(build_model("adaptive-lenet", seed=0), images[2], path, step=6)
    assert frames == 5 * 5                                          # rows and columns 0, 6, 12, 18, 24 of 26
    with Image.open(path) as gif:
        assert gif.n_frames == frames
        assert gif.size == (1100, 360)                  # figsize (11, 3.6) at 100 dpi
    assert path.stat().st_size < 500_000


# ----------------------------------------------------------------------------- the command
def untrained_checkpoint(path: Path, name: str = "adaptive-lenet") -> Path:
    return save_checkpoint(path, build_model(name, seed=0).state_dict(), {},
                           {"model": name, "model_options": {}, "epoch": 0})


@pytest.mark.mnist
def test_explore_save_writes_a_png(mnist_path, tmp_path, capsys):
    checkpoint = untrained_checkpoint(tmp_path / "model.npz")
    out = tmp_path / "explorer.png"
    assert main(["explore", "--checkpoint", str(checkpoint), "--data-dir", str(mnist_path), "--digit", "7",
                 "--location", "3", "4", "--save", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "explore: the patch at the centre" not in printed
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size == (1300, 825)


def run_explore(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run([sys.executable, "-m", "ack_numpy", "explore", *map(str, args)], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.mnist
def test_explore_bad_arguments_give_one_line(mnist_path, tmp_path):
    checkpoint = untrained_checkpoint(tmp_path / "model.npz")
    plain = untrained_checkpoint(tmp_path / "plain.npz", "plain-small")
    png = tmp_path / "x.png"
    cases = {
        "no adaptive layers": ["--checkpoint", plain, "--save", png],
        "channel 8 is out of range": ["--checkpoint", checkpoint, "--channel", "8", "--save", png],
        "layer 2 does not exist": ["--checkpoint", checkpoint, "--layer", "2", "--save", png],
        "location (0, 26) is out of range": ["--checkpoint", checkpoint, "--location", "0", "26", "--save", png],
        "not both": ["--checkpoint", checkpoint, "--index", "1", "--digit", "2", "--save", png],
        "needs a screen": ["--checkpoint", checkpoint],
        f"--save {tmp_path / 'x'}: the file name must end in the picture's format": [
            "--checkpoint", checkpoint, "--save", tmp_path / "x"],
        "--gif /dev/null: the file name must end in .gif": ["--checkpoint", checkpoint, "--gif", "/dev/null"],
        f"--save and --gif name the same file {tmp_path / 'a.gif'}": [
            "--checkpoint", checkpoint, "--save", tmp_path / "a.gif", "--gif", tmp_path / "a.gif"],
    }
    for expected, args in cases.items():
        result = run_explore(*args, "--data-dir", mnist_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0, expected
        assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], (expected, result.stderr)
        assert "Traceback" not in result.stderr
    scale = run_explore("--checkpoint", checkpoint, "--scale", "0", "--save", png)   # argparse's usage + one line
    assert scale.returncode == 2 and scale.stderr.strip().splitlines()[-1].endswith(
        "explore: error: argument --scale: must be a positive number, got 0")
    assert not png.exists() and not (tmp_path / "x").exists() and not (tmp_path / "x.png").exists()
    assert not (tmp_path / "a.gif").exists()


@pytest.mark.mnist
def test_explore_says_when_it_moves_off_a_blank_centre(mnist_path, tmp_path):
    checkpoint = untrained_checkpoint(tmp_path / "model.npz")
    result = run_explore("--checkpoint", checkpoint, "--data-dir", mnist_path, "--index", "0",
                         "--scale", "2", "--save", tmp_path / "e.png")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == ("explore: the patch at the centre (13, 13) is blank (there k = w); "
                                             "starting at (13, 14), the nearest location with ink")
    assert (tmp_path / "e.png").is_file()
