"""Checkpoints: round trip, atomic writes (even under kill -9), and clear errors for bad files.

A bad file must give a CheckpointError (a ValueError) that names the file, never a traceback
from deep inside NumPy or zipfile. None of these tests needs MNIST.
"""
from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from ack_numpy.checkpoint import (FORMAT_VERSION, CheckpointError, config_record, load_checkpoint, load_model,
                                  save_checkpoint)
from ack_numpy.models import build_model
from ack_numpy.train import CHECKPOINT_NAME, TrainConfig, make_optimizer, resume

PROJECT_ROOT = Path(__file__).resolve().parents[1]

posix_signals = pytest.mark.skipif(os.name != "posix", reason="sends POSIX signals (SIGINT, SIGKILL) to processes")


def save_model(path, name="adaptive-lenet", **meta):
    """A checkpoint of a fresh model, as `train` writes it, with a real optimiser state."""
    model = build_model(name, seed=0)
    optimizer = make_optimizer(TrainConfig(model=name), model)
    config = TrainConfig(model=name, out=str(Path(path).parent))
    record = {"model": name, "model_options": {}, "config": config_record(config), "epoch": 0, "batch": 0,
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
    save_checkpoint(path, {"w": weights}, {"t": np.array(step)}, {"model": "lenet", "step": step})
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
        assert len(others) <= 1 and all(re.fullmatch(rf"\.{CHECKPOINT_NAME}\.{writer.pid}\.\w+\.tmp", name)
                                        for name in others), others  # at most the killed writer's

    # The next save removes what the killed writers left.
    save_checkpoint(path, {"w": np.zeros(3, dtype=np.float32)}, {"t": np.array(0)}, {"model": "lenet", "step": 0})
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
    save_checkpoint(path, {"w": np.zeros(3, dtype=np.float32)}, {"t": np.array(0)}, {"model": "lenet"})
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
                        **{"model/weights": np.arange(100_000)})
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
    with pytest.raises(CheckpointError, match=f"format version 99; this ack_numpy reads versions 1 and {FORMAT_VERSION}"):
        load_checkpoint(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match=f"checkpoint not found: {tmp_path / 'nope.npz'}"):
        load_model(tmp_path / "nope.npz")
    with pytest.raises(CheckpointError, match=f"{tmp_path} is a folder; a checkpoint is a file"):
        load_checkpoint(tmp_path)


def test_weights_that_do_not_fit_the_model(tmp_path):
    lenet_weights = build_model("lenet", seed=0).state_dict()
    path = save_checkpoint(tmp_path / "mislabelled.npz", lenet_weights, {}, {"model": "adaptive-lenet"})
    with pytest.raises(CheckpointError, match=f"{path} does not fit model 'adaptive-lenet': 3 of the 7 weights "
                                              f"entries it needs are missing: 'features.0.Q', 'features.0.b'"):
        load_model(path)
    shapes = build_model("adaptive-lenet", seed=0).state_dict()
    shapes["features.0.Q"] = np.zeros((8, 3, 3), dtype=np.float32)
    path = save_checkpoint(tmp_path / "wrong_shape.npz", shapes, {}, {"model": "adaptive-lenet"})
    with pytest.raises(CheckpointError, match=r"entry 'model/features.0.Q' is float32 with shape \(8, 3, 3\), "
                                              r"expected float32 with shape \(8, 9, 9\)"):
        load_model(path)
    path = save_checkpoint(tmp_path / "unknown_model.npz", shapes, {}, {"model": "resnet"})
    with pytest.raises(CheckpointError, match="unknown model 'resnet'"):
        load_model(path)


# ----------------------------------------------------------------------------- resuming from bad files
def test_resume_from_a_checkpoint_whose_weights_do_not_fit(tmp_path):
    save_model(tmp_path / CHECKPOINT_NAME, name="adaptive-lenet", model="lenet",
               config=config_record(TrainConfig(model="lenet", out=str(tmp_path))))
    with pytest.raises(CheckpointError, match=f"{tmp_path / CHECKPOINT_NAME} does not fit model 'lenet' with "
                                              f"optimizer 'adam': 4 of the 8 weights entries it needs are missing: 'classifier.3.bias'"):
        resume(tmp_path)


def test_resume_from_a_version_1_checkpoint_whose_record_and_config_disagree(tmp_path):
    # Version 1 stored the model twice, in the record and in its config: the copies must agree.
    save_model(tmp_path / CHECKPOINT_NAME, name="adaptive-lenet", format_version=1,
               config=asdict(TrainConfig(model="lenet", out=str(tmp_path))))
    with pytest.raises(CheckpointError, match="its record names model 'adaptive-lenet' but its saved config model 'lenet'"):
        resume(tmp_path)


def test_resume_from_a_checkpoint_whose_optimizer_state_does_not_fit(tmp_path):
    save_model(tmp_path / CHECKPOINT_NAME,
               config=config_record(TrainConfig(model="adaptive-lenet", optimizer="sgd", out=str(tmp_path))))
    with pytest.raises(CheckpointError, match="does not fit model 'adaptive-lenet' with optimizer 'sgd'"):
        resume(tmp_path)


def test_a_version_1_checkpoint_still_loads_and_resumes(tmp_path):
    """The layout before each fact was stored once (the model repeated in the config), as the
    committed data/reproduction/adaptive-lenet-median.npz has it."""
    config = TrainConfig(model="adaptive-lenet", out=str(tmp_path), epochs=1)
    path = save_model(tmp_path / CHECKPOINT_NAME, format_version=1, config=asdict(config), epoch=1,
                      metrics=[dict(ROW, epoch=1)])
    assert load_model(path)[1]["format_version"] == 1
    messages = []
    resume(tmp_path, log=messages.append)  # finished: it only checks the record and rewrites the run files
    assert messages == [f"nothing to do: {tmp_path} has finished its run (1 of 1 epochs)"]
    assert json.loads((tmp_path / "config.json").read_text()) == asdict(config)


def test_a_checkpoint_stores_the_model_once(tmp_path):
    path = save_model(tmp_path / CHECKPOINT_NAME)
    record = load_checkpoint(path)[2]
    assert record["format_version"] == 2 and record["model"] == "adaptive-lenet"
    assert "model" not in record["config"] and "model_options" not in record["config"]


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
    save_model(tmp_path / CHECKPOINT_NAME, epoch=1, metrics=[ROW])  # a finished 1-epoch run: nothing left to do
    messages = []
    assert resume(tmp_path / CHECKPOINT_NAME, log=messages.append) == [ROW]
    assert messages == [f"nothing to do: {tmp_path} has finished its run (1 of 1 epochs)"]


ROW = {"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.4, "test_acc": 0.85, "seconds": 3.0, "lr": 0.0}


def tampered(path: Path, change) -> Path:
    """The checkpoint at `path` with its JSON record changed by `change(record)`."""
    model_state, optim_state, record = load_checkpoint(path)
    change(record)
    return save_checkpoint(path, model_state, optim_state, record)


def setting(name, value):
    return lambda record: record["config"].__setitem__(name, value)


def entry(name, value):
    return lambda record: record.__setitem__(name, value)


def options(value):
    return entry("model_options", value)


# Each field a checkpoint's record holds, given a wrong type, an absurd range or a value that
# disagrees with the rest: one CheckpointError naming the field, before anything is built or read.
TAMPERED = [
    (setting("lr", None), "saved setting lr must be a positive number, got None"),
    (setting("epochs", "2"), "saved setting epochs must be a whole number >= 1 (at most 100,000), got '2'"),
    (setting("batch_size", 2.5), "saved setting batch_size must be a whole number >= 1, got 2.5"),
    (setting("max_shift", 10**7), "saved setting max_shift must be a whole number from 0 to 14"),
    (setting("momentum", float("nan")), "saved setting momentum must be a number in [0, 1), got nan"),
    (setting("optimizer", "lbfgs"), "saved setting optimizer must be 'adam' or 'sgd', got 'lbfgs'"),
    (setting("seed", -5), "saved setting seed must be a whole number >= 0, got -5"),
    (setting("limit_train", 0), "saved setting limit_train must be a whole number >= 1, got 0"),
    (setting("out", 7), "saved setting out must be a folder name, got 7"),
    (lambda r: r["config"].pop("lr"), "its saved config lacks 'lr'"),
    (setting("no_such_setting", 1), "its saved config has an unknown setting 'no_such_setting'"),
    (entry("config", [1, 2]), "holds no training state to resume from (no saved 'config')"),
    (options({"channels": [10**9, 16]}), "model option 'channels' must be two whole numbers from 1 to 512"),
    (options({"kernel_sizes": [3, "5"]}), "model option 'kernel_sizes' must be two whole numbers >= 1"),
    (options({"hidden": 10**6}), "model option 'hidden' must be a whole number from 0 to 4096"),
    (options({"hidden": 8}), "does not fit model 'adaptive-lenet' with optimizer 'adam': 2 of the 9 weights"),
    (setting("model", "lenet"), "its saved config has an unknown setting 'model'"),  # stored once, at the top
    (entry("model", "lenet"), "does not fit model 'lenet' with optimizer 'adam'"),
    (entry("model", ["lenet"]), "unknown model ['lenet']"),
    (entry("epoch", "0"), "'epoch' must be a whole number >= 0, got '0'"),
    (entry("epoch", 5), "'epoch' is 5, beyond the run's 1"),
    (entry("batch", -1), "'batch' must be a whole number >= 0, got -1"),
    (entry("batch", 1.5), "'batch' must be a whole number >= 0, got 1.5"),
    (entry("running", [1, 2]), "'running' must hold the numbers loss, correct, seen, seconds"),
    (entry("running", {"loss": 0.0, "correct": 3, "seen": 2, "seconds": 0.0}), "'running' counts 3 correct of 2 images"),
    (entry("running", {"loss": float("nan"), "correct": 0, "seen": 0, "seconds": 0.0}),
     "'running.loss' must be a number >= 0, got nan"),
    (entry("running", {"loss": 0.0, "correct": -1, "seen": 0, "seconds": 0.0}),
     "'running.correct' must be a whole number >= 0, got -1"),
    (entry("metrics", "none"), "'metrics' must hold one row of numbers"),
    (entry("metrics", [ROW]), "'metrics' must hold one row of numbers (epoch, train_loss"),  # a row for epoch 0
    (entry("format_version", "1"), "has checkpoint format version '1'"),
    (lambda r: r.pop("running"), "holds no training state to resume from (missing or unexpected entry: 'running')"),
]


@pytest.mark.parametrize("change, message", TAMPERED, ids=[m[:40] for _, m in TAMPERED])
def test_resume_checks_every_field_of_the_record(change, message, tmp_path):
    path = tampered(save_model(tmp_path / CHECKPOINT_NAME), change)
    with pytest.raises(CheckpointError) as err:
        resume(tmp_path, log=lambda m: None)
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]  # nothing written beside it


@pytest.mark.mnist
@pytest.mark.parametrize("position, message", [
    ({"batch": 10**6, "running": {"loss": 1.0, "correct": 0, "seen": 64, "seconds": 0.0}},
     "'batch' is 1000000, beyond the end of an epoch (2 batches of 32 of 64 images)"),
    ({"batch": 2, "running": {"loss": 1.0, "correct": 0, "seen": 0, "seconds": 0.0}},
     "'running.seen' is 0 images, but 2 batches of 32 hold 64"),
    ({"batch": 1, "running": {"loss": 1.0, "correct": 0, "seen": 32, "seconds": 0.0}},  # Adam's t is still 0
     "'optim/t' counts 0 steps, but epoch 0 and batch 1 of 2 batches per epoch mean 1"),
])
def test_resume_checks_the_position_against_the_data(position, message, mnist_path, tmp_path):
    save_model(tmp_path / CHECKPOINT_NAME, config=config_record(TrainConfig(
        model="adaptive-lenet", out=str(tmp_path), batch_size=32, limit_train=64, limit_test=10,
        data_dir=str(mnist_path))), **position)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        resume(tmp_path, log=lambda m: None)


# ----------------------------------------------------------------------------- arrays
def replace_entry(path: Path, name: str, value: np.ndarray | None) -> Path:
    model_state, optim_state, record = load_checkpoint(path)
    part, key = name.split("/", 1)
    state = model_state if part == "model" else optim_state
    if value is None:
        del state[key]
    else:
        state[key] = value
    return save_checkpoint(path, model_state, optim_state, record)


@pytest.mark.parametrize("name", ["model/features.0.Q", "optim/m.0", "optim/v.3"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_weights_or_optimizer_state_that_are_not_finite_are_refused(name, bad, tmp_path):
    path = save_model(tmp_path / CHECKPOINT_NAME)
    value = load_checkpoint(path)[0 if name.startswith("model") else 1][name.split("/", 1)[1]].copy()
    value.flat[7] = bad
    replace_entry(path, name, value)
    message = f"{path}: entry '{name}' holds NaN or infinite values"
    with pytest.raises(CheckpointError, match=re.escape(message)):
        resume(tmp_path, log=lambda m: None)
    if name.startswith("model"):  # evaluate and visualize load the weights only
        with pytest.raises(CheckpointError, match=re.escape(message)):
            load_model(path)
    else:
        load_model(path)


def test_a_missing_optimizer_entry_is_named(tmp_path):
    path = replace_entry(save_model(tmp_path / CHECKPOINT_NAME), "optim/t", None)
    with pytest.raises(CheckpointError, match=re.escape(
            f"{path} does not fit model 'adaptive-lenet' with optimizer 'adam': 1 of the 15 optimizer state "
            f"entries it needs are missing: 't'")):
        resume(tmp_path, log=lambda m: None)


def test_optimizer_state_of_the_wrong_dtype_or_an_extra_entry_is_refused(tmp_path):
    replace_entry(save_model(tmp_path / CHECKPOINT_NAME), "optim/t", np.array(3.5))
    with pytest.raises(CheckpointError, match="entry 'optim/t' is float64 with shape \\(\\), expected int64"):
        resume(tmp_path, log=lambda m: None)
    replace_entry(save_model(tmp_path / CHECKPOINT_NAME), "optim/extra", np.zeros(3))
    with pytest.raises(CheckpointError, match="it has no optimizer state entry 'extra'"):
        resume(tmp_path, log=lambda m: None)


def test_an_optimizer_value_no_run_saves_names_the_checkpoint(tmp_path):
    path = replace_entry(save_model(tmp_path / CHECKPOINT_NAME), "optim/t", np.array(-4))
    with pytest.raises(CheckpointError, match=re.escape(
            f"{path}: optimizer state 't' (Adam's step count) must be a non-negative integer, got int64 -4 "
            f"(tampered with?)")):
        resume(tmp_path, log=lambda m: None)


def test_an_entry_that_is_not_ours_is_refused_by_name(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(npz_bytes(meta=meta(format_version=FORMAT_VERSION, model="lenet"), junk=np.zeros(3)))
    with pytest.raises(CheckpointError, match="holds an entry 'junk' that no ack_numpy checkpoint has"):
        load_checkpoint(path)


# ----------------------------------------------------------------------------- bounded memory
MEMORY_LIMIT = 1 << 30  # 1 GiB of address space: ample for evaluate, far below what the bombs ask
LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
if sys.argv[1] == "allocate":  # the limit is real: 1.5 GiB cannot be had under it
    import numpy as np
    try:
        np.ones(3 << 29, dtype=np.uint8)
    except MemoryError:
        sys.exit(7)
    sys.exit(0)
from ack_numpy.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_limited(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    return subprocess.run([sys.executable, "-c", LIMITED.format(limit=MEMORY_LIMIT), *map(str, args)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)


def with_entry(good: Path, path: Path, name: str, header_shape: tuple, payload_bytes: int,
               declared_shape_matches: bool = True) -> Path:
    """A copy of the checkpoint `good` with one more (or a replaced) entry `name`: an .npy header
    for float32 `header_shape`, then `payload_bytes` zero bytes, deflated as it is written."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        for info in src.infolist():
            if info.filename != f"{name}.npy":
                dst.writestr(info.filename, src.read(info))
        header = io.BytesIO()
        np.lib.format.write_array_header_2_0(header, {"descr": "<f4", "fortran_order": False, "shape": header_shape})
        with dst.open(f"{name}.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            chunk = bytes(1 << 24)
            for start in range(0, payload_bytes, len(chunk)):
                f.write(chunk[: min(len(chunk), payload_bytes - start)])
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    """Small files that would make a trusting reader allocate 1.5 GiB or more."""
    folder = tmp_path_factory.mktemp("bombs")
    good = save_model(folder / "good.npz", config=config_record(TrainConfig(model="adaptive-lenet", out=str(folder))))
    huge = 3 << 29  # 1.5 GiB
    return {
        # the .npy header declares 10^10 floats; the payload is 40 bytes
        "huge header": with_entry(good, folder / "huge-header.npz", "model/features.0.Q", (10**10,), 40),
        # a consistent entry of 1.5 GiB of zeros, deflated to a few MB, in place of a weight
        "deflated weight": with_entry(good, folder / "deflated-weight.npz", "model/features.0.Q", (huge // 4,), huge),
        # the same as an extra optimiser entry
        "deflated extra entry": with_entry(good, folder / "deflated-extra.npz", "optim/extra", (huge // 4,), huge),
    }


def test_the_memory_limit_is_real():
    assert run_limited("allocate").returncode == 7


@posix_signals
@pytest.mark.parametrize("kind", ["huge header", "deflated weight", "deflated extra entry"])
@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_a_checkpoint_that_claims_gigabytes_is_refused_before_its_payload_is_read(kind, command, bombs, tmp_path):
    bomb = bombs[kind]
    assert bomb.stat().st_size < 20 << 20  # a small file...
    if command == "evaluate":
        result = run_limited("evaluate", "--checkpoint", bomb)
    else:
        run = tmp_path / "run"
        run.mkdir()
        (run / CHECKPOINT_NAME).write_bytes(bomb.read_bytes())
        result = run_limited("train", "--resume", run)
    assert "MemoryError" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    if command == "evaluate" and kind == "deflated extra entry":
        # evaluate reads the weights only, and never touches the optimiser's entries
        assert "MNIST" in result.stderr or result.returncode == 0, result.stderr
        return
    assert result.returncode == 1, result.stderr
    line, = result.stderr.strip().splitlines()
    expected = {"huge header": "declares float32 (10000000000,), which does not match its size in the file",
                "deflated weight": "entry 'model/features.0.Q' is float32 with shape (402653184,), expected float32",
                "deflated extra entry": "it has no optimizer state entry 'extra'"}[kind]
    assert expected in line and str(bomb.name if command == "evaluate" else CHECKPOINT_NAME) in line


def test_load_checkpoint_without_a_model_still_bounds_the_size(bombs):
    with pytest.raises(CheckpointError, match=r"its arrays would take 1,610,\d{3},\d{3} bytes, more than any"):
        load_checkpoint(bombs["deflated extra entry"])


@pytest.mark.mnist
def test_a_genuine_checkpoint_evaluates_under_the_same_limit(mnist_path, tmp_path):
    path = save_model(tmp_path / CHECKPOINT_NAME)
    result = run_limited("evaluate", "--checkpoint", path, "--data-dir", mnist_path, "--limit-test", "500")
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
