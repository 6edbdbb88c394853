"""Files that come with the package (setup.cfg's package_data installs them).

TRAINED_ADAPTIVE_LENET: adaptive-lenet trained 10 epochs with the reproduction's recipe
(`python -m ack_numpy reproduce --seeds 10 --lenet-seeds 3 --epochs 10 --jobs 2 --out
data/reproduction`, as first run at commit da8b554): the median seed then, seed 0, 99.17%
test accuracy. The reproduction has since been trained again on another machine, whose
float32 products round differently, so the same seeds gave other weights (its median is in
data/reproduction/adaptive-lenet-median.npz); this file stays what the figures, the
tutorials' printed numbers and the debugger transcripts were made from. `explore`, the
tutorials and the tests read it; no command writes it.
"""
from pathlib import Path

TRAINED_ADAPTIVE_LENET = Path(__file__).resolve().parent / "adaptive-lenet.npz"
