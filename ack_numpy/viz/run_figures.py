"""The figures of one training run, as `train --visualize` draws them.

`new_run_recorder` and `resumed_run_recorder` choose what is watched while the run
trains: layer 0's kernels (channel 0) at the centre and upper-centre locations of three
fixed test images, the first 0, 1 and 7 (a round stroke, a straight one and one with a
corner), recorded before training (epoch 0, from the seed's initial weights) and after
every epoch. `draw_run` draws, once the run has ended, its training curves and, for a
model with adaptive layers, the kernel figures of its checkpoint and the kernels across
training. All take the run folder the run itself uses (`TrainConfig.out`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .evolution import RECORD_FILE, KernelRecorder

WATCHED_DIGITS = (0, 1, 7)


def new_run_recorder(config, data_dir: str | None) -> KernelRecorder:
    """The recorder for `train(config)`, which starts from exactly the weights its seed gives:
    those are recorded now, as epoch 0 (a record already in the folder is started again)."""
    from ..train import initial_model

    config.validate()
    recorder = kernel_recorder(config.out, data_dir, keep=False)
    recorder.before_training(initial_model(config))
    return recorder


def resumed_run_recorder(folder: str | Path, data_dir: str | None) -> KernelRecorder:
    """The recorder for `resume(folder)`: it continues the record already there. If there is
    none yet (the run stopped within its first epoch, or trained so far without
    --visualize), the run's seed gives the weights it started from, recorded as epoch 0."""
    from ..checkpoint import read_meta, saved_config
    from ..runs import CHECKPOINT_NAME
    from ..train import initial_model

    recorder = kernel_recorder(folder, data_dir, keep=True)
    checkpoint = Path(folder) / CHECKPOINT_NAME
    if not recorder.epochs and checkpoint.is_file():
        recorder.before_training(initial_model(saved_config(read_meta(checkpoint), checkpoint)))
    return recorder


def kernel_recorder(out: str | Path, data_dir: str | None, keep: bool) -> KernelRecorder:
    """A KernelRecorder writing into out/figures/kernel_evolution.npz; `keep` (for --resume)
    continues the record already there, otherwise a new run starts it again."""
    from ..data import load_mnist

    images, labels = load_mnist("test", data_dir)
    indices = np.array([np.flatnonzero(labels == d)[0] for d in WATCHED_DIGITS])
    return KernelRecorder(images[indices], labels=labels[indices], indices=indices,
                          path=Path(out) / "figures" / RECORD_FILE, keep=keep)


def draw_run(out: str | Path, data_dir: str | None) -> list[Path]:
    """Write into out/figures the training curves and, if the model is adaptive, the kernel
    figures of out/checkpoint.npz and the kernels across training. Returns the paths written."""
    from ..checkpoint import load_model
    from ..models import adaptive_layers
    from ..runs import CHECKPOINT_NAME
    from . import write_curves, write_evolution, write_model_figures

    figures = Path(out) / "figures"
    written = [write_curves([out], figures)]
    model, _ = load_model(Path(out) / CHECKPOINT_NAME)
    if adaptive_layers(model):
        written += write_model_figures(model, figures, data_dir=data_dir)
        written += write_evolution(figures)
    return written
