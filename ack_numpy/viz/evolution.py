"""Kernels across training: the kernel k = Q p + w that fixed test images get at fixed
locations, recorded after every epoch, so a reader sees Q learn.

    recorder = KernelRecorder(images, locations=[(13, 13), (8, 13)], path="figures/kernel_evolution.npz")
    train(config, on_epoch_end=recorder)         # recorder(epoch, model) after each epoch
    fig, arrays = plot_kernel_evolution(recorder.record())

A record is a dict of arrays (saved as one .npz after every epoch when `path` is given):

    epochs     (E,)                       the epochs recorded, 1-based, increasing
    kernels    (E, N, L, C, m, m)         k at image n, location l, after that epoch
    images     (N, 1, H, W)               the test images
    labels     (N,), indices (N,)         their labels and test-set indices (-1 if unknown)
    locations  (L, 2)                     output (row, col) of each location
    origins    (L, 2)                     where each location's patch starts in the layer input
    layer, channel                        which adaptive layer and output channel

Resuming: with keep=True an existing record at `path` is read and continued, so a run that
is stopped and resumed (`train --resume --visualize`) gets one record covering every epoch
that was recorded by any process; an epoch recorded again replaces the old entry.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..files import atomic_write
from ..models import adaptive_layers
from ..nn import Module
from .figures import IMAGE_CMAP, KERNEL_CMAP, centred, channel_view, new_figure, write_values
from .kernels import check_channel, check_location, dynamic_kernels, patch_origin, select_adaptive_layer

RECORD_FILE = "kernel_evolution.npz"
FIGURE_FILE = "kernel_evolution.png"
MAX_COLUMNS = 12  # epochs drawn at most; longer runs show evenly spaced epochs, first and last included


class KernelRecorder:
    """on_epoch_end callback: stores `adaptive_kernels` of `images` at `locations` after each epoch
    (and, with `before_training(model)`, of the untrained model as epoch 0).

    images: (N, 1, H, W). locations: list of output (row, col); None means the centre and
    the point a third of the way down above it, chosen once the layer's size is known.
    A model without adaptive layers is not recorded (the call does nothing)."""

    def __init__(self, images: np.ndarray, locations: list[tuple[int, int]] | None = None, layer: int = 0,
                 channel: int = 0, path: str | Path | None = None, labels: np.ndarray | None = None,
                 indices: np.ndarray | None = None, keep: bool = False):
        self.images = np.asarray(images, dtype=np.float32)
        n = len(self.images)
        self.labels = np.full(n, -1) if labels is None else np.asarray(labels)
        self.indices = np.full(n, -1) if indices is None else np.asarray(indices)
        self.locations = None if locations is None else [tuple(map(int, loc)) for loc in locations]
        self.layer, self.channel = layer, channel
        self.path = None if path is None else Path(path)
        self.epochs: list[int] = []
        self.kernels: list[np.ndarray] = []
        if keep and self.path is not None and self.path.exists():
            self.continue_from(read_record(self.path))

    def continue_from(self, old: dict) -> None:
        if not (np.array_equal(old["images"], self.images) and old["layer"] == self.layer
                and old["channel"] == self.channel):
            raise ValueError(f"{self.path} records other images, layer or channel than this run; "
                             f"move it away to start a new record")
        self.locations = [tuple(map(int, loc)) for loc in old["locations"]]
        self.origins = [tuple(map(int, o)) for o in old["origins"]]
        self.epochs = [int(e) for e in old["epochs"]]
        self.kernels = list(old["kernels"])

    def before_training(self, model: Module) -> None:
        """Record the untrained model's kernels as epoch 0; they are written with the first
        epoch's, so a run that is refused before it starts writes nothing (`train --resume
        --visualize` of a run with no record yet records them then)."""
        if adaptive_layers(model):
            self.add(0, model)

    def __call__(self, epoch: int, model: Module) -> None:
        if not adaptive_layers(model):
            return
        self.add(epoch, model)
        if self.path is not None:
            write_record(self.path, self.record())

    def add(self, epoch: int, model: Module) -> None:
        """Compute and keep the kernels of `model` as those after `epoch` (0: before training)."""
        module = select_adaptive_layer(model, self.layer)
        check_channel(module, self.channel)
        kernels = dynamic_kernels(model, self.images, self.layer)[:, self.channel]   # (N, Ho, Wo, C, m, m)
        out_h, out_w = kernels.shape[1:3]
        if self.locations is None:
            self.locations = [(out_h // 2, out_w // 2), (out_h // 3, out_w // 2)]
        for loc in self.locations:
            check_location(loc, out_h, out_w)
        rows, cols = np.array(self.locations).T
        at = kernels[:, rows, cols]                                                   # (N, L, C, m, m)
        self.origins = [(patch_origin(r, module), patch_origin(q, module)) for r, q in self.locations]
        if epoch in self.epochs:  # recorded before (a resumed run repeating an epoch): replace it
            drop = self.epochs.index(epoch)
            del self.epochs[drop:], self.kernels[drop:]
        self.epochs.append(int(epoch))
        self.kernels.append(at)

    def record(self) -> dict:
        if not self.epochs:
            raise ValueError("nothing recorded yet: the recorder is called after each epoch of an adaptive model")
        return {"epochs": np.array(self.epochs), "kernels": np.stack(self.kernels), "images": self.images,
                "labels": self.labels, "indices": self.indices, "locations": np.array(self.locations),
                "origins": np.array(self.origins), "layer": self.layer, "channel": self.channel}


def write_record(path: str | Path, record: dict) -> None:
    """Save a record as .npz (files.atomic_write: a crash leaves the old one whole)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        np.savez(f, **record)


def read_record(path: str | Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as data:
            record = {name: data[name] for name in data.files}
        record["layer"], record["channel"] = int(record["layer"]), int(record["channel"])
        missing = {"epochs", "kernels", "images", "labels", "indices", "locations", "origins"} - set(record)
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise ValueError(f"{path} is not a readable kernel record ({err})") from None
    if missing:
        raise ValueError(f"{path} is not a kernel record: it has no {', '.join(sorted(missing))}")
    return record


def shown_epochs(count: int) -> np.ndarray:
    """Indices of the epochs drawn: all of them, or MAX_COLUMNS evenly spaced (first and last kept)."""
    if count <= MAX_COLUMNS:
        return np.arange(count)
    return np.unique(np.round(np.linspace(0, count - 1, MAX_COLUMNS)).astype(int))


def plot_kernel_evolution(record: dict) -> tuple[Figure, dict]:
    """One row per (image, location), one column per epoch: the kernel k = Q p + w there after
    that epoch, on one colour scale centred on 0; the first column is the image with the patch
    boxed, the last the change from the first epoch drawn to the last (its own scale).
    Values are written in the cells for kernels up to 4x4.

    Returns arrays: epochs (E',) drawn, kernels (E', N*L, m, m) drawn (channel mean for C > 1),
    change (N*L, m, m) = last - first, rows: (image number, row, col) of each row."""
    picked = shown_epochs(len(record["epochs"]))
    epochs = record["epochs"][picked]
    k = record["kernels"][picked]                                  # (E', N, L, C, m, m)
    e, n, l, c, m = k.shape[:5]
    kernels = channel_view(k).reshape(e, n * l, m, m)
    change = kernels[-1] - kernels[0]
    rows = [(a, int(r), int(q)) for a in range(n) for r, q in record["locations"]]
    values = m <= 4

    fig = new_figure(max(6.5, 1.0 * (e + 2) + 1.6), 0.95 * n * l + 1.6)
    axes = np.atleast_2d(fig.subplots(n * l, e + 2, squeeze=False))
    norm = centred(kernels)
    change_norm = centred(change)
    for row, (a, r, q) in enumerate(rows):
        thumb = axes[row, 0]
        thumb.imshow(record["images"][a, 0], cmap=IMAGE_CMAP, interpolation="nearest")
        label = record["labels"][a]
        text = f"digit {label}\n({r}, {q})" if label >= 0 else f"image {a}\n({r}, {q})"
        if record["layer"] == 0:  # only a first-layer patch lies in image pixels
            r0, c0 = record["origins"][row % l]
            thumb.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), m, m, fill=False, edgecolor="tab:green", lw=1.5))
            patch = record["images"][a, :, max(r0, 0) : r0 + m, max(c0, 0) : c0 + m]
            text += "\nblank: k = w" if not np.any(patch) else ""
        thumb.set_ylabel(text, fontsize=9)
        for col in range(e):
            art = axes[row, col + 1].imshow(kernels[col, row], cmap=KERNEL_CMAP, norm=norm, interpolation="nearest")
            if values:
                write_values(axes[row, col + 1], kernels[col, row], norm)
        change_art = axes[row, -1].imshow(change[row], cmap=KERNEL_CMAP, norm=change_norm, interpolation="nearest")
        if values:
            write_values(axes[row, -1], change[row], change_norm)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("input, patch", fontsize=9)
    # Short titles: a column is about an inch wide, and "after epoch 10" would run into its neighbour.
    for col, epoch in enumerate(epochs):
        axes[0, col + 1].set_title(f"epoch {epoch}" if epoch else "untrained", fontsize=9)
    start = f"epoch {epochs[0]}" if epochs[0] else "untrained"
    axes[0, -1].set_title(f"change,\n{start} to epoch {epochs[-1]}", fontsize=8)
    fig.colorbar(art, ax=axes[:, 1:-1], location="bottom", shrink=0.6, aspect=30,
                 label="kernel value k = Q p + w\n(one scale, centred on 0)")
    change_bar = fig.colorbar(change_art, ax=axes[:, -1], location="bottom", shrink=1.0, aspect=10, label="change")
    ends = [change_norm.vmin, 0.0, change_norm.vmax]  # three ticks fit under one column
    change_bar.set_ticks(ends, labels=[f"{v:.2f}" for v in ends])
    change_bar.ax.tick_params(labelsize=7)
    fig.suptitle(f"Kernels across training: adaptive layer {record['layer']}, output channel {record['channel']}\n"
                 f"the same test images and locations, untrained and after each epoch"
                 if epochs[0] == 0 else "the same test images and locations after each epoch", fontsize=11)
    return fig, {"epochs": epochs, "kernels": kernels, "change": change, "rows": rows}
