"""Files that come with the package (setup.cfg's package_data installs them).

TRAINED_ADAPTIVE_LENET: adaptive-lenet trained 10 epochs with the reproduction's recipe,
the median seed of `python -m ack_numpy reproduce --seeds 10 --lenet-seeds 3 --epochs 10
--jobs 2 --out data/reproduction` (a copy of that folder's adaptive-lenet-median.npz,
seed 0, 99.17% test accuracy: data/reproduction/results.md). `explore`, the tutorials and
the tests read it; no command writes it (reproduce writes its own copy into its --out).
"""
from pathlib import Path

TRAINED_ADAPTIVE_LENET = Path(__file__).resolve().parent / "adaptive-lenet.npz"
