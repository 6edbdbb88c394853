"""The training loop: minibatches -> loss -> backward -> optimiser step, with honest bookkeeping.

One run writes into its output folder:

    config.json      the arguments of the run
    metrics.csv      one row per epoch: train loss/accuracy, test loss/accuracy, seconds, lr
    checkpoint.npz   weights + optimiser state + position, rewritten atomically every epoch

Randomness is explicit and derived from the seed, so runs are reproducible and can be
resumed exactly: the weights come from default_rng(seed); the order of epoch e from
default_rng((seed, e)); the random shifts of batch b of epoch e from
default_rng((seed, e, b)). Nothing depends on a global random state, so a run resumed
at (epoch, batch) sees exactly the batches an uninterrupted run would have seen.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import functional as F
from . import optim
from .autograd import Tensor, no_grad
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import load_mnist, random_shift
from .models import build_model
from .nn import Module
from .progress import Progress, StopOnCtrlC

METRIC_FIELDS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "lr"]
CHECKPOINT_NAME = "checkpoint.npz"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the loop has saved (or not) and said so."""


@dataclass
class TrainConfig:
    model: str = "lenet"
    epochs: int = 1
    # The default recipe is the one `reproduce` uses for every model (chosen on held-out
    # training images): Adam, lr 3e-3 annealed to 0 with a cosine, batch 64, shifts of <= 2 px.
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"          # "adam" or "sgd"
    momentum: float = 0.9            # SGD only
    weight_decay: float = 0.0
    schedule: str = "cosine"         # "cosine" (to 0 over all epochs) or "constant"
    max_shift: int = 2               # augmentation: random shifts of up to this many pixels
    seed: int = 0
    data_dir: str | None = None
    out: str = "runs/lenet"
    limit_train: int | None = None
    limit_test: int | None = None
    holdout: int = 0                 # >0: evaluate on the last N training images instead of the test set
    model_options: dict = field(default_factory=dict)

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (self.lr > 0 and math.isfinite(self.lr), f"learning rate must be a positive number, got {self.lr}"),
            (self.optimizer in ("adam", "sgd"), f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}"),
            (self.schedule in ("cosine", "constant"), f"schedule must be 'cosine' or 'constant', got {self.schedule!r}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (0 <= self.weight_decay < math.inf, f"weight decay must be a number >= 0, got {self.weight_decay}"),
            (self.seed >= 0, f"seed must be 0 or more, got {self.seed}"),
            (self.max_shift >= 0, f"max shift must be >= 0, got {self.max_shift}"),
            (self.limit_train is None or self.limit_train >= 1, f"limit-train must be >= 1, got {self.limit_train}"),
            (self.limit_test is None or self.limit_test >= 1, f"limit-test must be >= 1, got {self.limit_test}"),
            (self.holdout >= 0, f"holdout must be >= 0, got {self.holdout}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


# ----------------------------------------------------------------------------- pieces
def make_optimizer(config: TrainConfig, model: Module) -> optim.Optimizer:
    if config.optimizer == "sgd":
        return optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                         weight_decay=config.weight_decay)
    return optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Cosine: lr * (1 + cos(pi * step / total)) / 2, from lr at step 0 towards 0
    (it would be 0 at step `total`, one past the last step taken)."""
    if config.schedule == "constant":
        return config.lr
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled order of the n training images in `epoch` (0-based)."""
    return np.random.default_rng((seed, epoch)).permutation(n)


def evaluate(model: Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of model on a dataset, without building a graph.

    images: (N, 1, 28, 28) float32, labels: (N,) int. The model's train/eval mode is
    restored afterwards (no layer here behaves differently in eval mode yet, but a
    reader adding dropout would expect it)."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    with no_grad():
        for start in range(0, len(images), batch_size):
            x, y = images[start : start + batch_size], labels[start : start + batch_size]
            logits = model(Tensor(x))
            total_loss += F.cross_entropy(logits, y).item() * len(x)
            correct += int((logits.data.argmax(axis=1) == y).sum())
    model.train(was_training)
    return total_loss / len(images), correct / len(images)


def train_step(model: Module, optimizer: optim.Optimizer, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """One minibatch: forward, loss, backward, update. Returns (loss, number correct).

    Raises TrainingDiverged before touching the weights if the loss is not finite."""
    # Overflow on the way to a NaN loss is reported by the check below, in one line,
    # rather than by a screenful of NumPy RuntimeWarnings first.
    with np.errstate(over="ignore", invalid="ignore"):
        logits = model(Tensor(x))
        loss = F.cross_entropy(logits, y)
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(f"loss is {value}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return value, int((logits.data.argmax(axis=1) == y).sum())


# ----------------------------------------------------------------------------- files
def write_metrics(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a metrics.csv as dicts of floats (epoch as int)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in rows]


# ----------------------------------------------------------------------------- the loop
def _say(message: str) -> None:
    """The default `log`: print at once, so that a log file shows each epoch as it ends."""
    print(message, flush=True)


def train(config: TrainConfig, overwrite: bool = False, log: Callable[[str], None] = _say,
          progress: Progress | None = None) -> list[dict]:
    """Train `config.model` on MNIST; write config.json, metrics.csv and checkpoint.npz to config.out.

    Refuses to start over an existing checkpoint unless overwrite=True (resume instead).
    On Ctrl-C it saves the current position, says how to resume and raises TrainingInterrupted
    (a KeyboardInterrupt).
    Returns the metric rows, one per epoch."""
    config.validate()
    checkpoint_path = Path(config.out) / CHECKPOINT_NAME
    if checkpoint_path.exists() and not overwrite:
        raise ValueError(f"{checkpoint_path} already exists: continue it with --resume {config.out}, "
                         f"or choose another --out (or pass --overwrite to start again)")
    return _run(config, None, log, progress)


def run_folder(path: str | Path) -> Path:
    """The run folder, whether given as the folder or as the checkpoint.npz inside it."""
    path = Path(path)
    return path.parent if path.name == CHECKPOINT_NAME and path.is_file() else path


def resume(out: str | Path, data_dir: str | None = None, epochs: int | None = None,
           log: Callable[[str], None] = _say, progress: Progress | None = None) -> list[dict]:
    """Continue the run saved in out/checkpoint.npz with its own config, from the exact batch
    where it stopped. `epochs` may extend a run that uses the constant schedule (with the
    cosine schedule every learning rate depends on the total, so it must stay the same)."""
    out = run_folder(out)
    checkpoint_path = out / CHECKPOINT_NAME
    if not checkpoint_path.is_file():
        what = "does not exist" if not out.exists() else f"has no {CHECKPOINT_NAME}"
        raise CheckpointError(f"cannot resume: {out} {what} (a run saves its checkpoint there at the end of "
                              f"each epoch and when interrupted); to start a new run, use --out instead")
    model_state, optim_state, meta = load_checkpoint(checkpoint_path)
    try:
        config = TrainConfig(**meta["config"])
        position = {key: meta[key] for key in ("epoch", "batch", "running", "metrics")}
        _check_position(position)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{checkpoint_path} holds no training state to resume from "
                              f"(missing or unexpected entry: {err})") from None
    config.out = str(out)
    if data_dir is not None:
        config.data_dir = data_dir  # the data may live elsewhere on this machine
    if epochs is not None and epochs != config.epochs:
        if config.schedule != "constant":
            raise ValueError(f"cannot change the number of epochs from {config.epochs} to {epochs} when "
                             f"resuming a run with the cosine schedule (its learning rates depend on the total)")
        config.epochs = epochs
    config.validate()
    return _run(config, (model_state, optim_state, position), log, progress)


def _check_position(position: dict) -> None:
    """The saved position must have the types the loop uses (a foreign file may not)."""
    if not all(isinstance(position[k], int) and position[k] >= 0 for k in ("epoch", "batch")):
        raise ValueError("epoch and batch must be non-negative integers")
    running = position["running"]
    if not (isinstance(running, dict) and set(running) == {"loss", "correct", "seen", "seconds"}
            and all(isinstance(v, (int, float)) for v in running.values())):
        raise ValueError("'running' must hold the numbers loss, correct, seen and seconds")
    if not (isinstance(position["metrics"], list) and all(isinstance(r, dict) for r in position["metrics"])):
        raise ValueError("'metrics' must be a list of rows")


def _load_data(config: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y); with holdout, the test set is the last training images."""
    train_x, train_y = load_mnist("train", config.data_dir, limit=config.limit_train)
    if not config.holdout:
        return (train_x, train_y) + load_mnist("test", config.data_dir, limit=config.limit_test)
    # Design decisions are made on held-out training images, never on the test set.
    if config.holdout >= len(train_x):
        raise ValueError(f"holdout ({config.holdout}) must be smaller than the training set ({len(train_x)})")
    return (train_x[: -config.holdout], train_y[: -config.holdout],
            train_x[-config.holdout :], train_y[-config.holdout :])


def _all_finite(model: Module) -> bool:
    return all(np.isfinite(p.data).all() for p in model.parameters())


def _run(config: TrainConfig, state, log, progress) -> list[dict]:
    """The loop. Without its bookkeeping (resume, Ctrl-C, progress, divergence, saving) it is:

        for epoch in range(config.epochs):
            order = epoch_order(config.seed, epoch, n)
            for batch in range(batches):
                idx = order[batch * B : (batch + 1) * B]
                x = random_shift(train_x[idx], config.max_shift, default_rng((seed, epoch, batch)))
                optimizer.lr = learning_rate(config, epoch * batches + batch, total_steps)
                train_step(model, optimizer, x, train_y[idx])    # forward, loss, backward, update
            evaluate(model, test_x, test_y)                       # -> one row of metrics.csv
    """
    out = Path(config.out)
    checkpoint_path = out / CHECKPOINT_NAME
    resume_command = f"python -m ack_numpy train --resume {out}"
    try:  # before loading the data, so that a checkpoint that does not fit fails at once
        model = build_model(config.model, seed=config.seed, **config.model_options)
        optimizer = make_optimizer(config, model)
        if state is not None:
            model.load_state_dict(state[0])
            optimizer.load_state_dict(state[1])
    except (ValueError, KeyError, TypeError) as err:
        if state is None:
            raise
        raise CheckpointError(f"{checkpoint_path} does not fit model {config.model!r} with optimizer "
                              f"{config.optimizer!r}: {err}") from None
    fresh = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
    rows, epoch, batch, running = [], 0, 0, dict(fresh)
    if state is not None:
        position = state[2]
        rows, epoch, batch, running = position["metrics"], position["epoch"], position["batch"], position["running"]
        if epoch >= config.epochs:
            log(f"nothing to do: {out} has finished its run ({epoch} of {config.epochs} epochs)")
            return rows
    # The folder first, so that an --out we cannot use fails before the data loads; if the
    # data then fails (or Ctrl-C comes), the empty folders made for the run are taken away.
    made = [folder for folder in (out, *out.parents) if not folder.exists()]  # deepest first
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise PermissionError(errno.EACCES, "cannot write in this folder", str(out))
    try:
        train_x, train_y, test_x, test_y = _load_data(config)
    except BaseException:
        for folder in made:
            with contextlib.suppress(OSError):  # not empty, or gone: leave it
                folder.rmdir()
        raise
    if state is not None:
        log(f"resuming {config.model} from {checkpoint_path}: epoch {epoch + 1}, batch {batch}")
    else:
        log(f"training {config.model} ({model.num_parameters():,} parameters) on {len(train_x):,} images, "
            f"{'validating on the last' if config.holdout else 'testing on'} {len(test_x):,}")
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")

    n = len(train_x)
    batches = math.ceil(n / config.batch_size)
    total_steps = config.epochs * batches
    progress = progress if progress is not None else Progress()

    def diverged(where: str, why: str) -> TrainingDiverged:
        kept = (f"the last checkpoint, {checkpoint_path}, was left as it was" if checkpoint_path.exists()
                else "no checkpoint was written")
        return TrainingDiverged(f"training diverged at {where} ({why}); try a smaller learning rate "
                                f"than {config.lr:g}; {kept}")

    def interrupted_twice(how: str) -> TrainingInterrupted:
        kept = (f"continue from the last checkpoint with: {resume_command}" if checkpoint_path.exists()
                else "nothing was saved")
        log(f"interrupted twice: stopped {how}; {kept}")
        return TrainingInterrupted()

    def save(epoch_: int, batch_: int, running_: dict) -> None:
        # Never replace a good checkpoint with broken weights.
        if not _all_finite(model):
            raise diverged(f"epoch {epoch_ + 1 if batch_ else epoch_}", "the weights are no longer finite")
        meta = {"model": config.model, "model_options": config.model_options, "config": asdict(config),
                "epoch": epoch_, "batch": batch_, "running": running_, "metrics": rows,
                "num_parameters": model.num_parameters()}
        save_checkpoint(checkpoint_path, model.state_dict(), optimizer.state_dict(), meta)

    with StopOnCtrlC() as ctrl_c:
        try:
            while epoch < config.epochs:
                order = epoch_order(config.seed, epoch, n)
                progress.start_epoch(batch)
                t0 = time.perf_counter() - running["seconds"]
                while batch < batches:
                    if ctrl_c.requested:
                        raise KeyboardInterrupt  # between two batches: a consistent state to save
                    idx = order[batch * config.batch_size : (batch + 1) * config.batch_size]
                    x = train_x[idx]
                    if config.max_shift:
                        x = random_shift(x, config.max_shift, np.random.default_rng((config.seed, epoch, batch)))
                    optimizer.lr = learning_rate(config, epoch * batches + batch, total_steps)
                    try:
                        loss, correct = train_step(model, optimizer, x, train_y[idx])
                    except TrainingDiverged as err:
                        progress.end_epoch()
                        raise diverged(f"epoch {epoch + 1}, batch {batch + 1}", str(err)) from None
                    running["loss"] += loss * len(idx)
                    running["correct"] += correct
                    running["seen"] += len(idx)
                    running["seconds"] = time.perf_counter() - t0
                    batch += 1
                    progress.update(epoch + 1, config.epochs, batch, batches,
                                    running["seen"] / max(running["seconds"], 1e-9), running["loss"] / running["seen"])
                progress.end_epoch()
                test_loss, test_acc = evaluate(model, test_x, test_y)
                rows.append({"epoch": epoch + 1, "train_loss": running["loss"] / running["seen"],
                             "train_acc": running["correct"] / running["seen"], "test_loss": test_loss,
                             "test_acc": test_acc, "seconds": running["seconds"],
                             "lr": learning_rate(config, (epoch + 1) * batches - 1, total_steps)})
                epoch, batch, running = epoch + 1, 0, dict(fresh)
                save(epoch, batch, running)
                write_metrics(out / "metrics.csv", rows)
                r = rows[-1]
                log(f"epoch {r['epoch']}/{config.epochs}: train loss {r['train_loss']:.4f}, train acc "
                    f"{r['train_acc']:.4f}, test acc {r['test_acc']:.4f}, {r['seconds']:.1f} s")
        except KeyboardInterrupt:
            progress.end_epoch()
            if ctrl_c.hard:
                raise interrupted_twice("at once without saving") from None
            try:
                save(epoch, batch, running)  # atomic: a second Ctrl-C leaves the previous checkpoint
            except KeyboardInterrupt:
                raise interrupted_twice("while saving") from None
            log(f"interrupted: saved epoch {epoch + 1}, batch {batch} to {checkpoint_path}; "
                f"continue with: {resume_command}")
            raise TrainingInterrupted from None
    return rows
