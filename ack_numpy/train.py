"""The training loop: minibatches -> loss -> backward -> optimiser step -> evaluate -> save.

`train_epochs` is the loop itself, as a textbook writes it. Around it, as small named
functions: `train` and `resume` (start a run, or continue a saved one), `run_in_folder`
and `start_in_folder` (the run folder, its lock and the data), `stop_and_save` (Ctrl-C,
SIGTERM, SIGHUP) and `guarded_step` / `save` (the divergence guard). The settings are
`TrainConfig` (config.py); the rules for a saved run are in checkpoint.py.

One run writes into its output folder (see runs.py):

    config.json      the settings of the run
    metrics.csv      one row per epoch: train loss/accuracy, test loss/accuracy, seconds, lr
    checkpoint.npz   weights + optimiser state + position, rewritten atomically every epoch;
                     the other two files are copies of what it holds

Randomness is explicit and derived from the seed, so runs are reproducible and can be
resumed exactly: the weights come from default_rng(seed); the order of epoch e from
default_rng((seed, e)); the random shifts of batch b of epoch e from
default_rng((seed, e, b)). Nothing depends on a global random state, so a run resumed
at (epoch, batch) sees exactly the batches an uninterrupted run would have seen.

RESUME_NOTES below says what a user of `train` sees when a run stops; `train --help`
prints it.
"""
from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from . import functional as F
from . import optim
from .autograd import Tensor, no_grad
from .checkpoint import (CheckpointError, check_position_in_epoch, check_training_state, config_record,
                         read_arrays, read_meta, save_checkpoint, saved_config)
from .config import SettingError, TrainConfig
from .functional.sizes import is_whole
from .data import batches, load_mnist, random_shift
from .data.mnist import MNIST_SHAPES, find_mnist_dir
from .models import build_model
from .nn import Module
from .files import quote_path
from .progress import Progress, StopOnSignals, silence_stdout
from .runs import (CHECKPOINT_NAME, METRIC_FIELDS, METRICS_NAME, RunLock, make_folder, read_metrics,
                   remove_empty, run_folder, write_metrics, write_run_files)

RESUME_NOTES = """\
Interrupting and resuming: a run can be stopped at any moment and continued later with
the same result.

  Ctrl-C, SIGTERM (a scheduler, `kill`) or SIGHUP (the terminal closed) lets the current
  batch finish, then saves OUT/checkpoint.npz (weights, optimiser state, position in the
  epoch, metrics so far), prints one line and exits with 128 + the signal number (130
  for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP):
    interrupted: saved epoch 3, batch 412 to runs/lenet/checkpoint.npz; continue with:
    python -m ack_numpy train --resume runs/lenet
  A second signal stops at once without saving; the checkpoint of the last finished
  epoch is kept.

  train --resume DIR carries on from that exact batch with the run's own settings. Every
  random choice comes from the seed (the weights from seed, the order of epoch e from
  (seed, e), the shifts of batch b from (seed, e, b)), so a resumed run ends with the
  same metrics and weights as one never stopped. Only --data-dir and --epochs may be
  given with --resume, and --epochs only with --schedule constant (the cosine schedule
  depends on the total). --resume first rewrites config.json and metrics.csv from the
  checkpoint, the one file of the folder that counts.

  A crash or kill -9 loses at most the current epoch: checkpoints are written under a
  temporary name and renamed into place, so the file is always the old one or the new
  one, never half written. A second run into the same --out while one runs is refused.

  An --out that already holds a checkpoint is never overwritten by accident: train
  refuses and suggests --resume DIR, or --overwrite to start again.

  A NaN or infinite loss stops training with one line naming the epoch and batch and
  suggesting a smaller learning rate; the last checkpoint is left as it was.

  Progress lines come twice a second on a terminal and every 30 s in a log file
  (ACK_PROGRESS_SECONDS=5 changes that)."""



class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP during training, after the loop has saved (or not) and said so."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__()
        self.exit_code = 128 + signum  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM




# ----------------------------------------------------------------------------- pieces
def initial_model(config: TrainConfig) -> Module:
    """The model a run starts from: its weights come from the seed alone."""
    return build_model(config.model, seed=config.seed, **config.model_options)


def make_optimizer(config: TrainConfig, model: Module) -> optim.Optimizer:
    """The optimiser of a run, at the rate of its first step. The learning rate has one
    owner, `learning_rate` (the schedule): this asks it for step 0 and the loop asks it for
    every later step."""
    lr = learning_rate(config, 0, 1)
    if config.optimizer == "sgd":
        return optim.SGD(model.parameters(), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return optim.Adam(model.parameters(), lr=lr, weight_decay=config.weight_decay)


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Cosine: lr * (1 + cos(pi * step / total)) / 2, from lr at step 0 towards 0
    (it would be 0 at step `total`, one past the last step taken)."""
    if config.schedule == "constant":
        return config.lr
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


def epoch_batches(config: TrainConfig, epoch: int, images: np.ndarray, labels: np.ndarray,
                  first_batch: int = 0):
    """The minibatches (x, y) of `epoch` (0-based) from `first_batch` on: the epoch's order
    from default_rng((seed, epoch)), batch b shifted with default_rng((seed, epoch, b))."""
    order = np.random.default_rng((config.seed, epoch))
    for b, (x, y) in enumerate(batches(images, labels, config.batch_size, rng=order, first_batch=first_batch),
                               start=first_batch):
        if config.max_shift:
            x = random_shift(x, config.max_shift, np.random.default_rng((config.seed, epoch, b)))
        yield x, y


def evaluate(model: Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 250) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of model on a dataset, without building a graph.

    images: (N, 1, 28, 28) float32, labels: (N,) int, N >= 1. The model's train/eval mode
    is restored afterwards (no layer here behaves differently in eval mode yet, but a
    reader adding dropout would expect it).

    Performance: smaller batches keep each layer's arrays nearer the size of the CPU's
    caches (LeNet's second im2col matrix is 32 MB at 250 images, 128 MB at 1,000), and the
    pass is about twice as fast per image with 250 as with 1,000
    (data/bench/compare-3db0ec5.txt). The batch size moves the logits by float32 rounding
    only (about 1e-7 of their size: BLAS blocks the products by their shapes); the
    packaged model (ack_numpy/assets/adaptive-lenet.npz) scores 99.17% with batches of 250 and of 1,000."""
    if len(images) == 0:
        raise ValueError("evaluate: images is empty (0 images); an accuracy needs at least one")
    if len(images) != len(labels):
        raise ValueError(f"evaluate: images and labels differ in length ({len(images)} vs {len(labels)})")
    if not is_whole(batch_size, 1):
        raise ValueError(f"evaluate: batch_size must be a whole number >= 1, got {batch_size!r}")
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

    Raises TrainingDiverged before touching the weights if the loss or a gradient is not
    finite."""
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
        try:
            optimizer.step()
        except FloatingPointError as err:  # a finite loss, but its gradient overflowed
            raise TrainingDiverged(str(err)) from None
    return value, int((logits.data.argmax(axis=1) == y).sum())


# ----------------------------------------------------------------------------- the state of a run
@dataclass
class Position:
    """Where a run is: epochs finished, batches finished in the current epoch, and the
    sums over those batches that become the epoch's train loss and accuracy."""
    epoch: int = 0
    batch: int = 0
    loss: float = 0.0   # sum of (batch loss * batch size)
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0

    def add_batch(self, loss: float, correct: int, size: int, seconds: float) -> None:
        self.batch += 1
        self.loss += loss * size
        self.correct += correct
        self.seen += size
        self.seconds = seconds


@dataclass
class Run:
    """What the loop carries from batch to batch, and what a checkpoint holds."""
    config: TrainConfig
    model: Module
    optimizer: optim.Optimizer
    position: Position
    rows: list[dict]  # metrics of the finished epochs

    @property
    def checkpoint(self) -> Path:
        return Path(self.config.out) / CHECKPOINT_NAME


class Data(NamedTuple):
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    folder: Path  # where they were read from


# ----------------------------------------------------------------------------- the loop
def train_epochs(run: Run, data: Data, stop: StopOnSignals, log: Callable[[str], None], progress: Progress,
                 on_epoch_end: Callable[[int, Module], None] | None = None,
                 on_batch_end: Callable[[Position, Module], None] | None = None) -> list[dict]:
    """The loop, from where `run` stands to the last epoch:

        for each epoch:
            for each minibatch (x, y), in the epoch's shuffled order, randomly shifted:
                lr = schedule(step);  loss = cross_entropy(model(x), y);  backward;  step
            evaluate on the test images  -> one row of metrics.csv
            save the checkpoint;  on_epoch_end(epoch, model)

    Before each batch it stops if asked to (`stop`: Ctrl-C, SIGTERM, SIGHUP). After each
    step it calls on_batch_end(position, model), if given; the time that takes is not
    counted in the epoch's seconds."""
    config, at = run.config, run.position
    n_batches = math.ceil(len(data.train_y) / config.batch_size)
    total_steps = config.epochs * n_batches
    while at.epoch < config.epochs:
        progress.start_epoch(at.batch)
        clock = time.perf_counter() - at.seconds
        for x, y in epoch_batches(config, at.epoch, data.train_x, data.train_y, first_batch=at.batch):
            stop.check()  # between two batches: a state worth saving
            run.optimizer.lr = learning_rate(config, at.epoch * n_batches + at.batch, total_steps)
            loss, correct = guarded_step(run, x, y)
            at.add_batch(loss, correct, len(y), time.perf_counter() - clock)
            progress.update(at.epoch + 1, config.epochs, at.batch, n_batches,
                            at.seen / max(at.seconds, 1e-9), at.loss / at.seen)
            if on_batch_end is not None:
                hook_started = time.perf_counter()
                on_batch_end(at, run.model)
                clock += time.perf_counter() - hook_started  # an observer's time is not training time
        progress.end_epoch()
        test_loss, test_acc = evaluate(run.model, data.test_x, data.test_y)
        if not math.isfinite(test_loss):  # logits overflowed on a test image: as diverged as a NaN step
            check_weights_finite(run)  # the likelier cause, named first
            raise diverged(run, f"the end of epoch {at.epoch + 1}", f"the test loss is {test_loss}")
        last_lr = learning_rate(config, (at.epoch + 1) * n_batches - 1, total_steps)
        run.rows.append({"epoch": at.epoch + 1, "train_loss": at.loss / at.seen, "train_acc": at.correct / at.seen,
                         "test_loss": test_loss, "test_acc": test_acc, "seconds": at.seconds, "lr": last_lr})
        run.position = at = Position(epoch=at.epoch + 1)
        save(run)
        write_metrics(Path(config.out) / METRICS_NAME, run.rows)
        log(epoch_summary(run.rows[-1], config.epochs))
        if on_epoch_end is not None:
            on_epoch_end(at.epoch, run.model)
    return run.rows


def epoch_summary(row: dict, epochs: int) -> str:
    return (f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f}, train acc "
            f"{row['train_acc']:.4f}, test acc {row['test_acc']:.4f}, {row['seconds']:.1f} s")


# ----------------------------------------------------------------------------- divergence
def guarded_step(run: Run, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """train_step, with a loss that is not finite reported as where it happened."""
    try:
        return train_step(run.model, run.optimizer, x, y)
    except TrainingDiverged as err:
        raise diverged(run, f"epoch {run.position.epoch + 1}, batch {run.position.batch + 1}", str(err)) from None


def save(run: Run) -> None:
    """Write the checkpoint (atomically); never replace a good one with weights that are not finite."""
    check_weights_finite(run)
    at = run.position
    meta = {"model": run.config.model, "model_options": run.config.model_options, "config": config_record(run.config),
            "epoch": at.epoch, "batch": at.batch,
            "running": {"loss": at.loss, "correct": at.correct, "seen": at.seen, "seconds": at.seconds},
            "metrics": run.rows}
    existed = run.checkpoint.exists()
    try:
        save_checkpoint(run.checkpoint, run.model.state_dict(), run.optimizer.state_dict(), meta)
    except OSError as err:  # a full disk, an immutable file: name the checkpoint, say what is left
        kept = "the previous checkpoint was kept as it was" if existed else "no checkpoint was written"
        raise OSError(err.errno, f"{err.strerror or err}: could not save the checkpoint; {kept}",
                      str(run.checkpoint)) from err


def check_weights_finite(run: Run) -> None:
    at = run.position
    if not all(np.isfinite(p.data).all() for p in run.model.parameters()):
        raise diverged(run, f"epoch {at.epoch + 1 if at.batch else at.epoch}", "the weights are no longer finite")


def diverged(run: Run, where: str, why: str) -> TrainingDiverged:
    kept = (f"the last checkpoint, {quote_path(run.checkpoint)}, was left as it was" if run.checkpoint.exists()
            else "no checkpoint was written")
    return TrainingDiverged(f"training diverged at {where} ({why}); try a smaller learning rate "
                            f"than {run.config.lr:g}; {kept}")


# ----------------------------------------------------------------------------- Ctrl-C, SIGTERM, SIGHUP
def train_until_stopped(run: Run, data: Data, stop: StopOnSignals, log, progress, on_epoch_end,
                        on_batch_end=None) -> list[dict]:
    """train_epochs, with a stop request (Ctrl-C, SIGTERM, SIGHUP) turned into a saved checkpoint."""
    stop.deferred = True  # from here on, a signal waits for the end of the batch
    try:
        return train_epochs(run, data, stop, log, progress, on_epoch_end, on_batch_end)
    except KeyboardInterrupt:
        progress.end_epoch()
        raise stop_and_save(run, stop, log) from None


def stop_and_save(run: Run, stop: StopOnSignals, log: Callable[[str], None]) -> TrainingInterrupted:
    """Save the position reached (between two batches), say how to continue, and return the
    exception to stop with. After a second signal nothing more is saved."""
    signum = stop.signum or signal.SIGINT
    how = "interrupted" if signum == signal.SIGINT else f"stopped by {stop.name}"
    again = f"python -m ack_numpy train --resume {quote_path(run.config.out)}"
    kept = f"continue from the last checkpoint with: {again}" if run.checkpoint.exists() else "nothing was saved"
    if stop.hard:
        log(f"{how} twice: stopped at once without saving; {kept}")
        return TrainingInterrupted(signum)
    try:
        save(run)  # atomic: a second signal during the write leaves the previous checkpoint
    except KeyboardInterrupt:
        log(f"{how} twice: stopped while saving; {kept}")
        return TrainingInterrupted(signum)
    log(f"{how}: saved epoch {run.position.epoch + 1}, batch {run.position.batch} to "
        f"{quote_path(run.checkpoint)}; continue with: {again}")
    return TrainingInterrupted(signum)


# ----------------------------------------------------------------------------- starting and resuming
def _say(message: str) -> None:
    """The default `log`: print at once, so that a log file shows each epoch as it ends.

    A closed stdout (`train | head -1`, a closed terminal) must not stop a run: the line is
    dropped, and the rest of the run's lines go to /dev/null."""
    try:
        print(message, flush=True)
    except (BrokenPipeError, OSError, ValueError):
        silence_stdout()


def train(config: TrainConfig, overwrite: bool = False, log: Callable[[str], None] = _say,
          progress: Progress | None = None,
          on_epoch_end: Callable[[int, Module], None] | None = None,
          on_batch_end: Callable[[Position, Module], None] | None = None) -> list[dict]:
    """Train `config.model` on MNIST; write config.json, metrics.csv and checkpoint.npz to config.out
    (TrainConfig makes it runs/MODEL when not given).

    Refuses to start over an existing checkpoint unless overwrite=True (resume instead).
    On Ctrl-C, SIGTERM or SIGHUP it saves the current position, says how to resume and raises
    TrainingInterrupted (a KeyboardInterrupt). on_epoch_end(epoch, model), if given, is
    called after each epoch's evaluation and checkpoint (epoch counts from 1);
    on_batch_end(position, model) after each optimiser step (position.epoch counts the
    finished epochs, position.batch the batches of this one), outside the timed work.
    Returns the metric rows, one per epoch."""
    config.validate()
    checkpoint = Path(config.out) / CHECKPOINT_NAME
    if checkpoint.exists() and not overwrite:
        raise ValueError(f"{quote_path(checkpoint)} already exists: continue it with --resume "
                         f"{quote_path(config.out)}, or choose another --out (or pass --overwrite to start again)")
    model = initial_model(config)
    run = Run(config, model, make_optimizer(config, model), Position(), [])
    return run_in_folder(run, log, progress, on_epoch_end, start_again=True, on_batch_end=on_batch_end)


def resume(out: str | Path, data_dir: str | None = None, epochs: int | None = None,
           log: Callable[[str], None] = _say, progress: Progress | None = None,
           on_epoch_end: Callable[[int, Module], None] | None = None,
           on_batch_end: Callable[[Position, Module], None] | None = None) -> list[dict]:
    """Continue the run saved in out/checkpoint.npz with its own config, from the exact batch
    where it stopped. `epochs` may extend a run that uses the constant schedule (with the
    cosine schedule every learning rate depends on the total, so it must stay the same)."""
    if epochs is not None:
        TrainConfig(epochs=epochs).validate()  # the same rule as for a new run, before any file is read
    out = run_folder(out)
    path = out / CHECKPOINT_NAME
    if not path.is_file():
        what = ("does not exist" if not out.exists() else f"has no {CHECKPOINT_NAME}" if out.is_dir()
                else f"is a file, not a run folder (or its {CHECKPOINT_NAME})")
        raise CheckpointError(f"cannot resume: {quote_path(out)} {what} (a run saves its checkpoint there at the "
                              f"end of each epoch and when interrupted); to start a new run, use --out instead")
    read_at = os.stat(path)
    meta = read_meta(path)
    config = saved_config(meta, path)
    check_training_state(meta, path)
    config.out = str(out)
    if data_dir is not None:
        config.data_dir = data_dir  # the data may live elsewhere on this machine
    if epochs is not None and epochs != config.epochs:
        if config.schedule != "constant":
            raise ValueError(f"cannot change the number of epochs from {config.epochs} to {epochs} when "
                             f"resuming a run with the cosine schedule (its learning rates depend on the total)")
        if epochs < meta["epoch"]:
            raise ValueError(f"cannot resume {quote_path(out)} with --epochs {epochs}: it has already trained "
                             f"{meta['epoch']} epochs; give --epochs {meta['epoch'] + 1} or more to train further")
        config.epochs = epochs
        config.validate()
    model = initial_model(config)
    optimizer = make_optimizer(config, model)
    fits = f"model {config.model!r} with optimizer {config.optimizer!r}"
    expected = {f"model/{k}": v for k, v in model.state_dict().items()}
    expected.update({f"optim/{k}": v for k, v in optimizer.state_dict().items()})
    arrays = read_arrays(path, expected, fits=fits)  # shapes checked before a byte of payload is read
    try:
        model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
        optimizer.load_state_dict({k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")})
    except ValueError as err:  # values no training run saves: name the file, as read_arrays does
        raise CheckpointError(f"{quote_path(path)}: {err} (tampered with?)") from None
    position = Position(meta["epoch"], meta["batch"], **meta["running"])
    run = Run(config, model, optimizer, position, meta["metrics"])
    return run_in_folder(run, log, progress, on_epoch_end, start_again=False, read_at=read_at,
                         on_batch_end=on_batch_end)


def run_in_folder(run: Run, log, progress, on_epoch_end, start_again: bool,
                  read_at: os.stat_result | None = None, on_batch_end=None) -> list[dict]:
    """Make the run folder and hold its lock, then `start_in_folder`.

    The folder is made first, so that an --out we cannot use fails before the data loads; if
    the data then fails (or a signal comes), the empty folders made for the run are taken away."""
    out = Path(run.config.out)
    with StopOnSignals() as stop:  # a signal from here on is answered in one line
        made = make_folder(out)
        try:
            with RunLock(out):
                return start_in_folder(run, stop, log, progress, on_epoch_end, start_again, read_at, on_batch_end)
        except KeyboardInterrupt as err:
            remove_empty(made)
            if isinstance(err, TrainingInterrupted) or stop.signum is None:
                raise
            how = "interrupted" if stop.signum == signal.SIGINT else f"stopped by {stop.name}"
            log(f"{how} before training began: nothing was saved")
            raise TrainingInterrupted(stop.signum) from None
        except BaseException:
            remove_empty(made)
            raise


def start_in_folder(run: Run, stop: StopOnSignals, log, progress, on_epoch_end, start_again: bool,
                    read_at: os.stat_result | None, on_batch_end=None) -> list[dict]:
    """Make the folder's files agree with the checkpoint, load the data, train."""
    out, config, at = Path(run.config.out), run.config, run.position
    if read_at is not None and not os.path.samestat(read_at, os.stat(run.checkpoint)):
        raise CheckpointError(f"{quote_path(run.checkpoint)} was replaced by another run while it was being read; "
                              f"resume again")
    if at.epoch >= config.epochs:
        write_run_files(out, asdict(config), run.rows)  # the checkpoint is the source of truth
        log(f"nothing to do: {quote_path(out)} has finished its run ({at.epoch} of {config.epochs} epochs)")
        return run.rows
    data = load_data(config)
    check_position_in_epoch(config, at.epoch, at.batch, at.seen, len(data.train_y), run.checkpoint,
                            steps=getattr(run.optimizer, "t", None))
    if start_again:  # --overwrite: nothing of the previous run may be left to disagree
        (out / CHECKPOINT_NAME).unlink(missing_ok=True)
    write_run_files(out, asdict(config), run.rows)
    if start_again:
        log(f"training {config.model} ({run.model.num_parameters():,} parameters) on {len(data.train_x):,} images, "
            f"{'validating on the last' if config.holdout else 'testing on'} {len(data.test_x):,} "
            f"(MNIST from {quote_path(data.folder)})")
    else:
        log(f"resuming {config.model} from {quote_path(run.checkpoint)}: epoch {at.epoch + 1}, batch {at.batch}")
    return train_until_stopped(run, data, stop, log, progress if progress is not None else Progress(), on_epoch_end,
                               on_batch_end)


def split_sizes(limit_train: int | None, limit_test: int | None = None, holdout: int = 0) -> tuple[int, int]:
    """(training images per epoch, evaluation images) that `load_data` gives for these
    settings, without reading MNIST."""
    train = min(limit_train or MNIST_SHAPES["train-images-idx3-ubyte"][0], MNIST_SHAPES["train-images-idx3-ubyte"][0])
    if holdout:
        return train - holdout, holdout
    return train, min(limit_test or MNIST_SHAPES["t10k-images-idx3-ubyte"][0], MNIST_SHAPES["t10k-images-idx3-ubyte"][0])


def load_data(config: TrainConfig) -> Data:
    """(train_x, train_y, test_x, test_y, folder), all from one MNIST folder; with holdout,
    the test set is the last training images (and the folder needs no test files)."""
    folder = find_mnist_dir(config.data_dir, "train" if config.holdout else None)
    train_x, train_y = load_mnist("train", folder, limit=config.limit_train)
    if not config.holdout:
        return Data(train_x, train_y, *load_mnist("test", folder, limit=config.limit_test), folder)
    # Design decisions are made on held-out training images, never on the test set.
    if config.holdout >= len(train_x):
        raise SettingError("holdout", f"must be smaller than the training set ({len(train_x)} images)",
                           config.holdout)
    return Data(train_x[: -config.holdout], train_y[: -config.holdout],
                train_x[-config.holdout :], train_y[-config.holdout :], folder)


__all__ = ["CHECKPOINT_NAME", "METRIC_FIELDS", "TrainConfig", "train", "resume", "evaluate", "read_metrics",
           "run_folder", "train_step", "learning_rate", "make_optimizer", "epoch_batches", "Progress",
           "StopOnSignals", "TrainingDiverged", "TrainingInterrupted", "SettingError"]
