"""Checkpoints: one .npz file with the weights, the optimiser state and a JSON record.

Layout of the file (plain NumPy arrays, no pickles, so `np.load` can read it anywhere):

    model/<name>      every parameter, e.g. model/features.0.Q
    optim/<name>      the optimiser's state, e.g. optim/m.0, optim/t
    meta              a JSON string: format version, model name and options, epoch,
                      position inside the epoch, training config and metrics so far

Each fact is stored once: the model's name and options at the top of the record (what
`load_model` needs), the other training settings under "config" (`config_record`).
Format version 1 also stored the model and its options inside "config"; it is still read
(`saved_config` checks that the two copies agree, as it always did), so checkpoints
written before keep loading and resuming.

Writes are atomic: the file is written under a temporary name in the same folder and
renamed over the old one, so a crash (or kill -9) mid-write leaves the previous
checkpoint untouched and a reader never sees a half-written file.

Reads trust nothing. Every entry's size is checked from the zip directory and the .npy
header before its payload is read: against the shapes of the model the record names when
they are known, else against MAX_CHECKPOINT_BYTES; a foreign entry, a non-finite weight
or a missing optimiser entry is refused by name. The rules for the record are the
functions at the end: `check_meta` for every checkpoint, `saved_config`,
`check_training_state` and `check_position_in_epoch` for one that a run resumes from.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, fields
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .config import SettingError, TrainConfig, check_model, is_number
from .files import atomic_write, quote_path
from .functional.sizes import is_whole
from .runs import METRIC_FIELDS

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MODEL_FIELDS = ("model", "model_options")  # stored at the top of the record, not in its "config"
MAX_CHECKPOINT_BYTES = 2**28  # 256 MiB: LeNet with Adam's state needs 5 MiB
MAX_META_BYTES = 2**22        # the JSON record: settings and one row per epoch


class CheckpointError(ValueError):
    """A checkpoint file that is missing, corrupt, truncated or not one of ours."""


# ----------------------------------------------------------------------------- writing
def save_checkpoint(path: str | Path, model_state: dict, optim_state: dict, meta: dict) -> Path:
    """Write the checkpoint atomically and durably (files.atomic_write: a temp file beside
    it, fsynced, renamed over the old one), so that two processes saving into one folder by
    mistake never write into the same file and a kill -9 mid-write leaves the old one whole."""
    path = Path(path)
    arrays = {f"model/{k}": v for k, v in model_state.items()}
    arrays.update({f"optim/{k}": v for k, v in optim_state.items()})
    arrays["meta"] = np.array(json.dumps({"format_version": FORMAT_VERSION, **meta}))
    with atomic_write(path, "wb", durable=True) as f:
        np.savez(f, **arrays)
    return path


# ----------------------------------------------------------------------------- reading
def load_checkpoint(path: str | Path) -> tuple[dict, dict, dict]:
    """Read (model_state, optim_state, meta) of any checkpoint, within the generic size bound."""
    meta = read_meta(path)
    arrays = read_arrays(path)
    return _part(arrays, "model/"), _part(arrays, "optim/"), meta


def load_model(path: str | Path):
    """Rebuild the model a checkpoint was saved from and load its weights -> (model, meta).

    The model is built from the record first, so the weights are checked against its
    shapes before they are read."""
    from .models import build_model  # here, not at the top: models import nn, which is heavier

    meta = read_meta(path)
    model = build_model(meta["model"], seed=0, **meta.get("model_options", {}))
    expected = {f"model/{k}": v for k, v in model.state_dict().items()}
    model.load_state_dict(_part(read_arrays(path, expected, only="model/", fits=f"model {meta['model']!r}"), "model/"))
    return model, meta


def read_meta(path: str | Path) -> dict:
    """The JSON record of a checkpoint, checked by `check_meta`; raises CheckpointError."""
    path = Path(path)
    with _open_zip(path) as zf:
        entries = {_entry_name(info): info for info in zf.infolist()}
        if "meta" not in entries:
            raise CheckpointError(f"{quote_path(path)} is an .npz file but not an ack_numpy checkpoint "
                                  f"(no 'meta' entry)")
        info = entries["meta"]
        if info.file_size > MAX_META_BYTES:
            raise CheckpointError(f"{quote_path(path)}: the 'meta' record is {info.file_size:,} bytes, "
                                  f"more than any checkpoint's ({MAX_META_BYTES:,})")
        _read_header(zf, info, path)  # the size it declares must be the size it has
        text = _read_entry(zf, info, path)
    if text.dtype.kind != "U" or text.shape != ():
        raise CheckpointError(f"{quote_path(path)}: the 'meta' record is not a JSON string")
    try:
        meta = json.loads(str(text))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{quote_path(path)}: the 'meta' record is not valid JSON ({err})") from None
    try:
        check_meta(meta)
    except ValueError as err:
        raise CheckpointError(f"{quote_path(path)}: {err}") from None
    return meta


def read_arrays(path: str | Path, expected: dict | None = None, only: str = "",
                fits: str = "the model") -> dict[str, np.ndarray]:
    """The array entries (names without '.npy') of a checkpoint whose names start with `only`.

    expected: {name: array of the right shape and dtype} for entries that must be there
    exactly (the model's weights, the optimiser's state); an entry under the same prefix
    that it does not list is refused. Without it, any numeric array is accepted as long as
    all of them together stay within MAX_CHECKPOINT_BYTES. Nothing is read before every
    header has passed, and every float array must be finite. `fits` names what the
    entries must fit in messages, e.g. "model 'lenet' with optimizer 'adam'"."""
    path = Path(path)
    with _open_zip(path) as zf:
        headers = {}
        for info in zf.infolist():
            name = _entry_name(info)
            if name == "meta":
                continue
            if not name.startswith(("model/", "optim/")):
                raise CheckpointError(f"{quote_path(path)} holds an entry {name!r} that no ack_numpy checkpoint has")
            if name.startswith(only):
                headers[name] = (info, *_read_header(zf, info, path))
        _check_entries(headers, expected, only, fits, path)
        arrays = {name: _read_entry(zf, info, path) for name, (info, _, _) in headers.items()}
    for name, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise CheckpointError(f"{quote_path(path)}: entry {name!r} holds NaN or infinite values "
                                  f"(saved from a run that diverged, or tampered with)")
    return arrays


def _check_entries(headers: dict, expected: dict | None, prefix: str, fits: str, path: Path) -> None:
    """Names, shapes, dtypes and sizes of the entries, from their headers alone."""
    where = quote_path(path)
    for part, what in (("model/", "weights"), ("optim/", "optimizer state")):
        if expected is None or not part.startswith(prefix):
            continue
        wanted, found = {k for k in expected if k.startswith(part)}, {k for k in headers if k.startswith(part)}
        missing, extra = sorted(wanted - found), sorted(found - wanted)
        if missing:
            names = ", ".join(repr(k[len(part):]) for k in missing[:4]) + (" ..." if len(missing) > 4 else "")
            raise CheckpointError(f"{where} does not fit {fits}: {len(missing)} of the {len(wanted)} {what} "
                                  f"entries it needs are missing: {names}")
        if extra:
            raise CheckpointError(f"{where} does not fit {fits}: it has no {what} entry {extra[0][len(part):]!r}")
    total = 0
    for name, (info, shape, dtype) in headers.items():
        if expected is not None and name in expected:
            want = expected[name]
            if shape != want.shape or dtype != want.dtype:
                raise CheckpointError(f"{where} does not fit {fits}: entry {name!r} is {dtype} with shape "
                                      f"{shape}, expected {want.dtype} with shape {want.shape}")
        elif dtype.kind not in "biuf":
            raise CheckpointError(f"{where}: entry {name!r} has dtype {dtype}, not numbers")
        total += math.prod(shape) * dtype.itemsize
    if total > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{where}: its arrays would take {total:,} bytes, more than any ack_numpy "
                              f"model's checkpoint ({MAX_CHECKPOINT_BYTES:,})")


def _open_zip(path: Path) -> zipfile.ZipFile:
    if path.is_dir():
        raise CheckpointError(f"{quote_path(path)} is a folder; a checkpoint is a file, "
                              f"e.g. {quote_path(path / 'checkpoint.npz')}")
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {quote_path(path)}")
    if not path.is_file():
        raise CheckpointError(f"{quote_path(path)} is not a regular file (a device or a pipe?); "
                              f"a checkpoint is a .npz file")
    try:  # opened first, so that an unreadable file says why rather than "not an .npz"
        with open(path, "rb"):
            pass
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {quote_path(path)}: {err.strerror or err}") from None
    # An .npz is a zip archive. Checking that first gives one clear message for random bytes,
    # a truncated download or a plain .npy file (which np.load would return as an array).
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise CheckpointError(f"{quote_path(path)} is not an ack_numpy checkpoint: not an .npz (zip) file, "
                              f"or truncated (an interrupted copy?) ({err})") from None


def _entry_name(info: zipfile.ZipInfo) -> str:
    return info.filename[: -len(".npy")] if info.filename.endswith(".npy") else info.filename


def _read_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> tuple[tuple, np.dtype]:
    """(shape, dtype) from an entry's .npy header; its declared size must match the zip's."""
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):  # np.save writes these for every numeric array
                raise ValueError(f".npy format version {version}")
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = reader(f)
            header_bytes = f.tell()
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError) as err:
        raise CheckpointError(f"{quote_path(path)} is not a readable ack_numpy checkpoint "
                              f"(entry {_entry_name(info)!r}: {err})") from None
    if dtype.hasobject or info.file_size != header_bytes + math.prod(shape) * dtype.itemsize:
        raise CheckpointError(f"{quote_path(path)}: entry {_entry_name(info)!r} declares {dtype} {shape}, "
                              f"which does not match its size in the file (tampered with?)")
    return shape, dtype


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    try:
        with zf.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError) as err:
        raise CheckpointError(f"{quote_path(path)} is not a readable ack_numpy checkpoint "
                              f"(corrupt or truncated .npz: {err})") from None


def _part(arrays: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


# ----------------------------------------------------------------------------- rules for the record
def check_meta(meta) -> None:
    """The record every checkpoint holds: format version, model name and options."""
    if not isinstance(meta, dict) or "model" not in meta:
        raise ValueError("not an ack_numpy checkpoint (its 'meta' record names no model)")
    version = meta.get("format_version")
    if not (type(version) is int and version in READABLE_VERSIONS):
        raise ValueError(f"has checkpoint format version {version!r}; this ack_numpy "
                         f"reads versions {' and '.join(map(str, READABLE_VERSIONS))} "
                         f"(was it written by another version?)")
    check_model(meta["model"], meta.get("model_options", {}))
    for key in ("epoch", "batch"):
        if key in meta and not is_whole(meta[key]):
            raise ValueError(f"'{key}' must be a whole number >= 0, got {meta[key]!r}")


# ----------------------------------------------------------------------------- rules for a saved training run
RUNNING_FIELDS = ("loss", "correct", "seen", "seconds")  # sums over the batches of the current epoch


def config_record(config: TrainConfig) -> dict:
    """The training settings as a checkpoint's "config" holds them: every TrainConfig field
    but the model and its options, which the record holds once, at its top."""
    return {name: value for name, value in asdict(config).items() if name not in MODEL_FIELDS}


def saved_config(meta: dict, path: Path) -> TrainConfig:
    """The TrainConfig of a checkpoint: the model and its options from the record, every other
    setting present in its "config", none unknown, all valid (the rules of the command line).
    Raises CheckpointError."""
    where = quote_path(path)
    saved = meta.get("config")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{where} holds no training state to resume from (no saved 'config')")
    version_1 = meta["format_version"] == 1  # its config repeats the model and its options
    names = [f.name for f in fields(TrainConfig) if version_1 or f.name not in MODEL_FIELDS]
    unknown, missing = sorted(set(saved) - set(names)), [n for n in names if n not in saved]
    if unknown or missing:
        raise CheckpointError(f"{where} holds no training state to resume from (its saved config "
                              + (f"has an unknown setting {unknown[0]!r})" if unknown else f"lacks {missing[0]!r})"))
    model, options = meta["model"], meta.get("model_options", {})
    if version_1 and (model, options) != (saved["model"], saved["model_options"]):
        raise CheckpointError(f"{where}: its record names model {model!r} but its saved "
                              f"config model {saved['model']!r} (with other options?)")
    settings = {name: value for name, value in saved.items() if name not in MODEL_FIELDS}
    config = TrainConfig(model=model, model_options=options, **settings)
    try:
        config.validate()
    except SettingError as err:
        raise CheckpointError(f"{where}: saved setting {err}") from None
    return config


def check_training_state(meta: dict, path: Path) -> None:
    """Where the checkpoint stopped: whole epochs and batches, one metrics row per finished
    epoch, and running sums a real run could have made (`saved_config` has passed)."""
    where = quote_path(path)
    missing = [key for key in ("epoch", "batch", "running", "metrics") if key not in meta]
    if missing:
        raise CheckpointError(f"{where} holds no training state to resume from (missing or unexpected "
                              f"entry: {missing[0]!r})")
    running, rows, epochs = meta["running"], meta["metrics"], meta["config"]["epochs"]
    if not (isinstance(running, dict) and set(running) == set(RUNNING_FIELDS)):
        raise CheckpointError(f"{where}: 'running' must hold the numbers {', '.join(RUNNING_FIELDS)}")
    for name in ("correct", "seen"):
        if not is_whole(running[name]):
            raise CheckpointError(f"{where}: 'running.{name}' must be a whole number >= 0, got {running[name]!r}")
    for name in ("loss", "seconds"):
        if not (is_number(running[name]) and running[name] >= 0):
            raise CheckpointError(f"{where}: 'running.{name}' must be a number >= 0, got {running[name]!r}")
    if running["correct"] > running["seen"]:
        raise CheckpointError(f"{where}: 'running' counts {running['correct']} correct of {running['seen']} images")
    if meta["epoch"] > epochs:
        raise CheckpointError(f"{where}: 'epoch' is {meta['epoch']}, beyond the run's {epochs}")
    if not (isinstance(rows, list) and len(rows) == meta["epoch"]
            and all(_metrics_row(row, e + 1) for e, row in enumerate(rows))):
        raise CheckpointError(f"{where}: 'metrics' must hold one row of numbers ({', '.join(METRIC_FIELDS)}) for "
                              f"each of the {meta['epoch']} finished epochs")


def _metrics_row(row, epoch: int) -> bool:
    return (isinstance(row, dict) and set(row) == set(METRIC_FIELDS) and row["epoch"] == epoch
            and all(is_number(row[k]) for k in METRIC_FIELDS))


def check_position_in_epoch(config: TrainConfig, epoch: int, batch: int, seen: int, n: int, path: Path,
                            steps: int | None = None) -> None:
    """The saved batch must lie inside an epoch of this data (n images, in batches of the
    run's config.batch_size), with as many images seen as it says, and an optimiser that
    counts its steps (Adam's t) must have taken one per batch so far (all known only once
    the data is loaded)."""
    batch_size = config.batch_size
    n_batches = math.ceil(n / batch_size)
    if batch > n_batches:
        raise CheckpointError(f"{quote_path(path)}: 'batch' is {batch}, beyond the end of an epoch "
                              f"({n_batches} batches of {batch_size} of {n:,} images)")
    if seen != min(batch * batch_size, n):
        raise CheckpointError(f"{quote_path(path)}: 'running.seen' is {seen} images, but {batch} batches "
                              f"of {batch_size} hold {min(batch * batch_size, n)}")
    if steps is not None and steps != epoch * n_batches + batch:
        raise CheckpointError(f"{quote_path(path)}: 'optim/t' counts {steps} steps, but epoch {epoch} and batch "
                              f"{batch} of {n_batches} batches per epoch mean {epoch * n_batches + batch}")
