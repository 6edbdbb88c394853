# %% [markdown]
# # 03 · Adaptive convolutional kernels
#
# This tutorial is the idea of the paper: Zamora Esquivel, Cruz Vargas, Lopez Meyer and
# Tickoo, *Adaptive Convolutional Kernels* (ICCV Workshops 2019).
#
# In an ordinary convolution (tutorial 02), output channel `o` applies **the same**
# kernel `w_o` at every location of the image. In an adaptive convolution the kernel is
# **computed from the patch** it is about to be applied to, so it can be different at
# every location and for every image.
#
# In this tutorial we
# 1. go from a fixed kernel to a kernel computed from the patch, and meet the Q filters,
# 2. run the literal loop that does exactly that, one number at a time,
# 3. see that the layer computes a quadratic form `p^T Q p`, of which only the
#    symmetric part of `Q` matters (and why the layer therefore starts `Q` symmetric),
# 4. write the parallel version with im2col and one large matrix product,
# 5. derive the gradients and check them with finite differences,
# 6. see why the layer ends with tanh,
# 7. count what it costs in parameters, and what that means for where to put it.
#
# The code: `ack_numpy/functional/adaptive.py` (the maths, three times: the literal loop
# `adaptive_conv2d_loops`, the plain im2col form `adaptive_conv2d_reference`, and the fast
# `adaptive_conv2d`) and `ack_numpy/nn/adaptive.py` (the layer `AdaptiveConv2d`).

# %% Setup: quick mode (ACK_QUICK=1), where figures go, and the package (see tutorial_setup.py).
import time

import matplotlib.pyplot as plt
import numpy as np
from tutorial_setup import OUT, QUICK, ROOT, save  # quick mode, figure folder, this checkout's package

import ack_numpy.functional as F
from ack_numpy import Tensor, no_grad
from ack_numpy.functional.adaptive import adaptive_conv2d_reference
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
# ## 2. The literal loop
#
# `adaptive_conv2d_loops` in `adaptive.py` does the equations above one number at a
# time: for each image, output channel and location, it cuts out the patch `p`, builds
# the kernel element by element with `k[e] = Q[o, e, :] . p + w[o, e]`, and applies it.
# Step through it in a debugger if you like; its twin `adaptive_kernels_loops` returns
# every kernel it builds.
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
# applies at each of them, and the static kernel `w_0` they all share. Below, the
# **Q bank** of channel 0: filter `Q_(u,v)` (row `e = (u, v)` of `Q_0`, drawn as a 3x3
# filter) is what computes kernel element `(u, v)`. Tutorial 05 draws the same pictures
# for a trained network.

# %%
fig, axes = plt.subplots(1, 5, figsize=(13, 2.9))
axes[0].imshow(ring, cmap="gray")
colors = ["tab:red", "tab:orange", "tab:cyan"]
for (i, j), color in zip(locations, colors):
    axes[0].add_patch(plt.Rectangle((j - 0.5, i - 0.5), m, m, fill=False, edgecolor=color, linewidth=2.5))
axes[0].set_title("input, 3 locations")
limit = np.abs(kernels[0, 0]).max()
for ax, (i, j), color in zip(axes[1:4], locations, colors):
    ax.imshow(kernels[0, 0, i, j, 0], cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(f"k_0 at ({i}, {j})", color=color)
axes[4].imshow(w[0].reshape(m, m), cmap="RdBu_r", vmin=-limit, vmax=limit)
axes[4].set_title("static w_0 (Q = 0)")
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
save(fig, "03_kernel_per_location.png")

fig, axes = plt.subplots(m, m, figsize=(4.2, 4.8), layout="constrained")
limit = np.abs(Q[0]).max()
for (u, v), ax in np.ndenumerate(axes):
    ax.imshow(Q[0, u * m + v].reshape(m, m), cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_title(f"Q_({u},{v})", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("Q bank of channel 0 (random here):\nfilter (u, v) computes kernel element (u, v)", fontsize=10)
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
# faster). Below, the per-channel loop by hand, then both functions, against the loops:

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
# The same speed question as in tutorial 02, on MNIST-sized images with the first layer
# of `adaptive-lenet` (8 channels, 3x3). The times depend on your machine and on what
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
# First, these four formulas at one location, against central differences:

# %%
o = 0
p = x[0, :, 2 : 2 + m, 5 : 5 + m].reshape(D).copy()
Qo, wo, bo = Q[o].copy(), w[o].copy(), b[o]


def sigma_of(p_, Q_, w_, b_):
    return p_ @ Q_ @ p_ + w_ @ p_ + b_


def central_difference(f, value: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f / d value, entry by entry: (f(value + eps) - f(value - eps)) / (2 eps)."""
    grad = np.zeros_like(value, dtype=np.float64)
    for index in np.ndindex(value.shape):
        plus, minus = value.copy(), value.copy()
        plus[index] += eps
        minus[index] -= eps
        grad[index] = (f(plus) - f(minus)) / (2 * eps)
    return grad


formulas = {
    "Q (p p^T)": (np.outer(p, p), central_difference(lambda v: sigma_of(p, v, wo, bo), Qo)),
    "w (p)": (p, central_difference(lambda v: sigma_of(p, Qo, v, bo), wo)),
    "b (1)": (1.0, central_difference(lambda v: sigma_of(p, Qo, wo, v), np.array(bo))),
    "p ((Q+Q^T)p + w)": ((Qo + Qo.T) @ p + wo, central_difference(lambda v: sigma_of(v, Qo, wo, bo), p)),
}
for name, (formula, numeric) in formulas.items():
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
# Read them in the `_backward` of `adaptive_conv2d_reference`: with `G` the matrix of
# the `g[r, o]`, `(R, O)`, and `GP[r, (o, d)] = G[r, o] P[r, d]`, `(R, O*D)`, the first
# line for all channels is
# `dQ = GP^T P` and the last is `dP = GP Ss + G w` (`Ss` stacks the `Q_o + Q_o^T`): two
# large matrix products that share `GP`. `adaptive_conv2d` computes the same two products
# on transposes, block by block. We check both against central differences of the loss
# for *every* entry of `x`, `Q`, `w` and `b`, in float64, on a small problem with
# stride 2 and padding 1 (tutorial 02). The loss is `L = sum(sigma * Rw)` with fixed
# random weights `Rw`, so that every output gets a different weight, and the finite
# differences compute it with the literal loops, so the check depends on neither
# im2col version.

# %%
xs, Qs, ws, bs = (rng.normal(size=shape) for shape in [(2, 2, 5, 5), (3, 18, 18), (3, 18), (3,)])
stride, padding = 2, 1
Rw = rng.normal(size=F.adaptive_conv2d(xs, Qs, ws, bs, stride, padding).shape)

values = [xs, Qs, ws, bs]
grads = {}
for fn in (adaptive_conv2d_reference, F.adaptive_conv2d):
    tensors = [Tensor(v, requires_grad=True) for v in values]
    (fn(*tensors, stride=stride, padding=padding) * Tensor(Rw)).sum().backward()
    grads[fn.__name__] = [t.grad for t in tensors]


def loss_of(*values_) -> float:
    return float(np.sum(F.adaptive_conv2d_loops(*values_, stride=stride, padding=padding) * Rw))


print("max |engine - finite difference| / max |gradient|  (finite differences of the literal loops)")
for position, name in enumerate(["x", "Q", "w", "b"]):
    def f(v, position=position):
        return loss_of(*[v if k == position else values[k] for k in range(4)])
    numeric = central_difference(f, values[position])
    errors = {fn: np.abs(g[position] - numeric).max() / np.abs(numeric).max() for fn, g in grads.items()}
    print(f"  dL/d{name} {str(values[position].shape):13s} "
          + "   ".join(f"{fn}: {e:.1e}" for fn, e in errors.items()))

# %% [markdown]
# ## 6. Why tanh?
#
# `sigma` is quadratic in the patch. Scale the patch by `s` and
#
#     sigma(s p) = s^2 p^T Q p + s w . p + b
#
# The quadratic term grows like `s^2`, and it can take either sign when the symmetric
# part of `Q` has eigenvalues of both signs (section 3; printed below for channel 0), so
# a bright or high-contrast patch can produce a very large `sigma`, positive or negative. Passed on
# to the next layer unbounded, such values would make training unstable. `tanh` keeps
# every output in `(-1, 1)`, and it is the nonlinearity the layer applies by default
# (`activation="tanh"` in `AdaptiveConv2d`).
#
# The plot follows one patch of the ring image, scaled by `s`:

# %%
o = 0
p0 = x[0, :, 2 : 2 + m, 5 : 5 + m].reshape(D)
s = np.linspace(-3, 3, 121)
quadratic = s**2 * (p0 @ Q[o] @ p0)
linear = s * (w[o] @ p0)
sigma_s = quadratic + linear + b[o]
eigenvalues = np.linalg.eigvalsh((Q[o] + Q[o].T) / 2)
print(f"eigenvalues of the symmetric part of Q_{o}: from {eigenvalues.min():.2f} to {eigenvalues.max():.2f}")
print(f"along s in [-3, 3]: sigma ranges over [{sigma_s.min():.2f}, {sigma_s.max():.2f}], "
      f"tanh(sigma) over [{np.tanh(sigma_s).min():.3f}, {np.tanh(sigma_s).max():.3f}]")

fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.plot(s, linear, label="w . (s p)   linear part", linestyle="--")
ax.plot(s, quadratic, label="(s p)^T Q (s p)   quadratic part", linestyle="--")
ax.plot(s, sigma_s, label="sigma", linewidth=2)
ax.plot(s, np.tanh(sigma_s), label="tanh(sigma)   the layer's output", linewidth=2)
ax.axhline(0, color="gray", linewidth=0.8)
ax.set_xlabel("scale s of the patch")
ax.set_title("One patch, scaled: the quadratic term takes over; tanh bounds it")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
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
labels = [f"C={c}, m={m_}" for c, m_, *_ in rows]
fig, ax = plt.subplots(figsize=(7, 3.8))
positions = np.arange(len(rows))
ax.bar(positions - 0.2, [r[3] for r in rows], width=0.4, label="ordinary channel: D + 1")
ax.bar(positions + 0.2, [r[4] for r in rows], width=0.4, label="adaptive channel: D^2 + D + 1")
ax.axhline(PAPER_BUDGET, color="black", linestyle="--", linewidth=1, label="whole budget: LeNet / 66")
ax.set_yscale("log")
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
