# %% [markdown]
# # 03 · Adaptive convolutional kernels
#
# This tutorial is the idea of the paper: Zamora Esquivel, Cruz Vargas, Lopez Meyer and
# Tickoo, *Adaptive Convolutional Kernels* (ICCV Workshops 2019), open access at
# <https://openaccess.thecvf.com/content_ICCVW_2019/html/NeurArch/Esquivel_Adaptive_Convolutional_Kernels_ICCVW_2019_paper.html>.
# This project measures its MNIST claims (66x fewer parameters than LeNet, above 99% test
# accuracy, about half the training epochs: tutorial 04, `python -m ack_numpy reproduce` and
# `python -m ack_numpy study time-to-accuracy`);
# its CIFAR-10 and ImageNet results (adaptive kernels in a ResNet18) need data and GPU
# time this project does not have, and are not checked here.
#
# In an ordinary convolution (tutorial 02), output channel `o` applies **the same**
# kernel `w_o` at every location of the image. In an adaptive convolution the kernel is
# **computed from the patch** it is about to be applied to, so it can be different at
# every location and for every image.
#
# In this tutorial we
# 1. go from a fixed kernel to a kernel computed from the patch, meet the Q filters, and
#    follow one real patch of a trained layer through every number (`03_one_patch.png`),
# 2. run the literal loop that does exactly that, one number at a time, and stop it at
#    one pixel in the debugger,
# 3. see that the layer computes a quadratic form `p^T Q p`, of which only the
#    symmetric part of `Q` matters (and why the layer therefore starts `Q` symmetric),
# 4. write the parallel version with im2col and one large matrix product,
# 5. derive the gradients, read them in a literal loop, and check them with finite differences,
# 6. see why the layer ends with tanh,
# 7. count what it costs in parameters, and what that means for where to put it,
# 8. and end with three exercises and their checker (`python tutorials/check.py 03`).
#
# A word on names: the `adaptive_conv2d*` functions in `ack_numpy/functional/adaptive.py`
# return **sigma**, the value *before* the nonlinearity (`adaptive_kernels` returns the
# kernels themselves); the layer `AdaptiveConv2d` applies
# `y = tanh(sigma)` on top (section 6 says why tanh).
#
# The code: `ack_numpy/functional/adaptive.py` (the maths, three times: the literal loop
# `adaptive_conv2d_loops`, the plain im2col form `adaptive_conv2d_reference`, and the fast
# `adaptive_conv2d`; and the literal backward `adaptive_conv2d_backward_loops`) and
# `ack_numpy/nn/adaptive.py` (the layer `AdaptiveConv2d`). `tutorials/one_pixel.py` stops
# the literal loop at one pixel in the debugger.
#
# This script is the source of the notebook beside it, `03_adaptive_kernels.ipynb`,
# which `python tutorials/make_notebooks.py 03` makes with the outputs of a full run:
# edit the script, not the notebook.

# %% Setup: quick mode (ACK_QUICK=1), where figures go, and the package (see tutorial_setup.py).
import time

import matplotlib.pyplot as plt
import numpy as np
from tutorial_setup import OUT, QUICK, ROOT, save  # quick mode, figure folder, this checkout's package

from one_pixel import CHANNEL, COL, ROW, test_digit, trained_first_layer  # the pixel of the pdb recipe

import ack_numpy.functional as F
from ack_numpy import Tensor, no_grad
from ack_numpy.functional.adaptive import adaptive_conv2d_backward_loops, adaptive_conv2d_reference
from ack_numpy.gradcheck import grad_check, numerical_grad
from ack_numpy.models import LENET_PARAMETERS, PAPER_BUDGET, build_model
from ack_numpy.nn import AdaptiveConv2d, Conv2d
from ack_numpy.optim import Adam

np.set_printoptions(precision=3, suppress=True, linewidth=110)
rng = np.random.default_rng(0)
print("project root:", ROOT, "| quick mode:", QUICK, "| figures go to:", OUT)

# %% [markdown]
# ## 1. From a fixed kernel to a kernel computed from the patch
#
# Notation, for one output channel `o` and one output location `l`:
#
# * `p = p_l`: the patch under location `l`, flattened in `(c, u, v)` order: a vector of
#   length `D = C*m*m` (exactly one row of `im2col(x)` from tutorial 02);
# * ordinary convolution: `sigma_o(l) = w_o . p + b_o`, the same `w_o` (length `D`) everywhere.
#
# The adaptive kernel replaces the constant `w_o` by a kernel that depends on `p`:
#
#     k_o(l) = Q_o p + w_o                  (D,)   Q_o is a (D, D) matrix
#     sigma_o(l) = k_o(l) . p + b_o         ()     the dynamic kernel, applied to the same patch
#     y_o(l) = tanh(sigma_o(l))
#
# Read the first line one element at a time: element `e = (c, u, v)` of the kernel is
#
#     k_o(l)[e] = Q_o[e, :] . p + w_o[e]
#
# so **row `e` of `Q_o` is a linear filter, the size of a patch, whose response on the
# patch becomes kernel element `e`.** There is one such filter per kernel element: these
# are the paper's `Q_(u,v)` filters (for `C = 1`, one per kernel position `(u, v)`).
# `w_o` is a static kernel; with `Q = 0` we are back to an ordinary convolution.
#
# A first example to build intuition: `Q_o = I` (the identity). Then `k = p + w`: at
# every location the kernel is *the patch itself* (plus `w`), and
# `sigma = |p|^2 + w . p + b` measures the patch's energy, something no ordinary
# convolution (a linear function of `p`) can compute.

# %%
m, C = 3, 1
D = C * m * m
p = rng.normal(size=D)
w_o, b_o = rng.normal(size=D), 0.1
k = np.eye(D) @ p + w_o
print("Q = I:  kernel - w equals the patch:", np.allclose(k - w_o, p))
print(f"        sigma = k.p + b = {k @ p + b_o:.4f};  |p|^2 + w.p + b = {p @ p + w_o @ p + b_o:.4f}")

# %% [markdown]
# ### One real patch, every number
#
# Now a real one: the first layer of the trained `adaptive-lenet` that comes with the
# package, `ack_numpy/assets/adaptive-lenet.npz` (8 channels of 3x3 adaptive kernels, so
# `C = 1`, `D = 9`), **channel 0**, at **output pixel (12, 16)** of MNIST **test image 0**
# (a 7): the patch there is the edge of the 7's down-stroke, half ink and half
# background. (Without MNIST the digit is a drawn stroke; the first printed lines say
# which.) The figure follows the
# equations from left to right and top to bottom: the patch `p`, the Q filters of the
# channel (row `e` of `Q_0`), their responses `Q p` (element `e` drawn at kernel position
# `(e // 3, e % 3)`), plus `w`, the kernel `k`, `k * p`, and the sum that makes `sigma`.
# The cells are rounded (`Q_0` to 2 decimals, the rest to 3); the cell below prints every
# array with 4 decimals, so that you can check each step by hand. The same pixel is the
# one the debugger recipe of section 2 stops at.

# %%
Q_trained, w_trained, b_trained, layer_source = trained_first_layer()   # (8, 9, 9), (8, 9), (8,), float64
digit, digit_source = test_digit()                                      # (1, 1, 28, 28) in [0, 1]
o, i, j = CHANNEL, ROW, COL
p_real = digit[0, 0, i : i + m, j : j + m].reshape(D)     # the patch, row by row
Qp_real = Q_trained[o] @ p_real                           # Q_o p: one response per kernel element
k_real = Qp_real + w_trained[o]                           # k_o(l) = Q_o p + w_o
sigma_real = k_real @ p_real + b_trained[o]               # sigma_o(l) = k_o(l) . p + b_o
print(f"layer: {layer_source}\ninput: {digit_source}; channel {o}, output pixel ({i}, {j})")
with np.printoptions(precision=4, suppress=True, linewidth=110):
    print("p      =", p_real)
    print(f"Q_{o}    =\n{Q_trained[o]}")
    print("Q p    =", Qp_real)
    print(f"w_{o}    =", w_trained[o])
    print("k      =", k_real)
    print("k * p  =", k_real * p_real)
print(f"k . p = {k_real @ p_real:.4f};  b_{o} = {b_trained[o]:.4f};  sigma = k . p + b_{o} = {sigma_real:.4f};  "
      f"tanh(sigma) = {np.tanh(sigma_real):.4f}")
engine_sigma = F.adaptive_conv2d(digit, Q_trained, w_trained, b_trained).data[0, o, i, j]
engine_k = F.adaptive_kernels(digit, Q_trained, w_trained)[0, o, i, j].reshape(D)
print(f"the engine at the same pixel: sigma = {engine_sigma:.4f}; max |kernel - k by hand| = "
      f"{np.abs(engine_k - k_real).max():.1e}")


def draw_cells(ax, values: np.ndarray, title: str, decimals: int = 3, fontsize: int = 9, limit=None):
    """A small array as coloured cells with its values written in them (red > 0 > blue,
    white = 0; the colours run from -limit to +limit, by default the largest |value|)."""
    limit = max(float(np.abs(values).max()), 1e-12) if limit is None else limit
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v + 0.0:.{decimals}f}", ha="center", va="center", fontsize=fontsize,
                color="white" if abs(v) > 0.6 * limit else "black")
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))
    ax.tick_params(labelsize=7, length=0)
    return image


fig = plt.figure(figsize=(15, 7.5), layout="constrained")
grid = fig.add_gridspec(2, 6, height_ratios=[1.25, 1])
ax = fig.add_subplot(grid[0, 0])
ax.imshow(digit[0, 0], cmap="gray_r", vmin=0, vmax=1)
ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), m, m, fill=False, edgecolor="tab:red", linewidth=2))
ax.set_title(f"input; output pixel ({i}, {j})\nreads rows {i}-{i + m - 1}, columns {j}-{j + m - 1}", fontsize=10)
ax.set_xticks([])
ax.set_yticks([])
draw_cells(fig.add_subplot(grid[0, 1]), p_real.reshape(m, m), "patch p\n(p[0..8], row by row)")
ax = fig.add_subplot(grid[0, 2:5])
draw_cells(ax, Q_trained[o], f"Q_{o}: row e is the filter that makes kernel element e", decimals=2, fontsize=7)
ax.set_xlabel("patch element d (multiplies p[d])", fontsize=8)
ax.set_ylabel("kernel element e", fontsize=8)
draw_cells(fig.add_subplot(grid[1, 0]), Qp_real.reshape(m, m), "Q p  (element e = Q[e, :] . p)")
draw_cells(fig.add_subplot(grid[1, 1]), w_trained[o].reshape(m, m), f"+ w_{o}  (the static kernel)")
draw_cells(fig.add_subplot(grid[1, 2]), k_real.reshape(m, m), "= k = Q p + w")
draw_cells(fig.add_subplot(grid[1, 3]), (k_real * p_real).reshape(m, m), "k * p, element by element")
ax = fig.add_subplot(grid[1, 4:6])
ax.axis("off")
summary = [("sum of k * p = k . p", f"{k_real @ p_real:+.4f}"), (f"+ b_{o}", f"{b_trained[o]:+.4f}"),
           ("= sigma", f"{sigma_real:+.4f}"), ("tanh(sigma)", f"{np.tanh(sigma_real):+.4f}  (the layer's output)")]
ax.text(0, 0.5, "\n".join(f"{label:<21}= {value}" for label, value in summary), family="monospace", fontsize=11, va="center")
fig.suptitle(f"One real patch, every number: channel {o} of {layer_source}; {digit_source}", fontsize=10)
save(fig, "03_one_patch.png")

# %% [markdown]
# Read `Q_0` row by row. Row 4 is the filter of the kernel's centre element: the patch
# elements it weighs most (printed below) decide how much the centre of the kernel grows
# or shrinks on this patch. That is how a kernel "adapts"; with `Q = 0` the kernel would
# be `w_0` here and everywhere.

# %%
heaviest = np.argsort(-np.abs(Q_trained[o, 4]))[:3]
print(f"row 4 of Q_{o} weighs most the patch elements {heaviest.tolist()} "
      f"(weights {Q_trained[o, 4, heaviest].round(2).tolist()}; patch values {p_real[heaviest].round(2).tolist()})")

# %% [markdown]
# ## 2. The literal loop
#
# `adaptive_conv2d_loops` in `adaptive.py` does the equations above one number at a
# time: for each image, output channel and location, it cuts out the patch `p`, builds
# the kernel element by element with `k[e] = Q[o, e, :] . p + w[o, e]` (in `kernel_at`),
# and applies it.
#
# **To watch it in the debugger**, run (from any folder)
#
#     python tutorials/one_pixel.py
#
# It runs this loop on test image 0 with the trained layer above, under `pdb`, with a
# *conditional* breakpoint `o == 0 and i == 12 and j == 16` on the line
# `sigma[img, o, i, j] = np.dot(k, p) + ...`: the loop passes 5,408 output pixels
# (8 channels x 26 x 26) and stops only at ours. At the `(Pdb)` prompt type `continue`
# (to reach the pixel), then `p p` (the patch), `p k` (the kernel just built),
# `p Q[o] @ p + w[o]` (what `k` must equal), `next` (run the line), `p sigma[0, o, i, j]`
# and `p p @ Q[o] @ p + w[o] @ p + b[o]` (what sigma must equal), and `continue`. The
# values are the ones in the figure above; `tutorials/README.md` ("Step through one
# pixel") shows the whole session, and `--channel`, `--row`, `--col` choose another pixel.
#
# Here we call it, and its twin `adaptive_kernels_loops`, which returns every kernel
# the loop builds.
#
# Our input is a small synthetic image (a ring, like the loop of a handwritten 0), and a
# layer with `O = 2` output channels of 3x3 kernels, with random `Q`, `w`, `b`.

# %%
size = 12
yy, xx = np.mgrid[:size, :size]
ring = np.exp(-((np.hypot(yy - 5.5, xx - 5.5) - 3.5) ** 2))      # (12, 12), values in (0, 1]
x = ring[None, None]                                               # (N=1, C=1, 12, 12)

O = 2
Q = rng.normal(scale=0.5, size=(O, D, D))                          # (O, D, D): D filters of length D per channel
w = rng.normal(scale=0.5, size=(O, D))                             # (O, D): the static kernels
b = rng.normal(scale=0.1, size=O)                                  # (O,)

sigma_loops, kernels = F.adaptive_conv2d_loops(x, Q, w, b), F.adaptive_kernels_loops(x, Q, w)
print("x", x.shape, "Q", Q.shape, "w", w.shape, "b", b.shape)
print("sigma", sigma_loops.shape, "= (N, O, Ho, Wo)")
print("kernels", kernels.shape, "= (N, O, Ho, Wo, C, m, m): one 3x3 kernel per channel AND location")

# %% [markdown]
# The same computation by hand at one location, to see that nothing else is going on:

# %%
o, i, j = 0, 2, 5
p = x[0, :, i : i + m, j : j + m].reshape(D)             # the patch, (c, u, v) order
k = Q[o] @ p + w[o]                                      # k_o(l) = Q_o p + w_o
sigma = k @ p + b[o]                                     # sigma_o(l) = k_o(l) . p + b_o
print(f"channel {o}, location ({i}, {j}):")
print("  kernel by hand  :", k)
print("  kernel from loop:", kernels[0, o, i, j].reshape(D))
print(f"  sigma by hand {sigma:.6f}, from loop {sigma_loops[0, o, i, j]:.6f}")

locations = [(1, 1), (2, 5), (5, 4)]
print("\nthe kernel changes with the location (channel 0):")
for (i, j) in locations:
    print(f"  at ({i}, {j}):", kernels[0, 0, i, j, 0].reshape(-1))
print("  static w_0   :", w[0])

sigma_q0 = F.adaptive_conv2d_loops(x, np.zeros_like(Q), w, b)
sigma_conv = F.conv2d_loops(x, w.reshape(O, C, m, m), b)
print(f"\nwith Q = 0: max |adaptive - ordinary conv| = {np.abs(sigma_q0 - sigma_conv).max():.1e}")

# %% [markdown]
# A picture of the same: the image with three locations marked, the kernel the layer
# applies at each of them, and the static kernel `w_0` they all share (one colour scale
# for the four, values in the cells). Below, the **Q bank** of channel 0: block `(u, v)`
# is filter `Q_(u,v)`, row `e = 3u + v` of `Q_0` drawn as a 3x3 filter over the patch
# (its own rows and columns are the patch's); its response on the patch is kernel
# element `(u, v)`. Tutorial 05 draws the same pictures for a trained network.

# %%
fig, axes = plt.subplots(1, 5, figsize=(14, 3.1), layout="constrained")
axes[0].imshow(ring, cmap="gray")
colors = ["tab:red", "tab:orange", "tab:cyan"]
for (i, j), color in zip(locations, colors):
    axes[0].add_patch(plt.Rectangle((j - 0.5, i - 0.5), m, m, fill=False, edgecolor=color, linewidth=2.5))
axes[0].set_title("input, 3 locations\n(box = the patch read)")
axes[0].set_xticks([])
axes[0].set_yticks([])
limit = max(np.abs(kernels[0, 0]).max(), np.abs(w[0]).max())
for ax, (i, j), color in zip(axes[1:4], locations, colors):
    draw_cells(ax, kernels[0, 0, i, j, 0], f"k_0 at ({i}, {j})", decimals=2, limit=limit)
    ax.title.set_color(color)
image = draw_cells(axes[4], w[0].reshape(m, m), "static w_0 (the kernel if Q = 0)", decimals=2, limit=limit)
fig.colorbar(image, ax=axes[1:], shrink=0.8, label="kernel value")
save(fig, "03_kernel_per_location.png")

fig, axes = plt.subplots(m, m, figsize=(6.2, 6.4), layout="constrained")
limit = np.abs(Q[0]).max()
for (u, v), ax in np.ndenumerate(axes):
    image = draw_cells(ax, Q[0, u * m + v].reshape(m, m), f"Q_({u},{v}) = row {u * m + v}", decimals=2,
                       fontsize=7, limit=limit)
    if u == m - 1:
        ax.set_xlabel("patch column", fontsize=8)
    if v == 0:
        ax.set_ylabel("patch row", fontsize=8)
fig.colorbar(image, ax=axes, shrink=0.6, label="weight on the patch pixel")
fig.suptitle("Q bank of channel 0 (random here): filter (u, v), applied to the patch,\n"
             "gives kernel element (u, v)", fontsize=10)
save(fig, "03_q_bank.png")

# %% [markdown]
# ## 3. It is a quadratic form: `sigma = p^T Q p + w . p + b`
#
# Substitute the kernel into `sigma`:
#
#     sigma_o(l) = (Q_o p + w_o) . p + b_o = p^T Q_o p + w_o . p + b_o
#
# The layer is a *second-order* function of the patch: it can respond to products of
# pixels (`p_i p_j`), for instance "both of these pixels are bright", which no single
# linear filter can.

# %%
o, (i, j) = 1, (4, 7)
p = x[0, :, i : i + m, j : j + m].reshape(D)
print(f"channel {o}, location ({i}, {j}):  p^T Q p + w.p + b = {p @ Q[o] @ p + w[o] @ p + b[o]:.6f}, "
      f"loop gives {sigma_loops[0, o, i, j]:.6f}")

# %% [markdown]
# A consequence worth knowing before we look at trained kernels. Split `Q` into a
# symmetric and an antisymmetric part, `Q = S + A` with `S = (Q + Q^T)/2` and
# `A = (Q - Q^T)/2`. For any vector, `p^T A p = 0` (each pair `p_i A_ij p_j` cancels
# `p_j A_ji p_i`). So **`sigma` only depends on `S`**, while the kernel `k = Q p + w`
# depends on both: adding an antisymmetric matrix to `Q` changes every kernel the layer
# "uses" but not a single output. Our random `Q` here is not symmetric; we add a random
# antisymmetric matrix to a copy of it:

# %%
A_extra = rng.normal(size=(O, D, D))
A_extra = A_extra - A_extra.transpose(0, 2, 1)                     # antisymmetric: A^T = -A
sigma_2, kernels_2 = F.adaptive_conv2d_loops(x, Q + A_extra, w, b), F.adaptive_kernels_loops(x, Q + A_extra, w)
print(f"Q -> Q + A (A antisymmetric):  kernels change by up to {np.abs(kernels_2 - kernels).max():.3f}, "
      f"sigma by up to {np.abs(sigma_2 - sigma_loops).max():.1e}")

# %% [markdown]
# And training cannot see `A` either: the gradient of `sigma` with respect to `Q` is
# `p p^T` (section 5), a symmetric matrix, so every gradient of `Q` is symmetric, and so
# is every update SGD or Adam makes from it (Adam scales each entry by its own running
# averages, but entries `(i, j)` and `(j, i)` receive equal gradients, hence equal
# averages). **The antisymmetric part of `Q` never changes.** (Weight decay, off by
# default, would only shrink it towards 0.)
#
# We check both claims on a real `AdaptiveConv2d` layer: add a random antisymmetric
# matrix to its `Q`, compare its outputs, then train it for a few Adam steps on a toy
# task (make the output match random targets) and see which part of `Q` moved:

# %%
def symmetric_antisymmetric(Qv):
    return (Qv + Qv.transpose(0, 2, 1)) / 2, (Qv - Qv.transpose(0, 2, 1)) / 2


layer = AdaptiveConv2d(1, 4, 3, rng=np.random.default_rng(1), dtype=np.float64)
x_toy = rng.normal(size=(16, 1, 8, 8))
target = rng.uniform(-0.5, 0.5, size=(16, 4, 6, 6))

with no_grad():
    y_before = layer(Tensor(x_toy)).data
A_added = rng.normal(scale=0.05, size=layer.Q.shape)
A_added = (A_added - A_added.transpose(0, 2, 1)) / 2             # antisymmetric
layer.Q.data += A_added
with no_grad():
    y_after = layer(Tensor(x_toy)).data
print(f"(a) Q -> Q + A: the layer's outputs change by up to {np.abs(y_after - y_before).max():.1e}")

optimizer = Adam(layer.parameters(), lr=1e-2)
S0, A0 = symmetric_antisymmetric(layer.Q.data.copy())
for step in range(50):
    loss = ((layer(Tensor(x_toy)) - Tensor(target)) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
S1, A1 = symmetric_antisymmetric(layer.Q.data)
print(f"(b) after 50 Adam steps (loss {loss.item():.4f}):")
print(f"    symmetric part of Q changed by up to     {np.abs(S1 - S0).max():.2e}")
print(f"    antisymmetric part of Q changed by up to {np.abs(A1 - A0).max():.2e} (its size: {np.abs(A0).max():.2e})")

# %% [markdown]
# So an antisymmetric part of `Q` would be dead weight: it never affects an output and
# never learns, yet it shows up in every kernel `k = Q p + w` we draw (as `A p`): noise
# frozen at its initial value. That is why `AdaptiveConv2d` **starts `Q` symmetric**,
# `Q = (M + M^T)/2` with a small random matrix `M` (section 6 says why small; the layer's
# docstring says the rest), and training keeps it symmetric: the kernels drawn in
# tutorial 05 then hold nothing that `sigma` does not use. A freshly made layer:

# %%
fresh = AdaptiveConv2d(1, 8, 3, rng=np.random.default_rng(0), dtype=np.float64)
S_fresh, A_fresh = symmetric_antisymmetric(fresh.Q.data)
print(f"fresh AdaptiveConv2d: ||antisymmetric part of Q|| = {np.linalg.norm(A_fresh):.1e}, "
      f"||symmetric part|| = {np.linalg.norm(S_fresh):.1e}")

# %% [markdown]
# Since only `S` matters, the clearest way to read the quadratic form is through `S`'s
# **eigenvalues**. A symmetric matrix has real eigenvalues `lambda_i` and orthonormal
# eigenvectors `v_i` (`np.linalg.eigh` computes them), with `S = sum_i lambda_i v_i v_i^T`.
# Put that into the quadratic form:
#
#     p^T Q p = p^T S p = sum_i lambda_i (v_i . p)^2
#
# Each `v_i` is a filter the size of a patch, and the layer adds up the *squares* of
# their responses, weighted by `lambda_i`: a positive `lambda_i` raises `sigma` for
# patches that look like `v_i` (or like `-v_i`), a negative one lowers it. With
# eigenvalues of both signs, `sigma` can grow either way (section 6). Tutorial 05 draws
# these eigen-filters for a trained layer. Checked at the location above:

# %%
eigenvalues, V = np.linalg.eigh((Q[o] + Q[o].T) / 2)              # ascending; columns of V are the v_i
print(f"channel {o}, location ({i}, {j}):  p^T Q p = {p @ Q[o] @ p:.6f}, "
      f"sum_i lambda_i (v_i . p)^2 = {np.sum(eigenvalues * (V.T @ p) ** 2):.6f}")
print(f"eigenvalues of the symmetric part of Q_{o}: {eigenvalues}")

# %% [markdown]
# ## 4. The parallel form: im2col and one matrix product
#
# Looping over locations in Python is slow (tutorial 02). Stack the patches as rows:
# `P = im2col(x)`, shape `(R, D)` with `R = N*Ho*Wo`. For channel `o`:
#
#     Z = P Q_o^T                     (R, D)   row r is Q_o p_r: every dynamic kernel at once, minus w_o
#     sigma = rowsum(Z * P) + P w_o + b_o     (R,)   rowsum(Z * P)[r] = (Q_o p_r) . p_r = p_r^T Q_o p_r
#
# For all channels at once, stack the `Q_o` into one `(O*D, D)` matrix `Qs`: then
# `Z = P Qs^T`, `(R, O*D)`, holds every dynamic kernel of every channel, and the main
# work is that one large matrix product. `adaptive_conv2d_reference` in `adaptive.py`
# is exactly this, written to be read. `adaptive_conv2d`, the one the layer uses, is
# the same formulas made cache-friendly: it computes them on transposes (`Z^T = Qs P^T`,
# because im2col stores `P^T` contiguously, tutorial 02) and in blocks of locations, so
# that the large `Z` never exists whole (its module docstring explains why that is
# faster). Like the loops, both return `sigma` `(N, O, Ho, Wo)`, not `tanh(sigma)`.
# Below, the per-channel loop by hand, then both functions, against the loops:

# %%
P = F.im2col(x, m)                                                # (R, D)
R = P.shape[0]
sigma_cols = np.empty((R, O))
for o in range(O):
    Z = P @ Q[o].T                                                # (R, D)
    sigma_cols[:, o] = (Z * P).sum(axis=1) + P @ w[o] + b[o]      # (R,)
Ho, Wo = sigma_loops.shape[2:]
sigma_by_hand = sigma_cols.reshape(1, Ho, Wo, O).transpose(0, 3, 1, 2)   # (N, O, Ho, Wo)

sigma_reference = adaptive_conv2d_reference(x, Q, w, b).data
sigma_engine = F.adaptive_conv2d(x, Q, w, b).data
print(f"P {P.shape}, Z {Z.shape}, sigma {sigma_by_hand.shape}")
print(f"max |by hand - loops|                    = {np.abs(sigma_by_hand - sigma_loops).max():.1e}")
print(f"max |adaptive_conv2d_reference - loops|  = {np.abs(sigma_reference - sigma_loops).max():.1e}")
print(f"max |adaptive_conv2d - loops|            = {np.abs(sigma_engine - sigma_loops).max():.1e}")
kernels_engine = F.adaptive_kernels(x, Q, w)
print(f"max |adaptive_kernels - loops|           = {np.abs(kernels_engine - kernels).max():.1e}  "
      f"(the kernels alone, without applying them: what the figures draw)")

# %% [markdown]
# The same speed question as in tutorial 02, on MNIST-sized images with a layer of the
# shape of `adaptive-lenet`'s first (1 channel in, 8 out, 3x3; fresh weights: the time
# does not depend on their values). The times depend on your machine and on what
# else it is doing; `python -m ack_numpy bench` times `adaptive_conv2d` at training sizes.

# %%
n_images = 2 if QUICK else 8
x_t = rng.normal(size=(n_images, 1, 28, 28))
layer_t = AdaptiveConv2d(1, 8, 3, rng=np.random.default_rng(0), dtype=np.float64)
Q_t, w_t, b_t = layer_t.Q.data, layer_t.w.data, layer_t.b.data
start = time.perf_counter()
slow = F.adaptive_conv2d_loops(x_t, Q_t, w_t, b_t)
t_loops = time.perf_counter() - start
t_im2col = {}
for fn in (adaptive_conv2d_reference, F.adaptive_conv2d):
    times = []
    for _ in range(10):
        start = time.perf_counter()
        with no_grad():
            fast = fn(x_t, Q_t, w_t, b_t).data
        times.append(time.perf_counter() - start)
    t_im2col[fn.__name__] = min(times)
    print(f"x {x_t.shape}, Q {Q_t.shape}: {fn.__name__:25s} {min(times) * 1e3:6.2f} ms "
          f"({t_loops / min(times):.0f}x faster than the loops, {t_loops * 1e3:.0f} ms), "
          f"max difference {np.abs(fast - slow).max():.1e}")

# %% [markdown]
# ## 5. The gradients
#
# Write `sigma` with indices, for one location (drop the channel index):
#
#     sigma = sum_ij p_i Q_ij p_j + sum_i w_i p_i + b
#
# Differentiate term by term:
#
#     d sigma / d Q_ij = p_i p_j          ->  d sigma / d Q = p p^T        (D, D)
#     d sigma / d w    = p                                                 (D,)
#     d sigma / d b    = 1
#     d sigma / d p_k  = sum_j Q_kj p_j + sum_i p_i Q_ik + w_k
#                      ->  d sigma / d p = (Q + Q^T) p + w                 (D,)
#
# The last line is worth a second look: it equals `k + Q^T p`. If the kernel were a
# constant, the gradient would be the kernel `k` itself (as in an ordinary
# convolution); the extra `Q^T p` is there because the kernel moves with the patch.
#
# First, these four formulas at one location, against central differences (tutorial 01,
# section 4). `numerical_grad(f, arrays, index)` from `ack_numpy/gradcheck.py` nudges
# each entry of `arrays[index]` by `+-eps` and returns `(f(+) - f(-)) / (2 eps)`:

# %%
o = 0
p = x[0, :, 2 : 2 + m, 5 : 5 + m].reshape(D).copy()
Qo, wo, bo = Q[o].copy(), w[o].copy(), np.array(b[o])


def sigma_of(p_, Q_, w_, b_) -> float:
    return float(p_ @ Q_ @ p_ + w_ @ p_ + b_)


at_one_location = [p, Qo, wo, bo]
formulas = {   # name: (formula, position of the variable in at_one_location)
    "Q (p p^T)": (np.outer(p, p), 1),
    "w (p)": (p, 2),
    "b (1)": (1.0, 3),
    "p ((Q+Q^T)p + w)": ((Qo + Qo.T) @ p + wo, 0),
}
for name, (formula, position) in formulas.items():
    numeric = numerical_grad(sigma_of, at_one_location, position)
    print(f"d sigma / d {name:18s} max |formula - finite difference| = {np.max(np.abs(formula - numeric)):.1e}")

# %% [markdown]
# For a whole batch the loss depends on `sigma` at every location; with
# `g[r, o] = dL/dsigma_o(r)`, the chain rule sums the per-location formulas:
#
#     dQ_o = sum_r g[r, o] p_r p_r^T          (D, D)
#     dw_o = sum_r g[r, o] p_r                (D,)
#     db_o = sum_r g[r, o]
#     dP[r] = sum_o g[r, o] ((Q_o + Q_o^T) p_r + w_o)   then  dx = col2im(dP)  (tutorial 02)
#
# These four lines, one number at a time, are `adaptive_conv2d_backward_loops` in
# `adaptive.py`, the loop twin of the backward: for every image, channel and output
# pixel it takes `g`, cuts out the same patch `p` as the forward, and adds
# `g p[d] p[e]` to `dQ[o, d, e]`, `g p[d]` to `dw[o, d]`, `g` to `db[o]`, and
# `g ((Q_o p)[k] + (Q_o^T p)[k] + w_o[k])` to the *pixel* that patch element `k` was
# copied from: a pixel that sat in 9 patches collects 9 contributions, which is exactly
# what `col2im` does (tutorial 02, section 5). Read it beside `adaptive_conv2d_loops`.
#
# The engine computes the same sums as matrix products. In the `_backward` of
# `adaptive_conv2d_reference`, with `G` the matrix of the `g[r, o]`, `(R, O)`, and
# `GP[r, (o, d)] = G[r, o] P[r, d]`, `(R, O*D)`, the first line for all channels is
# `dQ = GP^T P` and the last is `dP = GP Ss + G w` (`Ss` stacks the `Q_o + Q_o^T`): two
# large matrix products that share `GP`. `adaptive_conv2d` computes the same two products
# on transposes, block by block.
#
# We check all three on a small float64 problem with stride 2 and padding 1 (tutorial
# 02). The loss is `L = sum(sigma * Rw)` with fixed random weights `Rw`, so that every
# output gets a different weight and `dL/dsigma = Rw`. First the two im2col versions
# against the literal loop backward; then the literal backward against central
# differences of the loss computed by the literal *forward* loop, for every entry of `x`,
# `Q`, `w` and `b`, so that this check depends on no matrix product at all.

# %%
xs, Qs, ws, bs = (rng.normal(size=shape) for shape in [(2, 2, 5, 5), (3, 18, 18), (3, 18), (3,)])
stride, padding = 2, 1
Rw = rng.normal(size=F.adaptive_conv2d(xs, Qs, ws, bs, stride, padding).shape)    # dL/dsigma, (N, O, Ho, Wo)
values = [xs, Qs, ws, bs]
literal = adaptive_conv2d_backward_loops(xs, Qs, ws, bs, Rw, stride, padding)      # dx, dQ, dw, db

print("max |engine - literal loop backward|:")
for fn in (adaptive_conv2d_reference, F.adaptive_conv2d):
    tensors = [Tensor(v, requires_grad=True) for v in values]
    (fn(*tensors, stride=stride, padding=padding) * Tensor(Rw)).sum().backward()
    print(f"  {fn.__name__:26s}" + "  ".join(f"d{name} {np.abs(t.grad - mine).max():.1e}"
                                            for name, t, mine in zip("xQwb", tensors, literal)))


def loss_of(*values_) -> float:
    """L = sum(sigma * Rw), sigma from the literal forward loop."""
    return float(np.sum(F.adaptive_conv2d_loops(*values_, stride=stride, padding=padding) * Rw))


print("max |literal backward - finite difference| / max |gradient|  (finite differences of the literal forward):")
for position, name in enumerate("xQwb"):
    numeric = numerical_grad(loss_of, values, position)
    print(f"  dL/d{name} {str(values[position].shape):13s} {np.abs(literal[position] - numeric).max() / np.abs(numeric).max():.1e}")

# %% [markdown]
# The tests run this kind of check for every differentiable operation of the package,
# with one public function, `grad_check(op, *arrays)` in `ack_numpy/gradcheck.py`: it
# builds `L = sum(op(*inputs) * R)` for a fixed random `R`, compares the backward with
# central differences in float64, raises an `AssertionError` naming the input on a
# mismatch, and returns the largest error per input. On `adaptive_conv2d`:

# %%
errors = grad_check(lambda *t: F.adaptive_conv2d(*t, stride=stride, padding=padding), xs, Qs, ws, bs)
print("grad_check(adaptive_conv2d): max |backward - finite difference| per input:",
      {"xQwb"[k]: f"{e:.1e}" for k, e in errors.items()})

# %% [markdown]
# ## 6. Why tanh?
#
# `sigma` is quadratic in the patch. Scale the patch by `s` and
#
#     sigma(s p) = s^2 p^T Q p + s w . p + b
#
# The quadratic term grows like `s^2`, and its sign is the sign of `p^T Q p`, which
# differs from patch to patch when the symmetric part of `Q` has eigenvalues of both
# signs (section 3; printed below for channel 0). So a brighter or higher-contrast patch
# can make `sigma` very large, positive for some patches and negative for others.
# Passed on to the next layer unbounded, such values would make training unstable.
# `tanh` keeps every output in `(-1, 1)`, and it is the nonlinearity the layer applies by
# default (`activation="tanh"` in `AdaptiveConv2d`).
#
# The plot takes the two (channel, patch) pairs of the ring image with the largest and
# the most negative `p^T Q_o p`, and scales each patch by `s` from 0 to 3. Pixel values
# stay non-negative, as in MNIST; `s = 1` is the patch as it is (values up to 1, MNIST's
# range) and `s > 1` stands for a brighter, higher-contrast input, or for a layer deeper
# in a network, whose inputs are not limited to `[0, 1]`.

# %%
for o in range(O):
    eigenvalues = np.linalg.eigvalsh((Q[o] + Q[o].T) / 2)
    print(f"eigenvalues of the symmetric part of Q_{o}: from {eigenvalues.min():.2f} to {eigenvalues.max():.2f}")
ring_patches = F.im2col(x, m)                                                     # (R, D)
quadratic_at = np.einsum("rd,ode,re->ro", ring_patches, Q, ring_patches)           # p^T Q_o p   (R, O)
s = np.linspace(0, 3, 121)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.9), sharey=True, layout="constrained")
for ax, flat_index, kind in zip(axes, (quadratic_at.argmax(), quadratic_at.argmin()), ("positive", "negative")):
    r, o = np.unravel_index(flat_index, quadratic_at.shape)
    p0 = ring_patches[r]
    quadratic, linear = s**2 * (p0 @ Q[o] @ p0), s * (w[o] @ p0)
    sigma_s = quadratic + linear + b[o]
    location = divmod(int(r), sigma_loops.shape[3])
    print(f"channel {o}, patch at {location} (p^T Q p = {p0 @ Q[o] @ p0:+.2f}): along s in [0, 3] sigma goes from "
          f"{sigma_s[0]:+.2f} to {sigma_s[-1]:+.2f}, tanh(sigma) from {np.tanh(sigma_s[0]):+.3f} to {np.tanh(sigma_s[-1]):+.3f}")
    ax.plot(s, linear, label="w . (s p)   linear part", linestyle="--")
    ax.plot(s, quadratic, label="(s p)^T Q (s p)   quadratic part", linestyle="--")
    ax.plot(s, sigma_s, label="sigma", linewidth=2)
    ax.plot(s, np.tanh(sigma_s), label="tanh(sigma)   the layer's output", linewidth=2)
    ax.axhline(0, color="gray", linewidth=0.8)
    ax.axvline(1, color="gray", linewidth=0.8, linestyle=":")
    ax.set_xlabel("scale s of the patch (1 = as in the image)")
    ax.set_title(f"channel {o}, patch at {location}: p^T Q_{o} p {kind}")
    ax.grid(alpha=0.3)
axes[0].legend(fontsize=8)
fig.suptitle("Two patches, scaled: the quadratic term takes over, with either sign; tanh bounds it", fontsize=10)
save(fig, "03_why_tanh.png")

# %% [markdown]
# The other side of the same coin: tanh *saturates*. Where `|sigma|` is large its slope
# `1 - tanh^2` is nearly 0 and almost no gradient gets through. That is why
# `AdaptiveConv2d` starts with a **small** `Q` (symmetric, section 3: `Q = (M + M^T)/2`
# with `M` uniform in `+-q_scale/D` and a small default `q_scale`, printed below; see its
# docstring) and an ordinary-sized `w`: at initialisation
# the layer behaves almost like an ordinary convolution, and the quadratic part grows
# only as far as training finds useful. We measure the two parts of `sigma` for a
# freshly initialised first layer of `adaptive-lenet` on random patches with
# `|p|^2 ~ D`:

# %%
first = AdaptiveConv2d(1, 8, 3, rng=np.random.default_rng(0), dtype=np.float64)
patches = rng.normal(size=(2000, 9))                                 # (R, D), |p|^2 ~ D on average
quad = np.einsum("rd,ode,re->ro", patches, first.Q.data, patches)   # p^T Q_o p   (R, O)
lin = patches @ first.w.data.T                                      # w_o . p     (R, O)
print(f"at initialisation (q_scale = {first.q_scale}): std of p^T Q p = {quad.std():.3f}, "
      f"std of w . p = {lin.std():.3f} (ratio {quad.std() / lin.std():.2f})")

# %% [markdown]
# ## 7. What it costs: `D^2` parameters per output channel
#
# An ordinary output channel has `D + 1` parameters (`w_o`, `b_o`). An adaptive one adds
# `Q_o`, a `D x D` matrix: `D^2 + D + 1`. Since `D = C*m*m`, the cost grows with the
# **square** of the number of input channels and the **fourth power** of the kernel
# size. The table computes it for a few layer shapes (and checks the formula against
# the layer's own `num_parameters()`); the last column is how many such channels fit in
# the paper's whole budget of LeNet / 66 parameters.

# %%
print(f"LeNet has {LENET_PARAMETERS:,} parameters; the paper's budget is LeNet / 66 = {PAPER_BUDGET:,}\n")
header = (f"{'C':>3} {'m':>3} {'D=C*m*m':>8} {'ordinary D+1':>13} {'adaptive D^2+D+1':>17} "
          f"{'ratio':>7} {'adaptive channels in budget':>28}")
print(header)
print("-" * len(header))
rows = []
for C_ in (1, 8, 20):
    for m_ in (3, 5):
        D_ = C_ * m_ * m_
        ordinary, adaptive = D_ + 1, D_ * D_ + D_ + 1
        assert adaptive == AdaptiveConv2d(C_, 1, m_, rng=np.random.default_rng(0)).num_parameters()
        assert ordinary == Conv2d(C_, 1, m_, rng=np.random.default_rng(0)).num_parameters()
        rows.append((C_, m_, D_, ordinary, adaptive))
        print(f"{C_:>3} {m_:>3} {D_:>8} {ordinary:>13,} {adaptive:>17,} {adaptive / ordinary:>6.0f}x "
              f"{PAPER_BUDGET // adaptive:>28}")

# %% [markdown]
# Read the table from top to bottom: in the first layer of an MNIST network the input
# has one channel and a 3x3 adaptive channel is cheap; after a layer with 8 or 20
# channels, a single adaptive channel takes a large part of the budget, or more than all
# of it (a 0 in the last column). The last row is the place of LeNet's second
# convolution (20 input channels, 5x5):

# %%
lenet_conv2 = build_model("lenet").features[2]                    # Conv2d(20, 50, kernel_size=5)
print("LeNet's second convolution:", lenet_conv2)
one_channel = rows[-1][4]
print(f"one adaptive output channel in its place: {one_channel:,} parameters, "
      f"{one_channel / LENET_PARAMETERS:.0%} of all of LeNet; the layer has {lenet_conv2.out_channels} of them")

# %% [markdown]
#
# That is the design decision in `ack_numpy/models.py` (read the `AdaptiveLeNet`
# docstring): **make the first layer adaptive**, where `C = 1`, and spend the rest of
# the budget on ordinary layers. Here is where `adaptive-lenet`'s parameters go:

# %%
model = build_model("adaptive-lenet", seed=0)
for name, param in model.named_parameters():
    print(f"  {name:20s} {str(param.shape):14s} {param.size:>6,}")
print(f"  {'total':20s} {'':14s} {model.num_parameters():>6,}  "
      f"(LeNet / this = {LENET_PARAMETERS / model.num_parameters():.1f}; budget {PAPER_BUDGET:,})")
# Q stays symmetric (section 3), so of each D x D block only D*(D+1)/2 numbers are free.
Q = model.features[0].Q
mirrors = Q.shape[0] * (Q.shape[1] * Q.shape[2] - Q.shape[1] * (Q.shape[1] + 1) // 2)
print(f"  of these, {mirrors:,} are mirror entries of a symmetric Q: "
      f"{model.num_parameters() - mirrors:,} free numbers")

# %%
labels = [f"C={c}\nm={m_}" for c, m_, *_ in rows]
fig, ax = plt.subplots(figsize=(7, 3.8))
positions = np.arange(len(rows))
# Points, not bars: on a log scale the length of a bar means nothing, the height of a point does.
for column, label, marker in ((3, "ordinary channel: D + 1", "o"), (4, "adaptive channel: D^2 + D + 1", "s")):
    counts = [r[column] for r in rows]
    ax.plot(positions, counts, marker=marker, linestyle="none", markersize=8, label=label)
    for position, count in zip(positions, counts):
        ax.annotate(f"{count:,}", (position, count), textcoords="offset points", xytext=(9, -3), fontsize=7)
ax.axhline(PAPER_BUDGET, color="black", linestyle="--", linewidth=1, label=f"whole budget: LeNet / 66 = {PAPER_BUDGET:,}")
ax.set_yscale("log")
ax.set_xlim(-0.5, len(rows) - 0.2)
ax.set_xticks(positions, labels)
ax.set_ylabel("parameters per output channel")
ax.set_title("Cost of one output channel (log scale)")
ax.legend(fontsize=8)
save(fig, "03_parameter_cost.png")

# %% [markdown]
# **What we saw:** the adaptive kernel `k = Q p + w` is a bank of linear filters (rows of
# `Q`) whose responses form the kernel; applied to the same patch it gives the quadratic
# form `p^T Q p + w . p + b`, of which only the symmetric part of `Q` matters (the
# antisymmetric part never affects `sigma` and never trains, so the layer starts `Q`
# symmetric), a signed sum of squared eigen-filter responses; the literal loop, the
# plain and the fast im2col versions and the gradients `p p^T` and `(Q + Q^T) p + w`
# agree with each other and with finite differences; tanh bounds the quadratic; and the
# `D^2` cost puts adaptive layers where `C` is small: first.
#
# Next: `04_train_mnist.py` trains LeNet and `adaptive-lenet` on MNIST.

# %% [markdown]
# ## 8. Exercises
#
# 1. `adaptive_kernel(p, Q_o, w_o)`: the adaptive kernel of one patch.
# 2. `dsigma_dp(p, Q_o, w_o)`: derive `d sigma / d p` on paper, write the formula, and let
#    the checker compare it with finite differences (with a `Q_o` that is *not* symmetric).
# 3. `most_adapted_location(x, Q, w, o)`: the location whose kernel differs most from
#    `w_o`. Before you run anything, predict: would making `Q` antisymmetric change the
#    answer? (It would change every kernel but no `sigma`: section 3.)
#
# Write your answers in `tutorials/exercises/ex03.py` (each function raises
# `NotImplementedError` until you do), then run
#
#     python tutorials/check.py 03
#
# It says, exercise by exercise, right or wrong with a hint. The reference solutions are
# in `tutorials/solutions/ex03.py`; look after trying.
