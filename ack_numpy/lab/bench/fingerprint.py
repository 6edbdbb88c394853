"""Fingerprint of one-thread float32 training: SHA-256 of every parameter after a few steps.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m ack_numpy.lab.bench.fingerprint
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 PYTHONPATH=<checkout> python ack_numpy/lab/bench/fingerprint.py

prints one JSON object: for each model, the hash of its parameters after STEPS Adam steps
(batch BATCH, seed 0, synthetic images), then the hash of the logits of a no-gradient
evaluation batch. It uses only calls that exist in every version of the engine
(build_model, optim.Adam, train.train_step) and imports them by absolute name, so the
same file run as a script with PYTHONPATH set to another checkout tells whether the two
checkouts' one-thread arithmetic is bit-identical. Hashes depend on the BLAS build, so
the output also names numpy's version, the BLAS and the CPU. tests/test_threads.py runs
it in fresh processes on the machine it runs on, and also against the record
tests/one-thread-fingerprint.json on the build that record names.
"""
import hashlib
import json
import os

import numpy as np

from ack_numpy import optim
from ack_numpy.autograd import Tensor, no_grad
from ack_numpy.models import build_model
from ack_numpy.train import train_step

MODELS, STEPS, BATCH, EVAL_BATCH = ("lenet", "adaptive-lenet", "plain-small"), 3, 64, 200


def blas_build() -> str:
    """numpy's version, the BLAS it was built with, the CPU and its vector instructions (hashes
    are only comparable within one build: OpenBLAS picks its kernels by CPU, and two CPUs of
    one model name may differ in AVX-512)."""
    try:
        config = np.show_config(mode="dicts")
    except TypeError:  # numpy < 1.26 only prints its configuration; its version names the build
        config = {}
    blas = config.get("Build Dependencies", {}).get("blas", {})
    cpu = "?"
    if os.path.exists("/proc/cpuinfo"):  # OpenBLAS picks its kernels by CPU (DYNAMIC_ARCH)
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    simd = [name for name in ("AVX2", "FMA3", "AVX512F", "AVX512_SKX", "AVX512_ICL", "AVX512_SPR") if features.get(name)]
    return f"numpy {np.__version__}, {blas.get('name', '?')} {blas.get('version', '?')}, CPU {cpu} ({' '.join(simd)})"


def fingerprint(model_name: str) -> dict:
    rng = np.random.default_rng(0)
    model = build_model(model_name, seed=0)
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(STEPS):
        x = rng.random((BATCH, 1, 28, 28), dtype=np.float32)
        train_step(model, optimizer, x, rng.integers(0, 10, size=BATCH))
    parameters = hashlib.sha256(b"".join(p.data.tobytes() for p in model.parameters())).hexdigest()
    with no_grad():
        logits = model(Tensor(rng.random((EVAL_BATCH, 1, 28, 28), dtype=np.float32))).data
    return {"parameters": parameters, "eval_logits": hashlib.sha256(logits.tobytes()).hexdigest(),
            "dtype": str(logits.dtype)}


def main() -> dict:
    threads = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    return {"blas_build": blas_build(), "threads": threads, "steps": STEPS, "batch": BATCH,
            "models": {name: fingerprint(name) for name in MODELS}}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
