"""Checkpoints: one .npz file with the weights, the optimiser state and a JSON record.

Layout of the file (plain NumPy arrays, no pickles, so `np.load` can read it anywhere):

    model/<name>      every parameter, e.g. model/features.0.Q
    optim/<name>      the optimiser's state, e.g. optim/m.0, optim/t
    meta              a JSON string: format version, model name and options, epoch,
                      position inside the epoch, training config and metrics so far

Writes are atomic: the file is written under a temporary name in the same folder and
renamed over the old one, so a crash (or kill -9) mid-write leaves the previous
checkpoint untouched and a reader never sees a half-written file.
"""
from __future__ import annotations

import contextlib
import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that is missing, corrupt, truncated or not one of ours."""


def save_checkpoint(path: str | Path, model_state: dict, optim_state: dict, meta: dict) -> Path:
    """Write the checkpoint atomically: into a temp file beside it, then os.replace.

    The temp file is named after this process (.checkpoint.npz.<pid>.tmp), so that two
    processes saving into one folder by mistake never write into the same file; the ones
    left behind by writers killed mid-write (kill -9) are removed here."""
    path = Path(path)
    arrays = {f"model/{k}": v for k, v in model_state.items()}
    arrays.update({f"optim/{k}": v for k, v in optim_state.items()})
    arrays["meta"] = np.array(json.dumps({"format_version": FORMAT_VERSION, **meta}))
    _remove_temp_files_of_dead_writers(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _remove_temp_files_of_dead_writers(path: Path) -> None:
    """Delete .<name>.<pid>.tmp files beside `path` whose process no longer runs (POSIX only:
    elsewhere they stay, and are harmless: nothing ever reads a temp file)."""
    if os.name != "posix":
        return
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 : -len(".tmp")]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)  # signal 0 only asks whether the process exists
        except (ProcessLookupError, OverflowError):  # no such process (or no such pid at all)
            with contextlib.suppress(OSError):
                tmp.unlink()
        except OSError:
            pass  # it exists but belongs to someone else: leave its file alone


def load_checkpoint(path: str | Path) -> tuple[dict, dict, dict]:
    """Read (model_state, optim_state, meta); raise CheckpointError naming the file on any problem."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; a checkpoint is a file, e.g. {path / 'checkpoint.npz'}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    # An .npz is a zip archive. Checking that first gives one clear message for random bytes,
    # a truncated download or a plain .npy file (which np.load would return as an array).
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not an ack_numpy checkpoint: not an .npz (zip) file, "
                              f"or truncated (an interrupted copy?)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, KeyError) as err:
        raise CheckpointError(f"{path} is not a readable ack_numpy checkpoint "
                              f"(corrupt or truncated .npz: {err})") from None
    if "meta" not in arrays:
        raise CheckpointError(f"{path} is an .npz file but not an ack_numpy checkpoint (no 'meta' entry)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: the 'meta' record is not valid JSON ({err})") from None
    if not isinstance(meta, dict) or "model" not in meta:
        raise CheckpointError(f"{path} is not an ack_numpy checkpoint (its 'meta' record names no model)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {meta.get('format_version')!r}; this "
                              f"ack_numpy reads version {FORMAT_VERSION} (was it written by another version?)")
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optim_state = {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")}
    return model_state, optim_state, meta


def load_model(path: str | Path):
    """Rebuild the model a checkpoint was saved from and load its weights -> (model, meta)."""
    from .models import build_model  # here, not at the top: models import nn, which is heavier

    model_state, _, meta = load_checkpoint(path)
    try:
        model = build_model(meta["model"], seed=0, **meta.get("model_options", {}))
        model.load_state_dict(model_state)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: weights do not fit model {meta['model']!r}: {err}") from None
    return model, meta
