# %% [markdown]
# # 05 · Looking at the kernels of a trained adaptive network
#
# An ordinary convolution layer has one kernel per output channel, and you can draw it.
# An adaptive layer has a kernel *per location and per input*: `k_o(l) = Q_o p_l + w_o`
# (tutorial 03). So to see what it learned we look at the kernels it **computes** for
# real digits:
#
# 1. the **kernel field**: the kernel at many locations of one digit, drawn over its patch;
# 2. **how much it adapts**: per location, how far the kernel is from the mean kernel
#    over all locations of the same image;
# 3. the **Q bank**: the filters that compute the kernel, and what the quadratic form
#    `p^T Q p` responds to;
# 4. the **same location across digits**: one place in the image, ten different inputs;
# 5. the layer's outputs, `tanh(sigma)`.
#
# The pictures are drawn by `ack_numpy/viz/` (`figures.py` draws, `kernels.py` computes
# the arrays), the same code as `python -m ack_numpy visualize --checkpoint F --out DIR`;
# the eigen-filters of section 3 are drawn here, by this tutorial.
#
# Which trained model: the checkpoint in the environment variable `ACK_CHECKPOINT` if
# set; else the adaptive-lenet that comes with the package
# (`ack_numpy/assets/adaptive-lenet.npz`: seed 0 of the first reproduction, its median then,
# 99.17%; the committed reproduction, trained again later on another machine, has median
# 99.19%, which tutorial 04 prints; `ack_numpy/assets/__init__.py` says more). Needs MNIST,
# as tutorial 04.
#
# This script is the source of the notebook beside it, `05_looking_at_kernels.ipynb`,
# which `python tutorials/make_notebooks.py 05` makes with the outputs of a full run:
# edit the script, not the notebook.

# %% Setup: quick mode (ACK_QUICK=1), where figures go, and the package (see tutorial_setup.py).
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from tutorial_setup import OUT, QUICK, ROOT, save  # quick mode, figure folder, this checkout's package

import ack_numpy.functional as F
from ack_numpy.assets import TRAINED_ADAPTIVE_LENET
from ack_numpy.checkpoint import load_model
from ack_numpy.data import load_mnist
from ack_numpy.models import adaptive_layers, build_model
from ack_numpy.train import evaluate
from ack_numpy.viz import (dynamic_kernels, layer_view, plot_adaptation, plot_digit_kernels, plot_feature_maps,
                           plot_kernel_field, plot_q_filters)
from ack_numpy.viz.kernels import first_of_each_digit, layer_input

np.set_printoptions(precision=3, suppress=True, linewidth=110)
print("project root:", ROOT, "| quick mode:", QUICK, "| figures go to:", OUT)

# %% [markdown]
# ## 0. A trained model

# %%
if os.environ.get("ACK_CHECKPOINT"):
    checkpoint = Path(os.environ["ACK_CHECKPOINT"])
    print(f"using ACK_CHECKPOINT: {checkpoint}")
else:
    checkpoint = TRAINED_ADAPTIVE_LENET
    print("using the trained adaptive-lenet that comes with the package (seed 0 of the first reproduction)")

model, meta = load_model(checkpoint)
if not adaptive_layers(model):
    raise SystemExit(f"{checkpoint} holds a {meta['model']} model, which has no adaptive layer to look at; "
                     f"point ACK_CHECKPOINT at a checkpoint of adaptive-lenet")
test_x, test_y = load_mnist("test", limit=2000 if QUICK else None)
loss, accuracy = evaluate(model, test_x, test_y)
print(f"{meta['model']}, trained {meta['epoch']} epoch(s): test accuracy {accuracy:.2%} "
      f"on {len(test_y):,} test images")

# %% [markdown]
# The layer we look at is the first one, the only adaptive layer of `adaptive-lenet`
# (`adaptive_layers(model)` finds every `AdaptiveConv2d` in a model):

# %%
layer = adaptive_layers(model)[0]
O, D, _ = layer.Q.shape
m = layer.kernel_size
print(layer)
print(f"Q {layer.Q.shape} = (O, D, D), w {layer.w.shape}, b {layer.b.shape};  D = C*m*m = {D}")

# %% [markdown]
# Which of its output channels should we draw? `python -m ack_numpy visualize` draws
# channel 0 unless told otherwise (`--channel`), and so do the README's figures; but
# channel 0 is only the first, not necessarily the most adaptive one. Here we pick the
# channel whose kernels move the most, so that the pictures below show adaptation at its
# clearest; the cell prints the command that draws the same channel. For
# each channel we measure, over a few hundred test digits and every location, the
# average **distance to the static kernel**, `||k_o(l) - w_o||`, between the kernel
# actually applied and `w_o` (the kernel an ordinary convolution would have used
# everywhere). Section 2 uses a different distance; keep the two apart.
# `dynamic_kernels` (in `viz/kernels.py`) returns every kernel: `(N, O, Ho, Wo, C, m, m)`.

# %%
sample = test_x[:300]
kernels = dynamic_kernels(model, sample)                                  # (N, O, Ho, Wo, C, m, m)
w_static = layer.w.data.reshape(1, O, 1, 1, layer.in_channels, m, m)      # broadcast over N, Ho, Wo
distance = np.sqrt(((kernels - w_static) ** 2).sum(axis=(-3, -2, -1)))   # (N, O, Ho, Wo)
print("kernels:", kernels.shape)
print("mean ||k - w|| per channel:", distance.mean(axis=(0, 2, 3)))
print("||w|| per channel:         ", np.linalg.norm(layer.w.data, axis=1))
channel = int(distance.mean(axis=(0, 2, 3)).argmax())
inside = Path(checkpoint).resolve().is_relative_to(ROOT.resolve())
typed = os.path.relpath(Path(checkpoint).resolve(), ROOT.resolve()) if inside else checkpoint  # as a reader types it
print(f"-> we draw channel {channel} (channel 0, the command's default, ranks "
      f"{int((distance.mean(axis=(0, 2, 3)) > distance.mean(axis=(0, 2, 3))[0]).sum()) + 1} of {O}); "
      f"the same pictures, from the project root: python -m ack_numpy visualize --checkpoint {typed} "
      f"--channel {channel} --out DIR")

# %% [markdown]
# ## 1. The kernel field
#
# Every figure below draws from one `layer_view`: the layer and channel we chose, what
# the layer sees for our image (`x`), and the kernels and outputs it computes there,
# computed once. `plot_kernel_field` draws, on a grid of locations that do not overlap,
# the kernel the layer applies there, each tile placed exactly over the patch it is
# applied to, with the digit's outline on top. An ordinary convolution would show the
# same tile everywhere.

# %%
index = 0
image, label = test_x[index], int(test_y[index])
name = f"test image {index} (digit {label})"
view = layer_view(model, image[None], layer=0, channel=channel)   # x (1, C, H, W), kernels (1, Ho, Wo, C, m, m)
fig, drawn = plot_kernel_field(view, name=name)
print("arrays drawn:", {k: np.shape(v) for k, v in drawn.items()})
save(fig, "05_kernel_field.png")

# %% [markdown]
# **What to notice.** Away from the digit the tiles are all the same: there the patch
# is all zeros (MNIST's background is exactly 0, and the package feeds pixels in
# `[0, 1]` without normalising), so `k = Q 0 + w = w`. The kernel only changes where
# there is ink. We can check that claim on all the kernels computed above:

# %%
P = F.im2col(layer_input(model, sample, 0), m)                    # (N*Ho*Wo, D): every patch
empty = np.all(P == 0, axis=1)                                    # patches with no ink at all
k_rows = kernels[:, channel].reshape(-1, D)                       # (N*Ho*Wo, D), same row order as P
print(f"{empty.mean():.0%} of all patches are empty; there, max |k - w| = "
      f"{np.abs(k_rows[empty] - layer.w.data[channel]).max():.1e}")
print(f"on patches with ink, mean ||k - w|| = {np.linalg.norm(k_rows[~empty] - layer.w.data[channel], axis=1).mean():.3f}")

# %% [markdown]
# ## 2. How much the kernel adapts, location by location
#
# `plot_adaptation` condenses the field into one number per location, the **distance
# to the mean kernel**, `||k(l) - kbar||`, where `kbar` is the mean of the kernels over
# the `Ho x Wo` locations of *this* image (not `w`, which section 0 used to pick the
# channel, and not an average over many digits). Bright means "this location uses a
# kernel very different from this image's typical one".
#
# Since `k(l) = Q p_l + w`, the mean kernel is `kbar = Q pbar + w`, with `pbar` the mean
# patch of this image, and so
#
#     k(l) - kbar = Q (p_l - pbar)          w cancels
#
# The map measures how differently `Q` responds to this patch than to the image's
# average patch. Both facts are checked below on the arrays the figure drew.

# %%
fig, drawn = plot_adaptation(view, name=name)
save(fig, "05_adaptation.png")
P_image = F.im2col(layer_input(model, image[None], 0), m)           # (Ho*Wo, D): this image's patches
k_image = drawn["kernels"].reshape(-1, D)                            # (Ho*Wo, D), same order
print(f"kbar = mean of this image's kernels: max |drawn mean kernel - kbar| = "
      f"{np.abs(drawn['mean_kernel'].reshape(D) - k_image.mean(axis=0)).max():.1e}")
k_minus_kbar = k_image - k_image.mean(axis=0)                       # (Ho*Wo, D)
print(f"k(l) - kbar = Q (p_l - pbar): max difference = "
      f"{np.abs(k_minus_kbar - (P_image - P_image.mean(axis=0)) @ layer.Q.data[channel].T).max():.1e} "
      f"(float32 rounding; the largest |k - kbar| is {np.abs(k_minus_kbar).max():.2f})")
patch_ink = P_image.sum(axis=1).reshape(drawn["distance"].shape)
print(f"correlation between the distance and the amount of ink in the patch: "
      f"{np.corrcoef(drawn['distance'].ravel(), patch_ink.ravel())[0, 1]:+.2f}")

# %% [markdown]
# Do not over-read this map. `k - kbar = Q (p - pbar)` is a *linear* function of the
# patch; on a digit most patches are empty background, so `pbar` is small and the
# distance grows with the amount of ink in the patch: the map looks much like an ink
# map (the closer the printed correlation is to 1, the more so). What differs from place
# to place and from digit to digit is the *shape* of the kernel, its direction of
# change: that is what the tiles of section 1 and the ten kernels of section 4 show.

# %% [markdown]
# ## 3. The Q bank, and what the quadratic form responds to
#
# `plot_q_filters` draws channel `o`'s Q filters in an `m x m` arrangement: block
# `(u, v)` is row `e = (u, v)` of `Q_o`, the filter whose response on the patch becomes
# kernel element `(u, v)`; beside it the static kernel `w_o`.

# %%
fig, drawn = plot_q_filters(view)
print("arrays drawn:", {k: np.shape(v) for k, v in drawn.items()})
save(fig, "05_q_bank.png")

# %% [markdown]
# Two things from tutorial 03 help to read this picture.
#
# **Only the symmetric part of Q counts, and a trained Q has no other.** `p^T Q p` does
# not change if we add an antisymmetric matrix to `Q`, and training never changes `Q`'s
# antisymmetric part, because the gradient `p p^T` is symmetric (tutorial 03, section 3).
# An antisymmetric part would only add frozen initial noise to every kernel drawn, so
# `AdaptiveConv2d` starts `Q` symmetric, and training keeps it so: the Q filter of
# kernel element `e` (row `e`) is also column `e`, and the Q bank above shows nothing
# that `sigma` does not use. Measured on this checkpoint (what is left is rounding: the
# float32 gradient is symmetric only up to float32's machine epsilon, printed beside it):

# %%
Q = layer.Q.data[channel]
sym = (Q + Q.T) / 2
bank_anti = (layer.Q.data - layer.Q.data.transpose(0, 2, 1)) / 2
ratio = np.linalg.norm(bank_anti) / np.linalg.norm(layer.Q.data)
print(f"whole Q bank ({O} channels): ||antisymmetric part|| / ||Q|| = {ratio:.1e} "
      f"(machine epsilon of {layer.Q.data.dtype}: {np.finfo(layer.Q.data.dtype).eps:.1e})")
if ratio > 1e3 * np.finfo(layer.Q.data.dtype).eps:
    print("  this checkpoint's Q is not symmetric: it was trained before AdaptiveConv2d started Q symmetric,\n"
          "  so its antisymmetric part is initialisation left over; sigma does not see it, the Q bank does")
seed = meta.get("config", {}).get("seed")
if seed is not None:
    untrained = adaptive_layers(build_model(meta["model"], seed=seed, **meta.get("model_options", {})))[0]
    Q0 = untrained.Q.data[channel]
    print(f"since initialisation (seed {seed}): Q_{channel} moved by up to {np.abs(Q - Q0).max():.3f}; "
          f"at initialisation its largest entry was {np.abs(Q0).max():.3f}")

# %% [markdown]
# **The quadratic form is a sum of squared filter responses** (tutorial 03, section 3).
# The symmetric part has an eigendecomposition `S = sum_i lambda_i v_i v_i^T`
# (orthonormal `v_i`), so
#
#     p^T Q p = p^T S p = sum_i lambda_i (v_i . p)^2
#
# Each eigenvector `v_i` is a 3x3 filter; the layer adds up the *squares* of their
# responses, weighted by `lambda_i`: a positive `lambda` rewards patches that match
# `v_i` (or its negative), a negative one penalises them. Here they are, largest
# `|lambda|` first, with the numbers checked against the layer's own output on a real patch:

# %%
eigenvalues, eigenvectors = np.linalg.eigh(sym)                   # ascending; columns are v_i
order = np.argsort(-np.abs(eigenvalues))
eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
print("eigenvalues of the symmetric part, largest |lambda| first:", eigenvalues)

r = int(np.argmax(np.abs(P[: len(P) // len(sample)]).sum(axis=1)))   # the inkiest patch of image 0
p = P[r]
via_eigen = np.sum(eigenvalues * (eigenvectors.T @ p) ** 2)
print(f"one patch of image 0: p^T Q p = {p @ Q @ p:.5f}, sum_i lambda_i (v_i.p)^2 = {via_eigen:.5f}")

def draw_tile(ax, values, title, limit):
    """A 3x3 filter in red (> 0) and blue (< 0), white at 0, with its values written in."""
    drawn_image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v:+.2f}", ha="center", va="center", fontsize=8,
                color="white" if abs(v) > 0.6 * limit else "black")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return drawn_image


columns = (D + 2) // 2                          # the D eigen-filters and w in two rows, readable at page width
fig, axes = plt.subplots(2, columns, figsize=(1.9 * columns + 1.2, 4.9), layout="constrained")
axes = axes.ravel()
lim = np.abs(eigenvectors).max()
for i, ax in enumerate(axes[:D]):
    tile = draw_tile(ax, eigenvectors[:, i].reshape(m, m), f"v_{i + 1}\nlambda={eigenvalues[i]:+.2f}", lim)
fig.colorbar(tile, ax=list(axes[:D]), shrink=0.6, pad=0.01, label="v_i entry (unit length)")
w_lim = np.abs(layer.w.data[channel]).max()   # its own scale, centred on 0: white is 0
tile = draw_tile(axes[D], layer.w.data[channel].reshape(m, m), f"w_{channel} (linear)\nits own scale", w_lim)
fig.colorbar(tile, ax=axes[D], location="bottom", shrink=0.8, pad=0.02, label="w entry")
for ax in axes[D + 1:]:
    ax.axis("off")
fig.suptitle(f"Channel {channel}: eigen-filters v_i of the symmetric part of Q, "
             f"sigma = sum_i lambda_i (v_i.p)^2 + w.p + b.\nThe sign of each v_i is arbitrary "
             f"(-v_i gives the same (v_i.p)^2); lambda's sign is not.", fontsize=10)
save(fig, "05_q_eigenfilters.png")

# %% [markdown]
# What does the strongest eigen-filter `v_1` look at? One number tells: its cosine with
# the *flat* filter (all entries equal, unit length), i.e. how much of `v_1 . p` is just
# the total ink of the patch.
#
# * Close to 1: `v_1` is nearly flat, and the strongest quadratic term is, roughly,
#   `lambda_1` times the *squared total ink* of the patch, a brightness-squared term
#   that no linear filter can produce.
# * Close to 0: `v_1` has positive and negative weights that cancel, so `v_1 . p` does
#   not grow with the amount of ink but with *where* the ink is in the patch: the
#   strongest quadratic term is a **stroke-shape detector** (an edge or a bar of a
#   particular orientation, say), squared so that it responds to the stroke whatever its
#   sign, not to overall brightness.
#
# The weaker eigen-filters, with their signs, add further preferences for particular
# shapes.

# %%
flat = np.ones(D) / np.sqrt(D)                                     # the all-equal filter, unit length
cosine = abs(eigenvectors[:, 0] @ flat)
reading = ("close to 1: mostly squared brightness" if cosine > 0.8 else
           "close to 0: a stroke-shape detector, not brightness" if cosine < 0.3 else
           "in between: part brightness, part shape")
print(f"|cosine| between the strongest eigen-filter (lambda = {eigenvalues[0]:+.2f}) and the flat filter: "
      f"{cosine:.2f}  -> {reading}")

# %% [markdown]
# ## 4. The same location, ten different digits
#
# `plot_digit_kernels` takes one location (the centre, by default) and the first test
# image of each digit, and draws the kernel that location applied to each of them, with
# the mean and the standard deviation of each kernel element over the ten. In an
# ordinary convolution all ten would be identical and the standard deviation 0.

# %%
firsts = first_of_each_digit(test_y)
fig, drawn = plot_digit_kernels(layer_view(model, test_x[firsts], layer=0, channel=channel), test_y[firsts])
i, j = drawn["location"]
print(f"location ({i}, {j}); kernel std over the ten digits, per element:\n", drawn["std"][0])
same_as_w = [int(test_y[f]) for f, k in zip(firsts, drawn["kernels"])
             if np.allclose(k.reshape(-1), layer.w.data[channel])]
print("digits whose patch at this location is empty (so their kernel is exactly w):", same_as_w or "none")
save(fig, "05_same_location_digits.png")

# %% [markdown]
# ## 5. What the layer outputs
#
# Finally `plot_feature_maps` shows `y = tanh(sigma)` for every channel on our digit:
# what the rest of the network (pooling, an ordinary convolution, the classifier)
# receives. tanh bounds every output by 1 in absolute value (tutorial 03, section 6);
# the share of outputs pressed against that bound is printed below. (In float32,
# `tanh` of a large enough `sigma` rounds to exactly 1.)

# %%
fig, drawn = plot_feature_maps(view, name=name)
outputs = drawn["outputs"]
print(f"outputs {outputs.shape}: min {outputs.min():+.4f}, max {outputs.max():+.4f}; "
      f"{np.mean(np.abs(outputs) > 0.99):.0%} of them are saturated (|y| > 0.99)")
save(fig, "05_feature_maps.png")

# %% [markdown]
# **What to notice, in short:**
#
# * The kernel is a function of the patch: constant (`= w`) on empty background, moving
#   where there is ink, most where the patch has most ink (sections 1-2; the map of
#   section 2 is the distance to this image's mean kernel, `||Q (p - pbar)||`).
# * Only the symmetric part of `Q` affects the output, and a trained `Q` is symmetric
#   (the layer starts it so and training keeps it so, section 3). Its eigen-filters are
#   the clearer picture: the layer adds an ordinary linear filter `w` to a signed sum
#   of squared filter responses.
# * At a fixed location the kernel differs from digit to digit (section 4): this is the
#   "adaptive" in adaptive kernels, and what a static convolution cannot do.
#
# Try other inputs: change `index` above, or `channel`; or on the command line,
# `python -m ack_numpy visualize --checkpoint F --digit 7 --channel 3 --out DIR`.

# %% [markdown]
# ## Exercises
#
# 1. `kernel_distance_map(x, Q, w, o)`: the map `||k_o(l) - w_o||` over the locations of
#    one image (the distance section 0 used to choose the channel). Where is it exactly 0?
# 2. `distance_to_mean_kernel(x, Q, w, o)`: the map of section 2, `||k_o(l) - kbar||`.
#    Compare the two maps on one digit: which one looks more like the ink?
#
# Write your answers in `tutorials/exercises/ex05.py` (each function raises
# `NotImplementedError` until you do), then run
#
#     python tutorials/check.py 05
#
# It says, exercise by exercise, right or wrong with a hint. The reference solutions are
# in `tutorials/solutions/ex05.py`; look after trying.
