"""Pictures of the dynamic kernels: see the kernel each input produces.

    kernels.py     the arrays: dynamic kernels, Q filters, distances, feature maps (no drawing)
    figures.py     plot_kernel_field, plot_q_filters, plot_digit_kernels, plot_adaptation,
                   plot_feature_maps: each draws from a LayerView (`layer_view`: the layer,
                   its input, kernels and outputs, computed once) and returns (Figure, arrays drawn)
    curves.py      plot_training_curves: test accuracy and loss per epoch of run folders
    evolution.py   KernelRecorder (an on_epoch_end callback) and plot_kernel_evolution:
                   the kernels at fixed test images and locations after every epoch
    run_figures.py what `train --visualize` adds to a run: the recorder it trains with, and
                   draw_run, the run's figures once it has ended
    explorer.py    `python -m ack_numpy explore`: a window that recomputes the kernels (from a
                   LayerView) as you point and draw, and the GIF of the kernel sweeping an image

`write_figures` is what `python -m ack_numpy visualize` runs: it loads a checkpoint and
the MNIST test set and writes the five kernel figures (FIGURE_FILES) as PNGs into one
folder (`write_model_figures` does the same for a model already loaded). Each PNG's
Description text says what it was drawn from: layer, channel, test image and the
weights' digest (`weights_sha256`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..nn import Module
from .curves import plot_training_curves
from .evolution import FIGURE_FILE as EVOLUTION_FILE, RECORD_FILE, KernelRecorder, plot_kernel_evolution, read_record
from .figures import (DPI, describe, plot_adaptation, plot_digit_kernels, plot_feature_maps, plot_kernel_field,
                      plot_q_filters, save)
from .kernels import (LayerView, check_channel, check_image_choice, dynamic_kernels, first_of_each_digit,
                      layer_view, load_adaptive_model, select_adaptive_layer, select_image)

__all__ = ["DPI", "FIGURE_FILES", "KernelRecorder", "LayerView", "dynamic_kernels", "layer_view", "plot_kernel_evolution", "write_evolution", "plot_adaptation", "plot_digit_kernels",
           "plot_feature_maps", "plot_kernel_field", "plot_q_filters", "plot_training_curves",
           "weights_sha256", "write_curves", "write_figures", "write_model_figures"]

FIGURE_FILES = ("kernel_field.png", "q_filters.png", "digits.png", "adaptation.png", "feature_maps.png")
CURVES_FILE = "curves.png"


def write_figures(checkpoint: str | Path, out: str | Path, data_dir: str | None = None,
                  index: int | None = None, digit: int | None = None, layer: int = 0, channel: int = 0,
                  location: tuple[int, int] | None = None) -> list[Path]:
    """Write FIGURE_FILES into `out` for one test image (by index, or the first of a digit;
    default index 0), one adaptive layer and one output channel. Returns the paths written.

    Every argument is checked before any file is written; a problem raises ValueError
    (or CheckpointError, a ValueError) with a message naming it."""
    check_image_choice(index, digit)  # before the checkpoint is read, so its message comes first
    return write_model_figures(load_adaptive_model(checkpoint), out, data_dir=data_dir, index=index, digit=digit,
                               layer=layer, channel=channel, location=location)


def write_model_figures(model: Module, out: str | Path, data_dir: str | None = None,
                        index: int | None = None, digit: int | None = None, layer: int = 0, channel: int = 0,
                        location: tuple[int, int] | None = None) -> list[Path]:
    """`write_figures` for a model already loaded (`train --visualize` has it at hand)."""
    from ..data import load_mnist

    check_image_choice(index, digit)
    check_channel(select_adaptive_layer(model, layer), channel)  # before MNIST is read, so its message comes first
    images, labels = load_mnist("test", data_dir)
    i = select_image(labels, index=index, digit=digit)
    name = f"test image {i} (digit {labels[i]})"
    firsts = first_of_each_digit(labels)
    # The chosen image first (every figure draws it), then the first test image of every
    # other digit (digits.png): the model runs once, on these.
    shown = np.concatenate([[i], firsts[labels[firsts] != labels[i]]])
    view = layer_view(model, images[shown], layer, channel)
    names = [f"test {n}\n(digit {labels[n]})" for n in shown]
    figures = [plot_kernel_field(view, 0, name, location),
               plot_q_filters(view),
               plot_digit_kernels(view, labels[shown], location, names=names, chosen=0),
               plot_adaptation(view, 0, name),
               plot_feature_maps(view, 0, name)]
    # Each PNG says what it was drawn from, in words and by the weights' digest: pixels
    # differ between matplotlib versions, this does not.
    description = (f"ack_numpy: {describe(view)}, {name}; "
                   f"{type(model).__name__} with weights sha256 {weights_sha256(model)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)  # only now: a bad argument above leaves no empty folder
    paths = []
    for file_name, (fig, _) in zip(FIGURE_FILES, figures):
        save(fig, out / file_name, description=description)
        paths.append(out / file_name)
    return paths


def weights_sha256(model: Module) -> str:
    """SHA-256 (hex) of a model's parameters: each name, dtype, shape and values, in name
    order. Equal digests mean the same weights to the bit, so the same figures."""
    digest = hashlib.sha256()
    for name, values in sorted(model.state_dict().items()):
        digest.update(f"{name} {values.dtype.str} {values.shape}\n".encode())
        digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def write_curves(runs: list[str | Path], out: str | Path) -> Path:
    """Write CURVES_FILE (test accuracy and loss per epoch of the run folders) into `out`."""
    fig, _ = plot_training_curves(runs)
    out = Path(out)  # made after the runs were read, as above
    out.mkdir(parents=True, exist_ok=True)
    save(fig, out / CURVES_FILE)
    return out / CURVES_FILE


def write_evolution(folder: str | Path) -> list[Path]:
    """Draw EVOLUTION_FILE from the RECORD_FILE in `folder` (written by a KernelRecorder);
    nothing if there is no record. Returns the paths written."""
    folder = Path(folder)
    if not (folder / RECORD_FILE).exists():
        return []
    fig, _ = plot_kernel_evolution(read_record(folder / RECORD_FILE))
    save(fig, folder / EVOLUTION_FILE)
    return [folder / EVOLUTION_FILE]
