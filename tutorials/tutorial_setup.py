"""What every tutorial needs before it starts: imported by the first cell of each one.

- makes `import ack_numpy` use this checkout (installed with `pip install -e .` or not),
- QUICK: True when the environment variable ACK_QUICK=1 (small data, few steps; the tests use it),
- OUT: where figures go (ACK_TUTORIAL_OUT, default tutorials/figures/),
- RUNS: where training runs go (under ACK_TUTORIAL_OUT if set, else runs/tutorials/),
- save(fig, name): write a figure to OUT (and show it, in a notebook),
- and uses one BLAS thread unless OPENBLAS_NUM_THREADS is set, as the command line does
  (ack_numpy/runtime.py says why).
"""
import os
import sys
from pathlib import Path

import matplotlib

IN_NOTEBOOK = "ipykernel" in sys.modules
if not IN_NOTEBOOK:
    matplotlib.use("Agg")  # a script only saves figures; a notebook shows them inline
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = next((p for p in [HERE, *HERE.parents] if (p / "ack_numpy" / "__init__.py").is_file()), HERE.parent)
sys.path.insert(0, str(ROOT))  # use this checkout's package, installed or not

from ack_numpy.runtime import use_blas_threads  # noqa: E402

use_blas_threads()  # steady on a shared machine: see ack_numpy/runtime.py

QUICK = os.environ.get("ACK_QUICK", "0") not in ("", "0")
OUT = Path(os.environ.get("ACK_TUTORIAL_OUT", ROOT / "tutorials" / "figures"))
OUT.mkdir(parents=True, exist_ok=True)
RUNS = OUT / "runs" if "ACK_TUTORIAL_OUT" in os.environ else ROOT / "runs" / "tutorials"

# make_notebooks.py sets this to a function that takes each saved figure, so the figure
# lands in the notebook under the cell that drew it.
on_save = None


def save(fig, name: str) -> None:
    """Write a figure to OUT as a PNG; in a notebook, also show it below the cell."""
    fig.savefig(OUT / name, dpi=110, bbox_inches="tight", metadata={"Software": None})  # same file every run
    print(f"saved {OUT / name}")
    if on_save is not None:
        on_save(fig)
    if IN_NOTEBOOK:  # show the PNG just written (works for pyplot and plain Figures alike)
        from IPython.display import Image, display
        display(Image(filename=str(OUT / name)))
    plt.close(fig)
