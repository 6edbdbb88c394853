"""Step through one output pixel of a trained adaptive layer in the debugger (pdb).

    python tutorials/one_pixel.py                          # works from any folder
    python tutorials/one_pixel.py --channel 3 --row 10 --col 14
    python tutorials/one_pixel.py --from-model             # start at model(x) instead

It runs the literal loop `adaptive_conv2d_loops` (ack_numpy/functional/adaptive.py) on
one MNIST digit with the first layer of the committed trained `adaptive-lenet`, under
pdb, with a *conditional* breakpoint on the line that computes sigma: the loop visits
8 channels x 26 x 26 = 5,408 output pixels, and pdb stops only at the one you chose.
The commands to type there, and what they print, are in tutorials/README.md
("Step through one pixel"); tests/test_one_pixel.py types exactly those and checks.

With --from-model pdb starts at `model(x)`, the whole trained model switched to its
literal rung (`model.use_rung("loops")`), and the same breakpoint is reached through
AdaptiveLeNet.forward -> Sequential.forward -> AdaptiveConv2d.forward ->
adaptive_conv2d_loops_with_grad -> adaptive_conv2d_loops (README: "Step from model(x)").

Tutorial 03 draws the same pixel, with its numbers, in 03_one_patch.png; it imports
`trained_first_layer`, `test_digit` and the default pixel from here.
"""
from __future__ import annotations

import argparse
import inspect
import pdb
import sys

import numpy as np
from tutorial_setup import ROOT  # this checkout's package, from any working directory

import ack_numpy.functional as F
from ack_numpy import Tensor
from ack_numpy.assets import TRAINED_ADAPTIVE_LENET
from ack_numpy.checkpoint import load_model
from ack_numpy.data import load_mnist
from ack_numpy.data.idx import DataFormatError
from ack_numpy.functional import adaptive
from ack_numpy.models import adaptive_layers
from ack_numpy.nn import AdaptiveConv2d, Module

CHECKPOINT = TRAINED_ADAPTIVE_LENET  # the trained adaptive-lenet that comes with the package
# Channel 0 (the default of `python -m ack_numpy visualize`) at output pixel (12, 16) of
# test image 0, a 7: the patch there holds the edge of the 7's down-stroke, half ink,
# half background, so the kernel is visibly different from w.
CHANNEL, ROW, COL = 0, 12, 16


def trained_model() -> tuple[Module, str]:
    """The trained adaptive-lenet that comes with the package (float32), and where it comes from."""
    model, meta = load_model(CHECKPOINT)
    return model, f"ack_numpy/assets/{CHECKPOINT.name} ({meta['model']}, trained {meta['epoch']} epochs)"


def trained_first_layer() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Q (O, D, D), w (O, D), b (O,) of the first (adaptive) layer, in float64, and where they
    come from: the trained checkpoint that comes with the package."""
    model, source = trained_model()
    layer = adaptive_layers(model)[0]
    source += ", first layer"
    return (layer.Q.data.astype(np.float64), layer.w.data.astype(np.float64),
            layer.b.data.astype(np.float64), source)


def test_digit() -> tuple[np.ndarray, str]:
    """x (1, 1, 28, 28) float64 in [0, 1]: MNIST test image 0 (a 7) if MNIST is found,
    else a drawn stand-in (a slanted stroke like the 7's down-stroke)."""
    try:
        images, labels = load_mnist("test", limit=1)
        return images[:1].astype(np.float64), f"MNIST test image 0 (a {int(labels[0])})"
    except DataFormatError:
        return drawn_stroke(), "a drawn slanted stroke (MNIST not found)"


def drawn_stroke() -> np.ndarray:
    """x (1, 1, 28, 28): a slanted stroke, 1 on the line and fading to 0 within 1.5 pixels."""
    yy, xx = np.mgrid[:28, :28]
    stroke = np.clip(1.5 - np.abs(xx - (27 - yy * 0.6)), 0, 1) * (yy > 6)
    return stroke[None, None].astype(np.float64)


def line_containing(function, text: str) -> int:
    """The line number, in its source file, of the first line of `function` containing `text`."""
    lines, start = inspect.getsourcelines(function)
    for offset, line in enumerate(lines):
        if text in line:
            return start + offset
    raise LookupError(f"no line of {function.__name__} contains {text!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stop adaptive_conv2d_loops at one output pixel, in pdb.")
    parser.add_argument("--channel", type=int, default=CHANNEL, help=f"output channel o (default {CHANNEL})")
    parser.add_argument("--row", type=int, default=ROW, help=f"output row i (default {ROW})")
    parser.add_argument("--col", type=int, default=COL, help=f"output column j (default {COL})")
    parser.add_argument("--from-model", action="store_true",
                        help="start pdb at model(x), the whole model on its loops rung, instead of at the loop")
    args = parser.parse_args(argv)

    Q, w, b, layer_source = trained_first_layer()
    x, digit_source = test_digit()
    O, ho, wo = Q.shape[0], x.shape[2] - 2, x.shape[3] - 2
    if not (0 <= args.channel < O and 0 <= args.row < ho and 0 <= args.col < wo):
        print(f"one_pixel.py: --channel must be in 0..{O - 1}, --row in 0..{ho - 1}, --col in 0..{wo - 1}; "
              f"got {args.channel}, {args.row}, {args.col}", file=sys.stderr)
        return 2
    np.set_printoptions(precision=4, suppress=True, linewidth=100)

    # The line `sigma[...] = np.dot(k, p) + ...`: when pdb stops there, the kernel k is built.
    line = line_containing(adaptive.adaptive_conv2d_loops, "np.dot(k, p)")
    # The line `k = kernel_at(...)`: a breakpoint there stops before k is built, so `step` enters kernel_at.
    kernel_line = line_containing(adaptive.adaptive_conv2d_loops, "k = kernel_at(")
    condition = f"o == {args.channel} and i == {args.row} and j == {args.col}"
    print(f"layer: {layer_source}\ninput: {digit_source}, x {x.shape}")
    print(f"breakpoint: {adaptive.__file__}:{line}, {condition}")

    debugger = pdb.Pdb()
    debugger.set_break(adaptive.__file__, line, cond=condition)
    if args.from_model:
        model, _ = trained_model()
        model.use_rung("loops")   # every conv layer calls its literal version, forward and backward
        print("pdb stops first at model(x); type `continue` to run to that pixel, or `step` to walk there.")
        debugger.runcall(model, Tensor(x.astype(np.float32)))
        x = x.astype(np.float32).astype(np.float64)   # the model saw the float32 image
    else:
        print("pdb stops first at the top of adaptive_conv2d_loops; type `continue` to run to that pixel.")
        print(f"(to step into kernel_at there instead, type `break {kernel_line}, {condition}`, `continue`, `step`)")
        debugger.runcall(adaptive.adaptive_conv2d_loops, x, Q, w, b)

    # The same pixel from the vectorised engine, to compare with what pdb printed.
    o, i, j = args.channel, args.row, args.col
    sigma = F.adaptive_conv2d(x, Q, w, b).data[0, o, i, j]
    kernel = F.adaptive_kernels(x, Q, w)[0, o, i, j].reshape(-1)
    print(f"\nadaptive_conv2d at channel {o}, pixel ({i}, {j}): sigma = {sigma:.4f}, tanh(sigma) = {np.tanh(sigma):.4f}")
    print(f"adaptive_kernels there: k = {kernel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
