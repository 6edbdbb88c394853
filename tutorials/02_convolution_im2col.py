# %% [markdown]
# # 02 · Convolution: loops, then im2col and one matrix product
#
# A convolution layer slides a small kernel over the image and takes a dot product at
# every position. Written as loops it is easy to read and very slow in Python. The
# trick every NumPy (and many GPU) implementations use is **im2col**: copy every patch
# the kernel will look at into one row of a matrix, and the whole convolution becomes
# a single matrix product, which NumPy hands to an optimised BLAS library.
#
# In this tutorial we
# 1. write out the convolution as loops (`conv2d_loops`),
# 2. build the patch matrix with `im2col` and see the convolution become `P @ W^T`,
# 3. check that the two agree and time both on the same input,
# 4. see where `col2im` (used by the backward pass) comes from: it is the *transpose*
#    of im2col, and we check `<im2col(x), Y> = <x, col2im(Y)>`.
#
# The code we read: `ack_numpy/functional/im2col.py` (im2col, col2im) and
# `ack_numpy/functional/conv.py` (conv2d, conv2d_reference, conv2d_loops). Tutorial 03 reuses all of it
# for the adaptive kernel, so this is the foundation.
#
# This script is the source of the notebook beside it, `02_convolution_im2col.ipynb`,
# which `python tutorials/make_notebooks.py 02` makes with the outputs of a full run:
# edit the script, not the notebook.

# %% Setup: quick mode (ACK_QUICK=1), where figures go, and the package (see tutorial_setup.py).
import time

import matplotlib.pyplot as plt
import numpy as np
from tutorial_setup import OUT, QUICK, ROOT, save  # quick mode, figure folder, this checkout's package

import ack_numpy.functional as F
from ack_numpy import Tensor, no_grad
from ack_numpy.functional.conv import im2col_batch_last  # conv2d's own copy, (i, j, n) order (section 4)

np.set_printoptions(precision=3, suppress=True, linewidth=110)
rng = np.random.default_rng(0)
print("project root:", ROOT, "| quick mode:", QUICK, "| figures go to:", OUT)

# %% [markdown]
# ## 1. The definition, as loops
#
# Shapes, as everywhere in this project: images `x: (N, C, H, W)` (batch, channels,
# height, width), kernels `weight: (O, C, m, m)` (O output channels, each an m x m
# kernel over all C input channels), bias `b: (O,)`. Without padding and with
# stride 1,
#
#     y[n, o, i, j] = b[o] + sum over c, u, v of  weight[o, c, u, v] * x[n, c, i+u, j+v]
#
# for every output position `(i, j)`; there are `Ho = H - m + 1` of them per axis.
# (Like every deep-learning library, this is a cross-correlation: the kernel is not
# flipped.) `conv2d_loops` in `conv.py` is this formula, one output number at a time.
#
# A tiny example: a 5x5 image with the values 0..24, and a 3x3 kernel that subtracts
# the left column from the right one (a horizontal-gradient detector). The image grows
# at the same rate everywhere from left to right, so every output is the same number.

# %%
x_small = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)  # (N=1, C=1, 5, 5)
kernel = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=np.float64).reshape(1, 1, 3, 3)
print("x:\n", x_small[0, 0])
print("kernel:\n", kernel[0, 0])

y_loops = F.conv2d_loops(x_small, kernel)
print("y = conv2d_loops(x, kernel), shape", y_loops.shape, "\n", y_loops[0, 0])

i, j = 1, 2  # one output position, by hand
patch = x_small[0, 0, i : i + 3, j : j + 3]
print(f"by hand at (i, j) = ({i}, {j}): sum(patch * kernel) = {np.sum(patch * kernel[0, 0])}")

# %% [markdown]
# ## 2. im2col: every patch becomes a row
#
# `im2col(x, m)` copies the patch under each output position into one row of a matrix
# `P` of shape `(N*Ho*Wo, C*m*m)`:
#
# * row `r` is the output position `(n, i, j)`, in that order (image, then row, then column),
# * the columns are the patch flattened in `(c, u, v)` order (channel, kernel row, kernel column).
#
# We call the row length `D = C*m*m`; it comes back in tutorial 03.

# %%
P = F.im2col(x_small, kernel_size=3)
print("P = im2col(x, 3): shape", P.shape, "= (N*Ho*Wo, C*m*m)")
print(P)
r = i * 3 + j  # row of output position (i, j) of image 0: Ho = Wo = 3
print(f"row {r} is the patch under output ({i}, {j}), flattened:", P[r])
print("same as patch.reshape(-1):", np.array_equal(P[r], patch.reshape(-1)))

# %% [markdown]
# Most pixels are copied several times (the patches overlap): `P` has more numbers
# than `x`. The implementation in `im2col.py` builds a *view* of all windows with
# `numpy.lib.stride_tricks.sliding_window_view` (no copy), then copies them once, but
# not row by row: it stores `P` column by column, as the contiguous array `P^T`
# `(D, N*Ho*Wo)`, and returns its transposed view. Column `(c, u, v)` of `P` is channel
# `c` of every image shifted by `(u, v)`, so building `P^T` is `D` copies of whole
# shifted images, which is faster. The values are exactly the rows described above;
# only the memory layout differs (the "Memory layout" paragraph of the module docstring
# of `im2col.py`, and the check below). `im2col_loops` beside it is the literal loop
# over patches, kept as a reference for the tests.
#
# With more channels the column order matters, so here are the column labels for
# `C = 2` channels and `m = 2`:

# %%
C_demo, m_demo = 2, 2
labels = [f"(c={c},u={u},v={v})" for c in range(C_demo) for u in range(m_demo) for v in range(m_demo)]
print(f"columns of im2col for C={C_demo}, m={m_demo} (D = {len(labels)}):", " ".join(labels))
P_demo = F.im2col(np.arange(C_demo * 16.0).reshape(1, C_demo, 4, 4), m_demo)
print(f"P {P_demo.shape} is a view of a contiguous P^T {P_demo.T.shape}: "
      f"P.T contiguous {P_demo.T.flags['C_CONTIGUOUS']}, P contiguous {P_demo.flags['C_CONTIGUOUS']}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1, 1.9]})
axes[0].imshow(x_small[0, 0], cmap="viridis")
axes[0].add_patch(plt.Rectangle((j - 0.5, i - 0.5), 3, 3, fill=False, edgecolor="red", linewidth=3))
for (row, col), v in np.ndenumerate(x_small[0, 0]):
    axes[0].text(col, row, int(v), ha="center", va="center", color="white", fontsize=8)
axes[0].set_title(f"x (5x5), patch under output ({i}, {j})")
axes[1].imshow(P, cmap="viridis", aspect="auto")
axes[1].add_patch(plt.Rectangle((-0.5, r - 0.5), P.shape[1], 1, fill=False, edgecolor="red", linewidth=3))
axes[1].set_title(f"P = im2col(x): {P.shape[0]} rows (output positions) x {P.shape[1]} columns (patch)")
axes[1].set_xlabel("patch element (c, u, v)")
axes[1].set_ylabel("output position (n, i, j)")
save(fig, "02_im2col.png")

# %% [markdown]
# ### Two more settings: stride and padding
#
# The **stride** `s` is how far the kernel moves between neighbouring outputs: with
# stride 2 it skips every other position, and the output is about half as wide. The
# **padding** adds that many rows and columns of zeros on every side of the image before
# the patches are cut, so that the kernel can also sit over the border pixels. Together,
# output `(i, j)` reads the patch starting at `(i*s, j*s)` of the padded image, and
#
#     Ho = (H + 2*padding - m) // stride + 1          (the same for Wo)
#
# (`conv_output_size` in `im2col.py`). With stride 1 and padding 0 this is the
# `H - m + 1` of section 1. The next section uses stride 2 and padding 1:

# %%
for H_, m_, s_, p_ in [(5, 3, 1, 0), (7, 3, 1, 0), (7, 3, 2, 0), (7, 3, 2, 1)]:
    print(f"H = {H_}, m = {m_}, stride = {s_}, padding = {p_}:  Ho = ({H_} + 2*{p_} - {m_}) // {s_} + 1 "
          f"= {F.conv_output_size(H_, m_, s_, p_)}")

# %% [markdown]
# ## 3. The convolution is one matrix product
#
# Flatten each kernel into a row too, `Wf = weight.reshape(O, D)` (also `(c, u, v)`
# order). Then every output number is a row of `P` dotted with a row of `Wf`, which is
# exactly a matrix product:
#
#     Y = P @ Wf^T + b         (N*Ho*Wo, D) @ (D, O)  ->  (N*Ho*Wo, O)
#
# and a reshape + transpose puts `Y` back into image layout `(N, O, Ho, Wo)`. That is
# `conv2d_reference` in `conv.py`, line for line. `conv2d`, the one the layers use,
# computes the same product transposed,
# `Y^T = Wf P^T`, because im2col stores `P^T` contiguously (and a matrix product costs
# the same either way round); it also orders the locations `(i, j, n)` (its own copy,
# `im2col_batch_last` at the end of `conv.py`), which makes the copies faster on layers
# with many channels, and puts the output back in `(N, O, Ho, Wo)`. The module docstring
# of `conv.py` explains both. Let us do it the
# plain way, by hand, on a random batch with several channels, stride 2 and padding 1,
# and compare with `conv2d_loops` and `conv2d`.

# %%
N, C, H, W, O, m, stride, padding = 2, 3, 7, 7, 4, 3, 2, 1
x = rng.normal(size=(N, C, H, W))
weight = rng.normal(size=(O, C, m, m))
b = rng.normal(size=O)
Ho = F.conv_output_size(H, m, stride, padding)  # (H + 2*padding - m) // stride + 1
Wo = F.conv_output_size(W, m, stride, padding)

P = F.im2col(x, m, stride, padding)                          # (N*Ho*Wo, D)
Wf = weight.reshape(O, -1)                                   # (O, D)
Y = P @ Wf.T + b                                             # (N*Ho*Wo, O)
y_by_hand = Y.reshape(N, Ho, Wo, O).transpose(0, 3, 1, 2)    # (N, O, Ho, Wo)

y_loops = F.conv2d_loops(x, weight, b, stride, padding)
y_engine = F.conv2d(x, weight, b, stride, padding).data
print(f"P {P.shape}, Wf {Wf.shape}, Y {Y.shape} -> y {y_by_hand.shape}")
print(f"max |by hand - loops|  = {np.abs(y_by_hand - y_loops).max():.2e}")
print(f"max |conv2d  - loops|  = {np.abs(y_engine - y_loops).max():.2e}")

# %% [markdown]
# ## 4. How much faster?
#
# The same input for both: a batch of 28x28 images (MNIST size) with 3 channels and
# 8 output channels of 5x5 kernels. The loop version does one small NumPy call per
# output number; the im2col version does one copy and one large matrix product.
# To see where `conv2d`'s time goes, we also time its steps one by one, *exactly as it
# runs them* (section 3): the copy `im2col_batch_last(x)` (locations in `(i, j, n)`
# order), the product `Wf @ P^T` on that layout, and the rest (adding the bias, putting
# the output back in `(N, O, Ho, Wo)` order). Each time is the fastest of 20 runs (the
# loops, much slower, run once). On a
# quiet machine the three parts add up to about the whole, not exactly (what is left is
# the argument checks and building the output Tensor); on a busy one, other programs take
# the CPU while some parts are timed and not others, the sum can be far from the whole,
# and the script says so when that happened. (The times depend on your machine and on
# what else it is doing.)

# %%
def best_time(fn, repeats: int) -> float:
    """The fastest of `repeats` runs, in seconds (the least disturbed by other programs)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


N_t = 4 if QUICK else 32
x_t = rng.normal(size=(N_t, 3, 28, 28)).astype(np.float32)
w_t = rng.normal(size=(8, 3, 5, 5)).astype(np.float32)
b_t = rng.normal(size=8).astype(np.float32)

with no_grad():
    t_loops = best_time(lambda: F.conv2d_loops(x_t, w_t, b_t), repeats=1)
    t_im2col = best_time(lambda: F.conv2d(x_t, w_t, b_t), repeats=20)
    agree = np.abs(F.conv2d(x_t, w_t, b_t).data - F.conv2d_loops(x_t, w_t, b_t)).max()
# conv2d's steps, as conv2d runs them (see conv2d in conv.py)
PT_t = im2col_batch_last(x_t, 5)                              # P^T (D, R), locations in (i, j, n) order
Wf_t = w_t.reshape(8, -1)                                     # (O, D)
YT_t = Wf_t @ PT_t                                            # Y^T (O, R)
t_copy = best_time(lambda: im2col_batch_last(x_t, 5), repeats=20)
t_product = best_time(lambda: Wf_t @ PT_t, repeats=20)
t_rest = best_time(lambda: np.ascontiguousarray((YT_t + b_t[:, None]).reshape(8, 24, 24, N_t).transpose(3, 0, 1, 2)),
                   repeats=20)

print(f"input x {x_t.shape}, weight {w_t.shape}, output {(N_t, 8, 24, 24)}; P^T = im2col(x).T is {PT_t.shape}")
print(f"conv2d_loops: {t_loops * 1e3:9.2f} ms")
print(f"conv2d      : {t_im2col * 1e3:9.2f} ms   ({t_loops / t_im2col:.0f}x faster)")
print(f"   its steps, timed one by one: im2col copy {t_copy * 1e3:.2f} ms + product Wf @ P^T {t_product * 1e3:.2f} ms "
      f"+ bias and output layout {t_rest * 1e3:.2f} ms = {(t_copy + t_product + t_rest) * 1e3:.2f} ms")
parts = t_copy + t_product + t_rest
if not 0.75 <= parts / t_im2col <= 1.33:  # beyond what the argument checks and the Tensor cost
    print(f"   here the steps add up to {parts / t_im2col:.1f}x the whole: other programs took the CPU while "
          f"some of them were timed; run the cell again to compare")
print(f"largest difference between the two outputs: {agree:.1e} (float32 rounding)")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 2.9), gridspec_kw={"width_ratios": [1, 1.3]}, layout="constrained")
# Points on a log axis (a bar's length would mean nothing there), each with its value.
names, times = ["conv2d_loops", "conv2d (im2col)"], [t_loops * 1e3, t_im2col * 1e3]
ax1.plot(times, [1, 0], "o", markersize=9, color="tab:blue")
for t, row in zip(times, [1, 0]):
    ax1.annotate(f"{t:.2f} ms", (t, row), textcoords="offset points", xytext=(0, 9), ha="center", fontsize=8)
ax1.set_yticks([1, 0], names)
ax1.set_ylim(-0.6, 1.6)
ax1.set_xscale("log")
ax1.set_xlim(min(times) / 3, max(times) * 3)
ax1.set_xlabel("milliseconds (log scale)")
ax1.set_title(f"{t_loops / t_im2col:.0f}x apart: x {x_t.shape}, weight {w_t.shape}", fontsize=9)
ax1.grid(alpha=0.3, axis="x", which="both")
# conv2d's parts on a linear axis, where lengths add up.
left = 0.0
for label, t, color in [("im2col copy", t_copy, "tab:green"), ("product Wf @ P^T", t_product, "tab:blue"),
                        ("bias + layout", t_rest, "tab:gray")]:
    ax2.barh(1, t * 1e3, left=left, color=color, label=f"{label}: {t * 1e3:.2f} ms")
    left += t * 1e3
ax2.barh(0, t_im2col * 1e3, color="tab:purple", label=f"conv2d as a whole: {t_im2col * 1e3:.2f} ms")
ax2.set_yticks([1, 0], ["its steps, one by one", "conv2d"])
ax2.set_xlabel("milliseconds (linear scale)")
ax2.set_title("Where conv2d's time goes", fontsize=9)
ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
save(fig, "02_timing.png")

# %% [markdown]
# ## 5. Where col2im comes from
#
# For the backward pass we need `dL/dx` given `dL/dP` (the gradient of each *copy*
# of a pixel). Think of im2col as a matrix `A` acting on the flattened image:
# `P.ravel() = A @ x.ravel()`. Each row of `A` holds a single 1 (it copies one pixel),
# or only zeros (a zero of the padding).
# For any linear map, the chain rule says
#
#     dL/dx = A^T dL/dP
#
# and `A^T` does the reverse of copying: it **adds** every copy's gradient back onto
# the pixel it came from. That is `col2im`. A pixel that sat in 9 patches receives the
# sum of 9 gradients. So col2im is not an "inverse" of im2col; it is its *transpose*
# (its adjoint).
#
# On a small example we can build `A` explicitly, one column per pixel (the column for
# pixel k is im2col of the image that is 1 at pixel k and 0 elsewhere):

# %%
shape, m_a, s_a, p_a = (1, 2, 4, 4), 3, 1, 1      # N, C, H, W; kernel 3, stride 1, padding 1
n_pixels = int(np.prod(shape))
columns = []
for k in range(n_pixels):
    e_k = np.zeros(n_pixels)
    e_k[k] = 1.0
    columns.append(F.im2col(e_k.reshape(shape), m_a, s_a, p_a).ravel())
A = np.stack(columns, axis=1)                      # (rows*D, pixels)
print("A:", A.shape, "| entries are 0 or 1:", set(np.unique(A)) <= {0.0, 1.0},
      "| ones per row:", sorted({int(k) for k in A.sum(axis=1)}), "(0: a padding zero, 1: a copied pixel)")

Y_a = rng.normal(size=F.im2col(np.zeros(shape), m_a, s_a, p_a).shape)
via_A = (A.T @ Y_a.ravel()).reshape(shape)
via_col2im = F.col2im(Y_a, shape, m_a, s_a, p_a)
print(f"max |A^T y - col2im(Y)| = {np.abs(via_A - via_col2im).max():.1e}")

# %% [markdown]
# Building `A` is only for seeing it; it would be enormous for real sizes. The test
# that needs no `A` is the definition of the transpose: for *any* `x` and `Y`,
#
#     <im2col(x), Y> = <x, col2im(Y)>          (<a, b> = sum of a * b)

# %%
for shape_k, m_k, s_k, p_k in [((2, 3, 8, 8), 3, 1, 0), ((2, 3, 9, 7), 5, 2, 2)]:
    x_k = rng.normal(size=shape_k)
    Y_k = rng.normal(size=F.im2col(x_k, m_k, s_k, p_k).shape)
    left = np.sum(F.im2col(x_k, m_k, s_k, p_k) * Y_k)
    right = np.sum(x_k * F.col2im(Y_k, shape_k, m_k, s_k, p_k))
    print(f"x {shape_k}, m={m_k}, stride={s_k}, padding={p_k}:  <im2col(x), Y> = {left:+.10f}   "
          f"<x, col2im(Y)> = {right:+.10f}")

# %% [markdown]
# A picture of the adding-up: `col2im` of a matrix of ones counts, for every pixel,
# how many patches it was copied into. With stride 1 the middle pixels are in `m*m`
# patches and the corners in one; with stride 2 the patches overlap less.

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
for ax, s in zip(axes, (1, 2)):
    count = F.col2im(np.ones_like(F.im2col(np.zeros((1, 1, 9, 9)), 3, s)), (1, 1, 9, 9), 3, s)[0, 0]
    im = ax.imshow(count, cmap="magma", vmin=0)
    for (row, col), v in np.ndenumerate(count):
        ax.text(col, row, int(v), ha="center", va="center", color="white" if v < count.max() / 2 else "black", fontsize=8)
    ax.set_title(f"col2im(ones): patches per pixel\n9x9 image, 3x3 kernel, stride {s}")
    ax.axis("off")
save(fig, "02_col2im_overlap.png")

# %% [markdown]
# ## 6. The backward pass of conv2d
#
# With `G = dL/dY` (one row per output position, one column per output channel), the
# product `Y = P Wf^T + b` gives, exactly as for any matrix product (tutorial 01):
#
#     dWf = G^T P       (O, D)    every patch, weighted by the gradient of its output
#     db  = sum over rows of G      (O,)
#     dP  = G Wf        (N*Ho*Wo, D)   then   dx = col2im(dP)
#
# The `_backward` of `conv2d_reference` in `conv.py` is these three lines as written.
# The `_backward` of `conv2d` computes them transposed, as
# its forward does (`dWf = G^T P` from `G^T` and `P^T`, `dP^T = Wf^T G^T`, then col2im),
# with the locations in `(i, j, n)` order; the numbers are the same. We check the engine
# against the plain formulas, and then one entry of `dx` against a finite difference.

# %%
xT, wT, bT = (Tensor(v, requires_grad=True) for v in (x, weight, b))
y = F.conv2d(xT, wT, bT, stride, padding)                     # (N, O, Ho, Wo)
R = rng.normal(size=y.shape)                                  # L = sum(y * R), so dL/dy = R
(y * Tensor(R)).sum().backward()

G = R.transpose(0, 2, 3, 1).reshape(-1, O)                    # (N*Ho*Wo, O), rows in (n, i, j) order
P = F.im2col(x, m, stride, padding)
print(f"dweight: max |engine - G^T P|         = {np.abs(wT.grad - (G.T @ P).reshape(weight.shape)).max():.1e}")
print(f"db:      max |engine - sum_rows G|    = {np.abs(bT.grad - G.sum(axis=0)).max():.1e}")
print(f"dx:      max |engine - col2im(G Wf)|  = {np.abs(xT.grad - F.col2im(G @ Wf, x.shape, m, stride, padding)).max():.1e}")

eps, index = 1e-6, (1, 2, 3, 4)
x_plus, x_minus = x.copy(), x.copy()
x_plus[index] += eps
x_minus[index] -= eps
numeric = (np.sum(F.conv2d_loops(x_plus, weight, b, stride, padding) * R)
           - np.sum(F.conv2d_loops(x_minus, weight, b, stride, padding) * R)) / (2 * eps)
print(f"dL/dx{list(index)}: engine {xT.grad[index]:+.8f}, finite difference on the loop version {numeric:+.8f}")

# %% [markdown]
# **What we saw:** a convolution is a dot product of each patch with each kernel; im2col
# lays the patches out as rows so that all of those dot products are one matrix product
# (same numbers as the loops, much faster; the printed breakdown shows how its time
# splits between the copy and the product); the backward uses the same `P` for the weights and `col2im`,
# the transpose of the copying, for the input.
#
# Next: `03_adaptive_kernels.py`, where the kernel itself is computed from each row of `P`.

# %% [markdown]
# ## Exercises
#
# 1. `patch_row(x, n, i, j, m, stride, padding)`: the row of `im2col` for output position
#    `(n, i, j)`, cut out by hand (padding included).
# 2. `conv2d_by_matmul(x, weight, b, stride, padding)`: the convolution as one matrix
#    product with `F.im2col`, back in `(N, O, Ho, Wo)` layout.
# 3. `copies_per_pixel(H, W, m, stride, padding)`: how many patches contain each pixel
#    (the numbers of `02_col2im_overlap.png`, now with padding too).
#
# Write your answers in `tutorials/exercises/ex02.py` (each function raises
# `NotImplementedError` until you do), then run
#
#     python tutorials/check.py 02
#
# It says, exercise by exercise, right or wrong with a hint. The reference solutions are
# in `tutorials/solutions/ex02.py`; look after trying.
