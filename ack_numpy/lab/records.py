"""What a study report may publish about a run: checked against the run's source of truth.

A finished run's folder holds config.json and metrics.csv (copies), checkpoint.npz (the
source of truth: weights, settings and metrics in one file) while it is on the machine
that trained it, and record.json, a small per-run record that stays with the folder
(checkpoints are not committed: a LeNet one is 5 MB):

    record.json   {"run" (the folder's name), "config_sha256", "metrics_sha256", "checkpoint_sha256",
                   "checks_sha256" (if the run has a checks.csv), "made_from", "evaluated_acc",
                   "evaluated_images", "correct", "saturated"}
                  correct: which evaluation images the checkpoint classifies correctly
                  (one bit per image, packed, base64), for paired per-image tests;
                  saturated: the share of the first tanh's outputs above 0.99 in size.

`verified_rows(run)` returns the metric rows a report may use, or None while the run is
unfinished, and raises RecordError naming the run for anything that disagrees:

  * config.json must hold the settings the study asks for (runner.other_settings);
  * with a checkpoint: it must read whole (a truncated one is refused), name the same
    model, options and settings as config.json, hold exactly the rows of metrics.csv, and
    score, re-evaluated now, the accuracy its last row says. The first time, this writes
    record.json; later, the record must match the files;
  * without a checkpoint (a fresh clone): record.json must exist and the digests of
    config.json and metrics.csv must be the ones it holds.

Runs committed before records existed (the reproduction and the budget sweep) got a
record made from the committed files (`made_from` says so): it detects any later edit,
not one made before it. A record can be forged along with the file it guards; it guards
against accidents and against editing one file alone, not against a determined forger.
`write_report_files` writes a report's files only after everything was checked, each
atomically (a temporary file renamed into place), and `check_report_may_replace` stops a
partial report (a run folder removed, emptied or cut short) from replacing a complete one.

A record and a report's results.json each carry their own digest ("sha256", of the rest of
their content): `read_record` and `read_summary` refuse a file edited after it was written,
naming it. Like a record, a digest can be recomputed by a forger; it stops an edit of one
file alone (a record's per-image bits, a summary's accuracies) from reaching a report or
the claims ledger.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..files import atomic_write, check_output_file, quote_path
from ..runs import CHECKPOINT_NAME, read_metrics
from ..train import split_sizes
from .runner import CHECKS_NAME, Run, is_finished, other_settings

RECORD_NAME = "record.json"
_PLACE = ("out", "data_dir")  # where the folder and the data are: not a setting of the run


class RecordError(ValueError):
    """A run whose files disagree with each other or with its record; the message names it."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


DIGEST = "sha256"  # the key of a record's or a summary's digest of its own content


def content_digest(content: dict) -> str:
    """SHA-256 of a JSON object's content, without its own DIGEST entry, in one canonical
    spelling (sorted keys, the numbers as JSON writes them)."""
    body = json.loads(json.dumps({k: v for k, v in content.items() if k != DIGEST}))
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def with_digest(content: dict) -> dict:
    return {**{k: v for k, v in content.items() if k != DIGEST}, DIGEST: content_digest(content)}


def summary_text(summary: dict) -> str:
    """A report's results.json: the summary and its digest (read back by `read_summary`)."""
    return json.dumps(with_digest(summary), indent=2) + "\n"


class SummaryError(ValueError):
    """A results.json that cannot be read, or was edited after its report wrote it."""


def read_summary(path: Path) -> dict:
    """A report's results.json, checked against its own digest; SummaryError naming the file
    (and the command that writes it again) if it was edited, cut short or is not one."""
    try:
        summary = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise SummaryError(f"{path} cannot be read ({err})") from None
    if not isinstance(summary, dict) or summary.get(DIGEST) != content_digest(summary):
        command = summary.get("command") if isinstance(summary, dict) else None
        if command and " --out " in command:  # the folder at fault, wherever its report first wrote it
            before, after = command.split(" --out ", 1)
            command = f"{before} --out {quote_path(Path(path).parent)}" + (" " + after.split(" ", 1)[1]
                                                                          if " " in after else "")
        raise SummaryError(f"{path} is not the file its report wrote (edited, or made before reports had "
                           f"digests): write it again with "
                           + (f"`{command} --report-only`" if command else "its study's --report-only"))
    return summary


def _fail(run: Run, problem: str) -> RecordError:
    return RecordError(f"run {run.name} ({run.folder}): {problem}; refusing to report it")


def verified_rows(run: Run, evaluate_checkpoint: bool = True) -> list[dict] | None:
    """The metric rows of a finished run (the first `epochs`, or all of a run extended until
    a target), checked (see the module's doc); None if the run has not finished. Raises
    RecordError naming the run."""
    metrics = run.folder / "metrics.csv"
    if not metrics.exists():
        return None
    try:
        rows = read_metrics(metrics)
    except (ValueError, KeyError) as err:
        raise _fail(run, f"metrics.csv cannot be read ({err})") from None
    # Before asking whether it finished: a folder trained for fewer epochs than asked is
    # another run, not an unfinished one.
    try:
        details = other_settings(run)
    except ValueError as err:
        raise _fail(run, str(err)) from None
    if details:
        raise _fail(run, f"its folder holds a run with other settings: {details}; use another --out, or "
                         f"delete that folder to train it again")
    record_path, checkpoint = run.folder / RECORD_NAME, run.folder / CHECKPOINT_NAME
    if not is_finished(run):
        # A record says the run finished once; without a checkpoint (so not training now) a
        # shorter metrics.csv is a cut or edited copy, not a run in progress.
        if record_path.exists() and not checkpoint.exists() and \
                read_record(run, record_path).get("metrics_sha256") != sha256(metrics):
            raise _fail(run, f"metrics.csv is not the file its {RECORD_NAME} was made from (cut short or edited?)")
        return None
    record = read_record(run, record_path)
    if checkpoint.exists():
        fresh = record_from_checkpoint(run, rows, checkpoint, evaluate_checkpoint)
        if record is None:
            _write_text(record_path, json.dumps(with_digest(fresh), indent=1) + "\n")
        else:
            for key in ("config_sha256", "metrics_sha256", "checkpoint_sha256", "checks_sha256"):
                if record.get(key) != fresh.get(key):
                    raise _fail(run, f"{RECORD_NAME} was made from another {key.rsplit('_', 1)[0]} file")
    elif record is None:
        raise _fail(run, f"it has no {CHECKPOINT_NAME} and no {RECORD_NAME}, so nothing can vouch for metrics.csv")
    else:
        guarded = [("config_sha256", run.folder / "config.json"), ("metrics_sha256", metrics)]
        if "checks_sha256" in record or (run.folder / CHECKS_NAME).exists():
            guarded.append(("checks_sha256", run.folder / CHECKS_NAME))
        for key, path in guarded:
            if not path.exists():
                raise _fail(run, f"{path.name} is missing, though its {RECORD_NAME} was made from one (removed?)")
            if record.get(key) != sha256(path):
                raise _fail(run, f"{path.name} is not the file its {RECORD_NAME} was made from (edited?)")
    return rows if run.until is not None else rows[: run.config.epochs]


def read_record(run: Run, path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise _fail(run, f"{RECORD_NAME} cannot be read ({err}; cut short or edited?)") from None
    if not isinstance(record, dict) or record.get("run") != run.folder.name:
        raise _fail(run, f"{RECORD_NAME} is not this run's record (it names {record.get('run')!r})"
                    if isinstance(record, dict) else f"{RECORD_NAME} is not a record")
    if record.get(DIGEST) != content_digest(record):
        raise _fail(run, f"{RECORD_NAME} was edited after it was written (its {DIGEST} does not match its content)")
    return record


def record_from_checkpoint(run: Run, rows: list[dict], checkpoint: Path, evaluate_checkpoint: bool) -> dict:
    """Check the checkpoint against config.json and metrics.csv and return the record it vouches for."""
    from ..checkpoint import CheckpointError, load_model, saved_config

    try:
        model, meta = load_model(checkpoint)  # reads every array: a truncated file fails here
    except (CheckpointError, OSError, ValueError) as err:
        raise _fail(run, f"its checkpoint cannot be read ({err})") from None
    if meta.get("model") != run.config.model or meta.get("model_options", {}) != _plain(run.config.model_options):
        raise _fail(run, f"its checkpoint holds model {meta.get('model')!r} with options "
                    f"{meta.get('model_options')}, the folder {run.config.model!r} with {run.config.model_options}")
    try:
        held = _plain(asdict(saved_config(meta, checkpoint)))
    except CheckpointError as err:
        raise _fail(run, f"its checkpoint holds no usable settings ({err})") from None
    saved = json.loads((run.folder / "config.json").read_text())
    differ = sorted(k for k in set(saved) | set(held) if k not in _PLACE and saved.get(k) != held.get(k))
    if differ:
        raise _fail(run, f"its checkpoint was trained with other settings than config.json ({', '.join(differ)})")
    if not _same_rows(meta.get("metrics", []), rows):
        raise _fail(run, "metrics.csv is not the metrics its checkpoint holds (edited?)")
    if meta.get("epoch") != len(rows) or meta.get("batch", 0) != 0:
        raise _fail(run, f"its checkpoint stopped at epoch {meta.get('epoch')}, batch {meta.get('batch')}, "
                    f"not at the end of epoch {len(rows)}")
    record = {"run": run.folder.name, "config_sha256": sha256(run.folder / "config.json"),
              "metrics_sha256": sha256(run.folder / "metrics.csv"), "checkpoint_sha256": sha256(checkpoint),
              "made_from": "checkpoint"}
    if (run.folder / CHECKS_NAME).exists():  # the checks within each epoch (runner.HeldOutChecks)
        record["checks_sha256"] = sha256(run.folder / CHECKS_NAME)
    if evaluate_checkpoint:
        correct = evaluation_correct(model, run)
        accuracy = float(correct.mean())
        if not math.isclose(accuracy, rows[-1]["test_acc"], abs_tol=0.5 / len(correct)):
            raise _fail(run, f"its checkpoint scores {accuracy:.4f} now, metrics.csv says {rows[-1]['test_acc']:.4f}")
        record["evaluated_acc"] = accuracy
        record["evaluated_images"] = int(len(correct))
        record["saturated"] = saturated_fraction(model, run)
        record["correct"] = base64.b64encode(np.packbits(correct).tobytes()).decode("ascii")
    return record


SATURATED = 0.99  # |tanh| above this: its derivative 1 - y^2 is below 0.02


def saturated_fraction(model, run: Run) -> float | None:
    """The share of the first tanh layer's outputs with |y| > SATURATED over the run's
    evaluation images (the first 2,000), or None for a model without a tanh first stage
    (lenet, a ReLU first layer). For an adaptive layer the tanh is inside the layer."""
    from ..autograd import Tensor, no_grad
    from ..nn import AdaptiveConv2d, DiagonalAdaptiveConv2d, LowRankAdaptiveConv2d, Tanh

    layers = getattr(getattr(model, "features", None), "layers", [])
    stop = next((i for i, layer in enumerate(layers)
                 if isinstance(layer, (Tanh, AdaptiveConv2d, DiagonalAdaptiveConv2d, LowRankAdaptiveConv2d))
                 and (not isinstance(layer, AdaptiveConv2d) or layer.activation == "tanh")), None)
    if stop is None or stop > 2:  # only the first stage
        return None
    images = _evaluation_images(run)[0][:2000]
    with no_grad():
        y = Tensor(images)
        for layer in layers[: stop + 1]:
            y = layer(y)
    return float((np.abs(y.data) > SATURATED).mean())


def correct_of(record: dict | None) -> np.ndarray | None:
    """The per-image correctness a record holds, as (n,) bools; None if it holds none."""
    if not record or "correct" not in record:
        return None
    bits = np.unpackbits(np.frombuffer(base64.b64decode(record["correct"]), dtype=np.uint8))
    return bits[: record["evaluated_images"]].astype(bool)


_DATA_CACHE: dict = {}


def evaluation_correct(model, run: Run) -> np.ndarray:
    """(n,) bool: which images of the run's evaluation set (test set or holdout) the model gets right."""
    from ..autograd import Tensor, no_grad

    images, labels = _evaluation_images(run)
    model.eval()
    correct = np.zeros(len(labels), dtype=bool)
    with no_grad():
        for start in range(0, len(labels), 250):
            logits = model(Tensor(images[start : start + 250])).data
            correct[start : start + 250] = logits.argmax(axis=1) == labels[start : start + 250]
    return correct


def _evaluation_images(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """The images a run was scored on (the test set, or its holdout), loaded once per setting."""
    from ..train import load_data

    key = (run.config.holdout, run.config.limit_train, run.config.limit_test, run.config.data_dir)
    if key not in _DATA_CACHE:
        data = load_data(run.config)
        _DATA_CACHE.clear()  # one evaluation set at a time: MNIST is 200 MB as float32
        _DATA_CACHE[key] = (data.test_x, data.test_y)
    return _DATA_CACHE[key]


def record_committed_files(run: Run, commit: str) -> Path:
    """record.json for a run committed before records existed, made from its committed files."""
    record = {"run": run.folder.name, "config_sha256": sha256(run.folder / "config.json"),
              "metrics_sha256": sha256(run.folder / "metrics.csv"), "checkpoint_sha256": None,
              "made_from": f"the committed config.json and metrics.csv (git {commit}); no checkpoint was kept"}
    path = run.folder / RECORD_NAME
    if path.exists():
        raise FileExistsError(f"{path} exists; a record is never written over")
    _write_text(path, json.dumps(with_digest(record), indent=1) + "\n")
    return path


def image_counts(limit_train: int | None, limit_test: int | None = None, holdout: int = 0) -> dict[str, int]:
    """{"train_images": per epoch, "test_images": evaluated}, as a report states them."""
    train_images, test_images = split_sizes(limit_train, limit_test, holdout)
    return {"train_images": train_images, "test_images": test_images}


def check_report_may_replace(out: Path, summary: dict, planned: list[str]) -> None:
    """A report never loses a finished run: every run the report in out/results.json counted
    as finished must be finished now (else its folder was removed, emptied or cut short), or
    this report is refused, naming them, before anything is written. Runs added since (more
    seeds, say) may still be missing. Puts this report's finished runs in
    summary["finished_runs"] for the next one to compare with."""
    summary["finished_runs"] = finished = sorted(set(planned) - set(summary.get("missing", [])))
    path = Path(out) / "results.json"
    if not path.exists():
        return  # the first report here
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # not a report anyone can read: this one may replace it
    if not isinstance(old, dict):
        return
    if "finished_runs" in old:
        lost = sorted(set(old["finished_runs"]) - set(finished))
    else:  # a report from before the list: complete meant every run it planned had finished
        lost = [] if old.get("missing") else [name for name in summary.get("missing", [])]
    if lost:
        raise RecordError(f"{path} counts {len(lost)} runs as finished that this report would leave out "
                          f"({', '.join(lost[:5])}{', ...' if len(lost) > 5 else ''}): refusing to write it over "
                          f"that one; restore those run folders (git checkout), ask for the same seeds, or use "
                          f"another --out")


def check_report_outputs(out: Path, names) -> None:
    """Raise, before any of them is written, the error writing any of a report's files
    would raise (a folder where a file goes, a missing folder, ...): a report is written
    whole or not at all, short of a disk that fills up between two files."""
    for name in names:
        check_output_file(Path(out) / name, "the report")


def write_report_files(out: Path, texts: dict[str, str], figures: dict | None = None) -> None:
    """Write a report's files, each atomically (files.atomic_write): `texts` name -> content,
    `figures` name -> function(binary file) that draws into it. Called only after every
    run was checked, so a refused report leaves every file as it was."""
    check_report_outputs(out, [*texts, *(figures or {})])
    for name, text in texts.items():
        _write_text(out / name, text)
    for name, draw in (figures or {}).items():
        with atomic_write(out / name, "wb") as f:
            draw(f)


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def _plain(value):
    """Tuples as lists, as JSON has them."""
    return json.loads(json.dumps(value))


def _same_rows(a: list[dict], b: list[dict]) -> bool:
    """The same metric rows, to the last digit (the CSV holds Python's repr of each float)."""
    return len(a) == len(b) and all({k: float(r[k]) for k in r} == {k: float(s[k]) for k in s} for r, s in zip(a, b))

