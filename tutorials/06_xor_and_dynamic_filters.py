# %% [markdown]
# # 06 · Why a quadratic unit: XOR, and how adaptive kernels differ from Dynamic Filter Networks
#
# The paper (Zamora Esquivel et al., *Adaptive Convolutional Kernels*, ICCV Workshops 2019)
# makes two arguments before its experiments, and this short tutorial runs both:
#
# 1. **One non-linear unit solves XOR.** Its introduction argues that a single unit whose
#    response is a quadratic form of its input, `y = tanh(p^T Q p + w . p + b)`, can
#    separate XOR, which no single linear unit `y = tanh(w . p + b)` can. Here both are
#    trained on the same points with the package's autograd and `Adam`, and their decision
#    regions drawn.
# 2. **An adaptive kernel is a filter generated from the input, but not a Dynamic Filter
#    Network.** Its related work sets adaptive kernels apart from Dynamic Filter Networks
#    (B. De Brabandere, X. Jia, T. Tuytelaars, L. Van Gool, *Dynamic Filter Networks*,
#    NIPS 2016). Here we say precisely how they relate, with a few lines of code on the
#    same engine that show the difference.
#
# It needs no MNIST and runs in seconds; quick mode (`ACK_QUICK=1`) computes exactly the
# same numbers. It ends with two exercises (`python tutorials/check.py 06`).
#
# This script is the source of the notebook beside it, `06_xor_and_dynamic_filters.ipynb`,
# which `python tutorials/make_notebooks.py 06` makes with the outputs of a full run:
# edit the script, not the notebook.

# %% Setup: quick mode (ACK_QUICK=1), where figures go, and the package (see tutorial_setup.py).
import matplotlib.pyplot as plt
import numpy as np
from tutorial_setup import OUT, QUICK, ROOT, save  # quick mode, figure folder, this checkout's package

import ack_numpy.functional as F
from ack_numpy import Tensor, no_grad
from ack_numpy.nn import AdaptiveConv2d, Conv2d, Linear
from ack_numpy.optim import Adam

np.set_printoptions(precision=3, suppress=True, linewidth=110)
print("project root:", ROOT, "| quick mode:", QUICK, "(the same numbers in both) | figures go to:", OUT)

# %% [markdown]
# ## 1. XOR: one linear unit against one adaptive unit
#
# The data: 50 noisy points around each corner of the square `(+-1, +-1)`; a point's label
# is `t = +1` where the two coordinates have different signs (XOR) and `t = -1` where they
# agree. No line separates the two classes: any line leaves at least one corner on the
# wrong side, so a linear unit gets at most 3 of the 4 corners right (about 75% of the points).
#
# The adaptive unit is the package's own `AdaptiveConv2d` with a 1x1 kernel over 2 input
# channels: its patch is exactly the 2-vector `p`, so `D = 2` and
#
#     y = tanh(p^T Q p + w . p + b),   Q (2, 2), w (2,), b ()        7 numbers
#
# against `Linear(2, 1)` followed by `tanh`: `y = tanh(w . p + b)`, 3 numbers. Both are
# trained the same way (squared error to `t`, Adam, 400 full-batch steps, float32, seeds fixed).

# %%
def xor_points(per_corner: int = 50, noise: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """P (4*per_corner, 2) float32 points around the corners (+-1, +-1); t (4*per_corner,) in {-1, +1},
    +1 where the signs differ (XOR)."""
    rng = np.random.default_rng(seed)
    corners = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=np.float32)
    P = np.repeat(corners, per_corner, axis=0) + rng.normal(0, noise, size=(4 * per_corner, 2)).astype(np.float32)
    t = -np.sign(np.repeat(corners[:, 0] * corners[:, 1], per_corner)).astype(np.float32)
    return P, t


class LinearUnit:
    """y = tanh(w . p + b): one ordinary neuron.  P (N, 2) -> y (N,)."""

    def __init__(self, seed: int):
        self.layer = Linear(2, 1, rng=np.random.default_rng(seed))

    def __call__(self, P) -> Tensor:
        return self.layer(Tensor(P)).tanh().reshape(-1)

    def parameters(self):
        return self.layer.parameters()


class AdaptiveUnit:
    """y = tanh(p^T Q p + w . p + b): one adaptive neuron, the layer of the paper with a 1x1
    kernel over 2 channels (the patch of a 1x1 kernel over C channels is the C-vector).
    P (N, 2) -> y (N,)."""

    def __init__(self, seed: int):
        self.layer = AdaptiveConv2d(2, 1, kernel_size=1, rng=np.random.default_rng(seed))

    def __call__(self, P) -> Tensor:
        return self.layer(Tensor(P.reshape(-1, 2, 1, 1))).reshape(-1)   # (N, 2, 1, 1) -> (N, 1, 1, 1) -> (N,)

    def parameters(self):
        return self.layer.parameters()


def train_unit(unit, P: np.ndarray, t: np.ndarray, steps: int = 400, lr: float = 0.05) -> list[float]:
    """Full-batch Adam on the mean squared error (y - t)^2; returns the loss of every step."""
    optimiser = Adam(unit.parameters(), lr=lr)
    target, losses = Tensor(t), []
    for _ in range(steps):
        loss = ((unit(P) - target) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.data))
    return losses


def accuracy(unit, P: np.ndarray, t: np.ndarray) -> float:
    with no_grad():
        return float(np.mean(np.sign(unit(P).data) == t))


P, t = xor_points()
units = {"linear unit": LinearUnit(seed=1), "adaptive unit": AdaptiveUnit(seed=1)}
for name, unit in units.items():
    losses = train_unit(unit, P, t)
    print(f"{name:14s} {sum(p.size for p in unit.parameters())} parameters: final loss {losses[-1]:.4f}, "
          f"training accuracy {accuracy(unit, P, t):.1%} ({len(t)} points)")

# %% [markdown]
# The adaptive unit classifies every point. The linear unit does worse than its best line
# (75%): for the squared error, the best a linear unit can do on these symmetric points is
# to answer about 0 everywhere (its outputs at the corners below are a few hundredths), so
# the sign it gives is a coin toss. What did the adaptive unit learn? On the corners `p1^2 = p2^2 = 1`, so the diagonal
# of `Q` acts like a constant; the work is done by the cross term `(Q12 + Q21) p1 p2`, which
# is negative exactly where the signs agree. (Only the symmetric part of `Q` matters:
# tutorial 03, section 3.)

# %%
layer = units["adaptive unit"].layer
Q, w, b = layer.Q.data[0], layer.w.data[0], float(layer.b.data[0])
print("Q =", np.round(Q.astype(float), 3).tolist(), " w =", np.round(w.astype(float), 3).tolist(), f" b = {b:.3f}")
print(f"cross term Q12 + Q21 = {Q[0, 1] + Q[1, 0]:+.3f}  (sigma gets (Q12 + Q21) p1 p2)")
with no_grad():
    corners = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=np.float32)
    for name, unit in units.items():
        print(f"{name:14s} y at the corners (-1,-1), (-1,1), (1,-1), (1,1): {np.round(unit(corners).data.astype(float), 3).tolist()}"
              f"   (XOR wants -, +, +, -)")

# %% [markdown]
# The decision regions: where each unit says `+1` (XOR true) and `-1`, over the plane.
# The linear unit's boundary is a line; the adaptive unit's is a conic section,
# `p^T Q p + w . p + b = 0`, here a hyperbola whose two branches separate the four corners.

# %%
grid = np.linspace(-2.2, 2.2, 221, dtype=np.float32)
G1, G2 = np.meshgrid(grid, grid)
plane = np.stack([G1.ravel(), G2.ravel()], axis=1)               # (221*221, 2)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
for ax, (name, unit) in zip(axes, units.items()):
    with no_grad():
        Y = unit(plane).data.reshape(G1.shape)
    ax.contourf(G1, G2, Y, levels=[-1, 0, 1], colors=["#c6dbef", "#fdd0a2"])
    ax.contour(G1, G2, Y, levels=[0], colors="black", linewidths=1.5)
    for label, marker, colour in ((-1, "o", "tab:blue"), (1, "^", "tab:orange")):
        ax.scatter(*P[t == label].T, s=14, marker=marker, color=colour, edgecolor="black", linewidth=0.3,
                   label=f"t = {label:+d}" + (" (XOR true)" if label == 1 else ""))
    ax.set_title(f"{name}: {accuracy(unit, P, t):.1%} right\n"
                 + ("y = tanh(w . p + b), boundary a line" if name == "linear unit"
                    else "y = tanh(p^T Q p + w . p + b), boundary a conic"), fontsize=10)
    ax.set_xlabel("p1")
    ax.set_ylabel("p2")
    ax.set_aspect("equal")
axes[0].legend(loc="lower left", fontsize=8)
fig.suptitle("XOR: one linear unit cannot separate it, one adaptive (quadratic) unit can", fontsize=11)
fig.tight_layout()
save(fig, "06_xor.png")

# %% [markdown]
# ## 2. Adaptive kernels and Dynamic Filter Networks
#
# **An adaptive kernel is a filter generated from the input.** At location `l` the layer
# applies `k_o(l) = Q_o p_l + w_o` to the patch `p_l`: the filter is computed from the very
# patch it is then applied to, by a *linear* map (`Q_o`, `w_o`) whose parameters are
# trained with the layer, by the same loss, as part of it. Seen from the outside it is one
# unit: `sigma = p^T Q p + w . p + b`, quadratic in the patch.
#
# **A Dynamic Filter Network** (De Brabandere et al., 2016) has two parts: a separate
# *filter-generating network* and a *dynamic filtering layer* that applies what it
# generates. The generator is any network (in the paper, convolutional and non-linear:
# several layers with non-linearities) and sees the whole input, or a feature map of it
# (for video prediction, the previous frames); it outputs either **one filter per sample**,
# applied at every location ("dynamic convolution"), or **one filter per sample and
# location** ("dynamic local filtering"). The filters may be applied to another input than
# the one they were generated from. The generator is trained end to end too, but it is a
# network of its own, with its own depth, receptive field and parameter count.
#
# So the adaptive kernel is the special case of dynamic local filtering in which the
# filter-generating network is **a single linear convolution with the same receptive
# field as the filter, applied to the same input it filters**. The code below makes this
# concrete: (a) a linear generator is exactly `adaptive_kernels`; (b) a DFN-style local
# generator (two convolutions with a tanh between) makes the filter at `l` depend,
# non-linearly, on pixels outside the patch; (c) a DFN-style per-sample generator (from
# the whole image) gives one filter for every location, which any pixel changes.

# %%
rng = np.random.default_rng(6)
C, m = 1, 3
D = C * m * m
x = np.zeros((1, 1, 12, 12), dtype=np.float32)
x[0, 0, 2:10, 5:7] = 1.0                                        # a small vertical bar
Q = (rng.normal(0, 0.3, size=(1, D, D))).astype(np.float32)
w = rng.normal(0, 0.3, size=(1, D)).astype(np.float32)

# (a) the adaptive kernel as dynamic local filtering with a linear generator: a Conv2d with
# one output channel per filter element e, weight row e = Q_o[e, :] (the Q filter of
# element e) and bias w_o. Its output at l is the filter for l: (N, D, Ho, Wo).
generator = Conv2d(C, D, m, bias=True)
generator.weight.data = Q[0].reshape(D, C, m, m).copy()
generator.bias.data = w[0].copy()
with no_grad():
    generated = generator(Tensor(x)).data                       # (1, D, 10, 10)
kernels = F.adaptive_kernels(x, Q, w)                            # (1, 1, 10, 10, C, m, m)
same = np.abs(generated.transpose(0, 2, 3, 1) - kernels[:, 0].reshape(1, 10, 10, D)).max()
print(f"(a) adaptive_kernels vs a linear 3x3 filter-generating conv: max |difference| = {same:.1e}")


# %% [markdown]
# Now two DFN-style generators, and a question for each: which input pixels does the
# filter used at location `l` depend on? Autograd answers it: the gradient of (a random
# projection of) the filter at `l` with respect to `x` is non-zero exactly at those pixels.

# %%
class LocalDFN:
    """Dynamic local filtering: Conv2d(1, 8, 3, padding=1) -> tanh -> Conv2d(8, D, 3): one filter
    per location, from a 5x5 neighbourhood, non-linearly.  x (N, 1, H, W) -> filters (N, D, H-2, W-2)."""

    def __init__(self, seed: int):
        r = np.random.default_rng(seed)
        self.first, self.second = Conv2d(1, 8, 3, padding=1, rng=r), Conv2d(8, D, 3, rng=r)

    def __call__(self, x: Tensor) -> Tensor:
        return self.second(self.first(x).tanh())


class SampleDFN:
    """Dynamic convolution: Linear(H*W, 16) -> tanh -> Linear(16, D): one filter per sample, from
    the whole image.  x (N, 1, H, W) -> filters (N, D), the same at every location."""

    def __init__(self, seed: int, pixels: int):
        r = np.random.default_rng(seed)
        self.first, self.second = Linear(pixels, 16, rng=r), Linear(16, D, rng=r)

    def __call__(self, x: Tensor) -> Tensor:
        return self.second(self.first(x.reshape(x.shape[0], -1)).tanh())


def dependence(filter_at_l, x: np.ndarray) -> np.ndarray:
    """|d (R . filter_at_l(x)) / d x| for a fixed random R: (H, W), non-zero where the filter
    used at l depends on the input."""
    xt = Tensor(x, requires_grad=True)
    f = filter_at_l(xt)                                          # (D,)
    (f * Tensor(np.random.default_rng(0).normal(size=f.shape).astype(np.float32))).sum().backward()
    return np.abs(xt.grad[0, 0])


i, j = 4, 4                                                     # location l; its patch is rows 4..6, cols 4..6
local_dfn, sample_dfn = LocalDFN(seed=2), SampleDFN(seed=2, pixels=12 * 12)
maps = {
    "adaptive kernel k = Q p + w\n(linear generator, the patch only)": dependence(lambda xt: generator(xt)[0, :, i, j], x),
    "DFN, dynamic local filtering\n(2 convs + tanh: a 5x5 neighbourhood)": dependence(lambda xt: local_dfn(xt)[0, :, i, j], x),
    "DFN, dynamic convolution\n(from the whole image, one filter)": dependence(lambda xt: sample_dfn(xt)[0], x),
}
for title, grad in maps.items():
    rows, cols = np.nonzero(grad)
    print(f"{title.splitlines()[0]:30s} depends on {len(rows):3d} pixels, rows {rows.min()}..{rows.max()}, "
          f"cols {cols.min()}..{cols.max()}")

# %% [markdown]
# And the non-linearity, with one more question: double the image. The adaptive kernel's
# generator is linear in the patch, so `k(2x) - w = 2 (k(x) - w)` (exactly in the maths;
# below, up to float32 rounding, about 1e-7); a DFN generator with a tanh inside has no such rule.

# %%
with no_grad():
    k1 = generator(Tensor(x)).data[0, :, i, j] - w[0]
    k2 = generator(Tensor(2 * x)).data[0, :, i, j] - w[0]
    print(f"adaptive: max |(k(2x) - w) - 2 (k(x) - w)| = {np.abs(k2 - 2 * k1).max():.1e}  (linear in p)")
    bias = local_dfn(Tensor(np.zeros_like(x))).data[0, :, i, j]
    f1 = local_dfn(Tensor(x)).data[0, :, i, j] - bias
    f2 = local_dfn(Tensor(2 * x)).data[0, :, i, j] - bias
    print(f"local DFN: max |(f(2x) - f(0)) - 2 (f(x) - f(0))| = {np.abs(f2 - 2 * f1).max():.3f}  (not linear)")

fig, axes = plt.subplots(1, 3, figsize=(11, 4))
for ax, (title, grad) in zip(axes, maps.items()):
    ax.imshow(x[0, 0], cmap="gray_r", vmin=0, vmax=3, interpolation="nearest")
    shown = np.ma.masked_where(grad == 0, grad)
    ax.imshow(shown, cmap="Reds", alpha=0.8, interpolation="nearest")
    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), m, m, fill=False, color="tab:blue", lw=2))
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(f"Which pixels does the filter used at location ({i}, {j}) depend on?\n"
             "red: |d filter / d x| > 0;  blue: the patch it is applied to;  grey: the input (a bar)", fontsize=10)
fig.tight_layout(rect=(0, 0, 1, 0.9))
save(fig, "06_dfn.png")

# %% [markdown]
# What this shows:
#
# * **The same object, a filter made from the input.** `(a)` prints 0: the adaptive kernel
#   *is* a dynamically generated filter, by a generator with `D` linear filters of the patch's
#   size (the paper's Q filters, tutorial 03).
# * **Where the filter comes from.** The adaptive kernel at `l` depends on the 3x3 patch it
#   is applied to, and on nothing else; a DFN's local generator reaches as far as its layers
#   reach (5x5 here), and a per-sample generator sees the whole image and gives one filter
#   for every location.
# * **How.** The adaptive generator is linear in the patch, so the unit's response is exactly
#   quadratic, `p^T Q p + w . p + b`, with `D^2 + D + 1` parameters per output channel and no
#   second network; a DFN generator is a network of its own, usually non-linear, sized
#   independently of the filter it produces.
#
# ## 3. Exercises
#
# 1. `quadratic_unit(P, Q, w, b)`: the adaptive unit of section 1 for a batch of 2-vectors,
#    `y = tanh(p^T Q p + w . p + b)`, in NumPy (the checker compares it with `AdaptiveConv2d`).
# 2. `adaptive_as_dynamic_filter(weight, bias)`: given a linear filter-generating
#    convolution (`weight (D, C, m, m)`, `bias (D,)`, one output channel per filter element),
#    return the `(Q (D, D), w (D,))` of the one adaptive channel whose kernels `Q p + w` are
#    the filters it generates (section 2 (a), read backwards).
#
# Write your answers in `tutorials/exercises/ex06.py`, then run
#
#     python tutorials/check.py 06
#
# The reference solutions are in `tutorials/solutions/ex06.py`.
