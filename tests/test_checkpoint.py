"""Checkpoints: round trip, atomic writes (even under kill -9), and clear errors for bad files.

A bad file must give a CheckpointError (a ValueError) that names the file, never a traceback
from deep inside NumPy or zipfile. None of these tests needs MNIST.
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from ack_numpy.checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint, load_model, save_checkpoint
from ack_numpy.models import build_model
from ack_numpy.train import CHECKPOINT_NAME, TrainConfig, make_optimizer, resume

PROJECT_ROOT = Path(__file__).resolve().parents[1]

posix_signals = pytest.mark.skipif(os.name != "posix", reason="sends POSIX signals (SIGINT, SIGKILL) to processes")


def save_model(path, name="adaptive-lenet", **meta):
    """A checkpoint of a fresh model, as `train` writes it, with a real optimiser state."""
    model = build_model(name, seed=0)
    optimizer = make_optimizer(TrainConfig(model=name), model)
    config = TrainConfig(model=name, out=str(Path(path).parent))
    record = {"model": name, "model_options": {}, "config": asdict(config), "epoch": 1, "batch": 0,
              "running": {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}, "metrics": [], **meta}
    return save_checkpoint(path, model.state_dict(), optimizer.state_dict(), record)


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def meta(**record) -> np.ndarray:
    return np.array(json.dumps(record))


# ----------------------------------------------------------------------------- round trip
def test_round_trip(tmp_path):
    path = save_model(tmp_path / CHECKPOINT_NAME, epoch=3)
    model_state, optim_state, record = load_checkpoint(path)
    expected = build_model("adaptive-lenet", seed=0).state_dict()
    assert model_state.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(model_state[name], expected[name])
        assert model_state[name].dtype == np.float32
    assert int(optim_state["t"]) == 0 and "m.0" in optim_state
    assert record["format_version"] == FORMAT_VERSION and record["epoch"] == 3
    with np.load(path, allow_pickle=False) as data:  # plain arrays: readable without pickles
        assert "meta" in data.files
    model, record = load_model(path)
    assert model.num_parameters() == 6_514


def test_save_replaces_the_file_in_one_step(tmp_path, monkeypatch):
    path = save_model(tmp_path / CHECKPOINT_NAME)
    before = path.read_bytes()

    def crash_half_way(file, **arrays):
        file.write(b"PK\x03\x04 half a zip file")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", crash_half_way)
    with pytest.raises(OSError, match="No space left"):
        save_model(path, epoch=2)
    assert path.read_bytes() == before  # the old checkpoint is untouched...
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]  # ...and no temp file is left


WRITER = """
import sys
import numpy as np
from ack_numpy.checkpoint import save_checkpoint

path, step = sys.argv[1], 0
while True:
    step += 1
    weights = np.full(2_000_000, step, dtype=np.float32)  # 8 MB, so that kills land mid-write
    save_checkpoint(path, {"w": weights}, {"t": np.array(step)}, {"model": "test", "step": step})
    print(step, flush=True)
"""


@posix_signals
def test_kill_9_while_writing_leaves_the_previous_checkpoint(tmp_path):
    """Kill a process that rewrites its checkpoint in a loop at random moments: every time, the file
    is a complete checkpoint whose parts agree, and leftover temp files are never read."""
    path = tmp_path / CHECKPOINT_NAME
    rng = np.random.default_rng(0)
    for delay in rng.uniform(0.0, 0.3, size=5):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=PROJECT_ROOT,
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() != ""  # at least one checkpoint is complete
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        writer.stdout.close()
        model_state, optim_state, record = load_checkpoint(path)
        step = record["step"]
        assert int(optim_state["t"]) == step
        assert model_state["w"].shape == (2_000_000,)
        assert model_state["w"].min() == model_state["w"].max() == step
        others = [p.name for p in tmp_path.iterdir() if p.name != CHECKPOINT_NAME]
        assert others in ([], [f".{CHECKPOINT_NAME}.{writer.pid}.tmp"]), others  # at most the killed writer's

    # The next save removes what the killed writers left.
    save_checkpoint(path, {"w": np.zeros(3, dtype=np.float32)}, {"t": np.array(0)}, {"model": "test", "step": 0})
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]
    assert load_checkpoint(path)[2]["step"] == 0


@posix_signals
def test_a_save_leaves_the_temp_file_of_a_running_writer_alone(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    running = tmp_path / f".{CHECKPOINT_NAME}.{os.getppid()}.tmp"  # our parent process is alive
    dead = tmp_path / f".{CHECKPOINT_NAME}.999999999.tmp"          # no such process
    impossible = tmp_path / f".{CHECKPOINT_NAME}.{10**30}.tmp"      # not even a valid pid
    for tmp in (running, dead, impossible):
        tmp.write_bytes(b"half a checkpoint")
    save_checkpoint(path, {"w": np.zeros(3, dtype=np.float32)}, {"t": np.array(0)}, {"model": "test"})
    assert running.exists() and not dead.exists() and not impossible.exists()


def test_a_leftover_temp_file_is_not_taken_for_a_checkpoint(tmp_path):
    (tmp_path / f".{CHECKPOINT_NAME}.12345.tmp").write_bytes(b"PK\x03\x04 cut short by kill -9")
    with pytest.raises(CheckpointError, match=f"has no {CHECKPOINT_NAME}"):
        resume(tmp_path)


# ----------------------------------------------------------------------------- bad files
@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory) -> bytes:
    return save_model(tmp_path_factory.mktemp("good") / CHECKPOINT_NAME).read_bytes()


def bad_file(kind: str, good: bytes) -> bytes:
    npy = io.BytesIO()
    np.save(npy, np.zeros(3))
    return {
        "truncated to half": good[: len(good) // 2],
        "truncated to 100 bytes": good[:100],
        "cut before the end record": good[:-10],
        "empty": b"",
        "random bytes": np.random.default_rng(0).bytes(5000),
        "text": b"this is not a checkpoint\n",
        "a .npy file": npy.getvalue(),
        "an .npz without meta": npz_bytes(weights=np.zeros(3)),
        "meta that is not JSON": npz_bytes(meta=np.array("{not json")),
        "meta that is not a record": npz_bytes(meta=np.array("[1, 2, 3]")),
        "meta without a model": npz_bytes(meta=meta(format_version=FORMAT_VERSION)),
        "another format version": npz_bytes(meta=meta(format_version=FORMAT_VERSION + 1, model="lenet")),
        "pickled meta": npz_bytes(meta=np.array([{"model": "lenet"}], dtype=object)),
    }[kind]


BAD_KINDS = ["truncated to half", "truncated to 100 bytes", "cut before the end record", "empty", "random bytes",
             "text", "a .npy file", "an .npz without meta", "meta that is not JSON", "meta that is not a record",
             "meta without a model", "another format version", "pickled meta"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_files_give_a_clear_error_naming_the_file(kind, good_bytes, tmp_path):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(bad_file(kind, good_bytes))
    for load in (load_checkpoint, load_model):
        with pytest.raises(CheckpointError) as err:
            load(path)
        assert isinstance(err.value, ValueError)
        assert str(path) in str(err.value)
        assert "\n" not in str(err.value)


def test_corrupt_compressed_data_gives_a_clear_error(tmp_path):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, meta=meta(format_version=FORMAT_VERSION, model="lenet"),
                        weights=np.arange(100_000))
    data = bytearray(buffer.getvalue())
    data[400:420] = b"x" * 20  # inside the compressed weights: the zip directory is still fine
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(bytes(data))
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_format_version_is_reported(tmp_path):
    path = tmp_path / "future.npz"
    path.write_bytes(npz_bytes(meta=meta(format_version=99, model="lenet")))
    with pytest.raises(CheckpointError, match=f"format version 99; this ack_numpy reads version {FORMAT_VERSION}"):
        load_checkpoint(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match=f"checkpoint not found: {tmp_path / 'nope.npz'}"):
        load_model(tmp_path / "nope.npz")
    with pytest.raises(CheckpointError, match=f"{tmp_path} is a folder; a checkpoint is a file"):
        load_checkpoint(tmp_path)


def test_weights_that_do_not_fit_the_model(tmp_path):
    lenet_weights = build_model("lenet", seed=0).state_dict()
    path = save_checkpoint(tmp_path / "mislabelled.npz", lenet_weights, {}, {"model": "adaptive-lenet"})
    with pytest.raises(CheckpointError, match=f"{path}: weights do not fit model 'adaptive-lenet'"):
        load_model(path)
    shapes = build_model("adaptive-lenet", seed=0).state_dict()
    shapes["features.0.Q"] = np.zeros((8, 3, 3), dtype=np.float32)
    path = save_checkpoint(tmp_path / "wrong_shape.npz", shapes, {}, {"model": "adaptive-lenet"})
    with pytest.raises(CheckpointError, match="features.0.Q.*shape"):
        load_model(path)
    path = save_checkpoint(tmp_path / "unknown_model.npz", shapes, {}, {"model": "resnet"})
    with pytest.raises(CheckpointError, match="unknown model 'resnet'"):
        load_model(path)


# ----------------------------------------------------------------------------- resuming from bad files
def test_resume_from_a_checkpoint_whose_weights_do_not_fit(tmp_path):
    save_model(tmp_path / CHECKPOINT_NAME, name="adaptive-lenet",
               config=asdict(TrainConfig(model="lenet", out=str(tmp_path))))
    with pytest.raises(CheckpointError, match=f"{tmp_path / CHECKPOINT_NAME} does not fit model 'lenet'"):
        resume(tmp_path)


def test_resume_from_a_checkpoint_whose_optimizer_state_does_not_fit(tmp_path):
    save_model(tmp_path / CHECKPOINT_NAME,
               config=asdict(TrainConfig(model="adaptive-lenet", optimizer="sgd", out=str(tmp_path))))
    with pytest.raises(CheckpointError, match="does not fit model 'adaptive-lenet' with optimizer 'sgd'"):
        resume(tmp_path)


@pytest.mark.parametrize("record", [{"config": None}, {"config": {"no_such_setting": 1}}, {"epoch": None}])
def test_resume_from_a_checkpoint_without_training_state(record, tmp_path):
    path = save_model(tmp_path / CHECKPOINT_NAME)
    model_state, optim_state, saved = load_checkpoint(path)
    saved.update(record)
    saved = {k: v for k, v in saved.items() if v is not None}
    save_checkpoint(path, model_state, optim_state, saved)
    with pytest.raises(CheckpointError, match=f"{path} holds no training state to resume from"):
        resume(tmp_path)


def test_resume_accepts_the_checkpoint_file_itself(tmp_path):
    save_model(tmp_path / CHECKPOINT_NAME, epoch=1)  # a finished 1-epoch run: nothing left to do
    messages = []
    assert resume(tmp_path / CHECKPOINT_NAME, log=messages.append) == []
    assert messages == [f"nothing to do: {tmp_path} has finished its run (1 of 1 epochs)"]


@pytest.mark.parametrize("bad", [{"epoch": "0"}, {"batch": -1}, {"running": [1, 2]}, {"metrics": "none"}])
def test_resume_refuses_a_position_of_the_wrong_types(tmp_path, bad):
    from ack_numpy.models import build_model
    from ack_numpy.optim import Adam

    model = build_model("adaptive-lenet")
    config = TrainConfig(model="adaptive-lenet", out=str(tmp_path))
    meta = {"model": "adaptive-lenet", "model_options": {}, "config": asdict(config), "epoch": 0,
            "batch": 0, "running": {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}, "metrics": []}
    meta.update(bad)
    save_checkpoint(tmp_path / CHECKPOINT_NAME, model.state_dict(), Adam(model.parameters()).state_dict(), meta)
    with pytest.raises(CheckpointError, match="no training state to resume from"):
        resume(tmp_path)
