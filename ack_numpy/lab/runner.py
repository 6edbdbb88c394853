"""Run many trainings in parallel processes, keep the finished ones, resume the rest.

A study is a list of `Run`s: a folder name and the full `TrainConfig` of one training.
`run_all(runs, jobs)` starts each unfinished run in its own Python process (one BLAS
thread each, so the arithmetic is the same as a single-threaded run anywhere), at most
`jobs` at a time:

    python -m ack_numpy.lab.runner '<the run as JSON>'     # calls train() or resume() directly

A folder that already holds a finished run is kept; one that holds a checkpoint is
resumed from it; one started with other settings is refused, so that its numbers are
never reported as those of the settings asked for.

Stopping. The children run in their own session, so Ctrl-C at the terminal reaches only
the runner; the runner (on Ctrl-C, SIGTERM or SIGHUP) sends each child one SIGINT, which
the training loop turns into "save at the next batch boundary and exit", waits for them,
and exits. A child whose runner dies without a word (kill -9) notices that its parent
changed and stops the same way, so no trainer is left running behind a dead runner.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from ..checkpoint import read_meta
from ..runs import RunLock, write_rows
from ..runtime import keep_freed_memory
from ..train import CHECKPOINT_NAME, TrainConfig, TrainingInterrupted, read_metrics, resume, train

# Settings that may differ between the saved config.json and the one asked for now:
# where the folder and the data are, and (for runs extended until a target) the epochs.
_PLACE = ("out", "data_dir")
STOP_WAIT_SECONDS = 60.0


@dataclass
class Run:
    """One training of a study. `until`: with the constant schedule, train one epoch at a
    time until the evaluated accuracy reaches `until` or `config.epochs` epochs are done
    (a run extended this way is the same as one trained that long from the start).
    `checks_per_epoch` > 1: also evaluate checks_per_epoch - 1 times within each epoch, so that
    with the epoch's own evaluation there are that many per epoch (HeldOutChecks)."""
    name: str
    config: TrainConfig
    until: float | None = None
    checks_per_epoch: int = 1

    @property
    def folder(self) -> Path:
        return Path(self.config.out)


class RunnerStopped(KeyboardInterrupt):
    """The runner was asked to stop (Ctrl-C, SIGTERM, SIGHUP); its children have stopped."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# ----------------------------------------------------------------------------- state of a folder
def rows_of(run: Run) -> list[dict]:
    path = run.folder / "metrics.csv"
    return read_metrics(path) if path.exists() else []


def is_finished(run: Run) -> bool:
    rows = rows_of(run)
    if run.until is not None and any(r["test_acc"] >= run.until for r in rows):
        return True
    return len(rows) >= run.config.epochs


def other_settings(run: Run) -> str | None:
    """How the folder's config.json differs from the settings asked for ("epochs=10 (asked:
    12), ..."), or None if it does not (or there is no config.json yet)."""
    config_file = run.folder / "config.json"
    if not config_file.exists():
        return None
    try:
        saved = json.loads(config_file.read_text())
    except ValueError as err:
        raise ValueError(f"{config_file} cannot be read ({err}): cut short or edited?") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{config_file} holds no settings (cut short or edited?)")
    wanted = json.loads(json.dumps(asdict(run.config)))  # tuples as lists, as in the file
    ignore = _PLACE + (("epochs",) if run.until is not None else ())
    differ = {k: (saved.get(k), v) for k, v in wanted.items() if k not in ignore and saved.get(k) != v}
    return ", ".join(f"{k}={old!r} (asked: {new!r})" for k, (old, new) in differ.items()) or None


def check_same_settings(run: Run) -> None:
    """Refuse a folder whose config.json was written for other settings."""
    details = other_settings(run)
    if details:
        raise ValueError(f"{run.folder} holds a run with other settings: {details}; "
                         f"use another --out, or delete that folder to train it again")


# ----------------------------------------------------------------------------- checks within an epoch
CHECKS_NAME = "checks.csv"
CHECK_FIELDS = ["epoch", "images", "test_loss", "test_acc"]


class HeldOutChecks:
    """An on_batch_end callback (train.py) that evaluates the model on the run's evaluation
    images (the test set, or the holdout) `per_epoch - 1` times within each epoch, at evenly
    spaced batches; the epoch's own evaluation, at its end, is the row of metrics.csv.

    Each check is a row of checks.csv: epoch (fractional: 2.3 is 30% into the third),
    images seen since the start, test loss and accuracy. The file is rewritten (atomically)
    after each check, and a resumed run keeps the rows up to the checkpoint's position, so
    the curve is the same as an uninterrupted run's."""

    def __init__(self, run: Run):
        from ..train import load_data

        data = load_data(run.config)
        self.images, self.labels = data.test_x, data.test_y
        self.train_images = len(data.train_y)
        self.path = run.folder / CHECKS_NAME
        self.n_batches = math.ceil(self.train_images / run.config.batch_size)
        self.at_batches = check_batches(self.n_batches, run.checks_per_epoch)
        self.rows = read_checks(self.path) if self.path.exists() else []

    def keep_until(self, images: int) -> None:
        """Forget the checks made after `images` images (those a resumed run will make again)."""
        self.rows = [row for row in self.rows if row["images"] <= images]

    def __call__(self, position, model) -> None:
        if position.batch not in self.at_batches:
            return
        from ..train import evaluate

        loss, accuracy = evaluate(model, self.images, self.labels)
        self.rows.append({"epoch": round(position.epoch + position.batch / self.n_batches, 4),
                          "images": position.epoch * self.train_images + position.seen,
                          "test_loss": loss, "test_acc": accuracy})
        write_checks(self.path, self.rows)


def check_batches(n_batches: int, per_epoch: int) -> set[int]:
    """The batches (counted from 1) after which HeldOutChecks evaluates: evenly spaced, none
    at the epoch's end (metrics.csv has that one); fewer than per_epoch - 1 if the epoch
    has too few batches."""
    return {round(k * n_batches / per_epoch) for k in range(1, per_epoch)} & set(range(1, n_batches))


def write_checks(path: Path, rows: list[dict]) -> None:
    write_rows(path, rows, CHECK_FIELDS)


def read_checks(path: Path) -> list[dict]:
    """Rows of a checks.csv: epoch and accuracy as floats, images as an int."""
    with open(path, newline="") as f:
        return [{k: int(v) if k == "images" else float(v) for k, v in row.items()} for row in csv.DictReader(f)]


# ----------------------------------------------------------------------------- the child
def train_run(run: Run) -> list[dict]:
    """Train (or resume) one run in this process; returns its metric rows."""
    folder = run.folder
    checks = HeldOutChecks(run) if run.checks_per_epoch > 1 else None
    if (folder / CHECKPOINT_NAME).exists():
        if checks is not None:
            meta = read_meta(folder / CHECKPOINT_NAME)
            checks.keep_until(meta["epoch"] * checks.train_images + meta["running"]["seen"])
        # An extended run continues with the epoch after its last row (or finishes that one).
        epochs = None if run.until is None else min(run.config.epochs, len(rows_of(run)) + 1)
        rows = resume(folder, data_dir=run.config.data_dir, epochs=epochs, on_batch_end=checks)
    else:
        if checks is not None:
            checks.keep_until(0)
        first = run.config if run.until is None else replace(run.config, epochs=1)
        rows = train(first, overwrite=True, on_batch_end=checks)
    while run.until is not None and not any(r["test_acc"] >= run.until for r in rows) \
            and len(rows) < run.config.epochs:
        rows = resume(folder, data_dir=run.config.data_dir, epochs=len(rows) + 1, on_batch_end=checks)
    return rows


def _stop_when_orphaned(parent: int) -> None:
    """If the runner dies, ask this process to stop as the runner would have (one SIGINT)."""
    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()


def child_main(argv: list[str]) -> int:
    """Entry point of a run's process: argv[0] is the run as JSON (see run_command)."""
    spec = json.loads(argv[0])
    run = Run(spec["name"], TrainConfig(**spec["config"]), spec["until"], spec.get("checks_per_epoch", 1))
    # Started in the background (nohup), SIGINT may be ignored; the runner stops us with it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if spec.get("parent") is not None:  # started by run_all, not by a scheduler (run_commands)
        _stop_when_orphaned(spec["parent"])
    keep_freed_memory()  # as `train` does: runtime.py says why
    try:
        train_run(run)
    except (TrainingInterrupted, KeyboardInterrupt):
        return 130
    except Exception as err:  # one line in train.log; the runner reports the folder
        print(f"error: {type(err).__name__}: {err}", flush=True)
        return 1
    return 0


# ----------------------------------------------------------------------------- the parent
def run_command(run: Run) -> list[str]:
    spec = {"name": run.name, "config": asdict(run.config), "until": run.until,
            "checks_per_epoch": run.checks_per_epoch, "parent": os.getpid()}
    return [sys.executable, "-m", "ack_numpy.lab.runner", json.dumps(spec)]


def run_commands(runs: list[Run]) -> list[str]:
    """One shell command per unfinished run, each independent of the others, for a job
    array (SLURM, GNU parallel, xargs -P): run from the project's folder, in any order, on
    any machine that sees the same folders; then the study's --report-only collects them.
    A command finds its folder finished, half done (it resumes) or empty, like run_all."""
    import shlex

    lines = []
    for run in runs:
        if is_finished(run):
            continue
        spec = {"name": run.name, "config": asdict(run.config), "until": run.until,
                "checks_per_epoch": run.checks_per_epoch, "parent": None}
        lines.append("OPENBLAS_NUM_THREADS=1 python -m ack_numpy.lab.runner " + shlex.quote(json.dumps(spec)))
    return lines


def start(run: Run) -> subprocess.Popen:
    run.folder.mkdir(parents=True, exist_ok=True)
    # One BLAS thread per run: parallelism comes from the processes, and the arithmetic is
    # the single-threaded one the committed runs were made with.
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with open(run.folder / "train.log", "a") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {run.name}\n")
        log.flush()
        return subprocess.Popen(run_command(run), stdout=log, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop_children(children: dict, log: Callable[[str], None]) -> None:
    """One SIGINT each (save at the next batch and exit); wait; kill those that hang."""
    for process in children:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    try:
        for process, run in children.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"  {run.name}: did not stop within {STOP_WAIT_SECONDS:.0f} s; killed (its last checkpoint stays)")
                process.kill()
                process.wait()
    except KeyboardInterrupt:  # a second Ctrl-C: stop now; every checkpoint is written atomically
        for process in children:
            process.kill()
            process.wait()


def _raise_stopped(signum, frame):
    raise RunnerStopped(signum)


def hold_study_folders(runs: list[Run]) -> contextlib.ExitStack:
    """Lock the folders that hold the runs' folders (out/runs), as each training locks its
    own: a second runner into the same --out fails at once, naming it, instead of racing
    the first one run by run with mixed logs. Close the returned stack to release them."""
    held = contextlib.ExitStack()
    try:
        for folder in sorted({run.folder.parent for run in runs}):
            folder.mkdir(parents=True, exist_ok=True)
            held.enter_context(RunLock(folder))
    except BaseException:
        held.close()
        raise
    return held


def run_all(runs: list[Run], jobs: int, log: Callable[[str], None] = print, poll_seconds: float = 0.2) -> float:
    """Train every unfinished run, `jobs` at a time, in the order given; returns wall seconds.

    Raises ValueError before starting anything if a folder holds other settings,
    RuntimeError naming the failed runs, RunnerStopped if stopped by a signal."""
    for run in runs:
        run.config.validate()  # one line naming a bad setting, before any process starts
        check_same_settings(run)
    todo = []
    for run in runs:
        if is_finished(run):
            log(f"  {run.name}: already finished, kept")
        else:
            todo.append(run)
    studies = hold_study_folders(todo)  # a second study into the same --out is refused here, up front
    begin = time.perf_counter()
    children: dict[subprocess.Popen, Run] = {}
    failed = []
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if main_thread:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, _raise_stopped)
    try:
        while todo or children:
            while todo and len(children) < jobs:
                run = todo.pop(0)
                log(f"  start {run.name}")
                children[start(run)] = run
            for process in [p for p in children if p.poll() is not None]:
                run = children.pop(process)
                if process.returncode != 0:
                    failed.append(run.name)
                log(f"  done  {run.name} (exit {process.returncode}, {time.perf_counter() - begin:.0f} s since start)")
            time.sleep(poll_seconds)
    except KeyboardInterrupt as err:
        stop_children(children, log)
        signum = err.signum if isinstance(err, RunnerStopped) else signal.SIGINT
        raise RunnerStopped(signum) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        studies.close()
    if failed:
        raise RuntimeError(f"runs failed: {', '.join(failed)}; see train.log in their folders")
    return time.perf_counter() - begin


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
