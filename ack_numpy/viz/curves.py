"""Training curves: test accuracy and loss per epoch of one or more runs, on shared axes.

A run folder is what `python -m ack_numpy train --out DIR` writes: metrics.csv (one row
per epoch: epoch, train_loss, train_acc, test_loss, test_acc, seconds, lr) and
config.json (whose "model" names the run in the legend).
"""
from __future__ import annotations

import errno
import json
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..train import read_metrics
from .figures import new_figure


def run_label(folder: Path) -> str:
    """'adaptive-lenet (runs/adaptive-lenet)': the model from config.json and the folder."""
    try:
        model = json.loads((folder / "config.json").read_text())["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return str(folder)
    return f"{model} ({folder})"


def read_run(folder: str | Path) -> list[dict]:
    """The metrics.csv rows of a run folder, with a clear error if there are none."""
    path = Path(folder) / "metrics.csv"
    if Path(folder).exists() and not Path(folder).is_dir():  # worded as every command words it (cli)
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(folder))
    if not path.is_file():
        raise ValueError(f"{path} not found: --runs expects folders written by "
                         f"'python -m ack_numpy train --out DIR' (after at least one epoch)")
    try:
        rows = read_metrics(path)
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{path} is not a metrics file written by train ({err})") from None
    if not rows:
        raise ValueError(f"{path} has no epochs yet")
    return rows


def plot_training_curves(runs: list[str | Path]) -> tuple[Figure, dict]:
    """Test accuracy (%) and loss per epoch of each run; train loss dashed in the same colour.

    Returns arrays: {label: metrics rows} for every run drawn."""
    if not runs:
        raise ValueError("give at least one run folder")
    data = {run_label(Path(run)): read_run(run) for run in runs}
    fig = new_figure(10, 4.2)
    acc_ax, loss_ax = fig.subplots(1, 2)
    for label, rows in data.items():
        epochs = [r["epoch"] for r in rows]
        line, = acc_ax.plot(epochs, [100 * r["test_acc"] for r in rows], marker="o", label=label)
        loss_ax.plot(epochs, [r["test_loss"] for r in rows], marker="o", color=line.get_color(), label=label)
        loss_ax.plot(epochs, [r["train_loss"] for r in rows], linestyle="--", marker="x", color=line.get_color())
    acc_ax.set_title("test accuracy", fontsize=10)
    acc_ax.set_ylabel("test accuracy (%)")
    loss_ax.set_title("loss (solid, o: test; dashed, x: train, averaged over the epoch)", fontsize=10)
    loss_ax.set_ylabel("cross-entropy")
    last = max((r["epoch"] for rows in data.values() for r in rows), default=1)
    for ax in (acc_ax, loss_ax):
        ax.set_xlim(0.5, last + 0.5)  # whole epochs, and room around a run of one epoch
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    acc_ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Training curves per epoch", fontsize=11)
    return fig, data
