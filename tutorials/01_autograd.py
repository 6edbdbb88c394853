# %% [markdown]
# # 01 · Autograd: how `ack_numpy` computes gradients
#
# Training a network means changing its weights a little in the direction that lowers
# the loss, so we need the derivative of one number (the loss) with respect to every
# weight. `ack_numpy` gets these derivatives the way PyTorch does: every operation
# records what it did, and `backward()` walks that record in reverse, applying the
# chain rule one operation at a time.
#
# In this tutorial we
# 1. build a tiny computation graph and look at it,
# 2. compute its gradients by hand and compare with `Tensor.backward()`,
# 3. do the same for a small layer on whole arrays (where broadcasting matters),
# 4. check a gradient numerically with finite differences, the test every
#    hand-written backward in this project has to pass.
#
# The engine is one file: `ack_numpy/autograd.py`. Keep it open beside this tutorial.
#
# Run it with `python tutorials/01_autograd.py`, or read or run it as a notebook (see
# `tutorials/README.md`).
#
# This script is the source of the notebook beside it, `01_autograd.ipynb`,
# which `python tutorials/make_notebooks.py 01` makes with the outputs of a full run:
# edit the script, not the notebook.

# %% Setup: quick mode (ACK_QUICK=1), where figures go, and the package (see tutorial_setup.py).
import matplotlib.pyplot as plt
import numpy as np
from tutorial_setup import OUT, QUICK, ROOT, save  # quick mode, figure folder, this checkout's package

from ack_numpy import Tensor, no_grad
from ack_numpy.gradcheck import grad_check, numerical_grad

np.set_printoptions(precision=4, suppress=True)
print("project root:", ROOT, "| quick mode:", QUICK, "| figures go to:", OUT)

# %% [markdown]
# ## 1. A computation graph
#
# A `Tensor` is a NumPy array (`.data`) plus, once gradients have been computed, an
# array of the same shape (`.grad`). When we compute with tensors that have
# `requires_grad=True`, every result remembers its *parents* (the inputs of the
# operation) and the operation's name.
#
# We build
#
#     c = a * b,    d = c + a,    L = tanh(d)
#
# Note that `a` is used twice: once in `c` and once in `d`.

# %%
a = Tensor(np.array(2.0), requires_grad=True)
b = Tensor(np.array(-0.5), requires_grad=True)
c = a * b
d = c + a
L = d.tanh()

for name, t in [("a", a), ("b", b), ("c", c), ("d", d), ("L", L)]:
    parents = ", ".join(f"{p.data:+.3f}" for p in t._parents) or "-"
    print(f"{name} = {t.data:+.4f}   made by: {t._op or 'leaf (an input)':18s} parents' values: {parents}")

# %% [markdown]
# `_op` and `_parents` are internal attributes (the leading underscore), printed here
# only to show that the graph really is recorded. Each operation also stores a small
# function `_backward` that knows its own local derivative; here is the one of
# `Tensor.__mul__` in `ack_numpy/autograd.py` (shortened a little):
#
# ```python
# def _backward(out):  # d(a*b)/da = b, d(a*b)/db = a
#     self.accumulate_grad(unbroadcast(out.grad * other.data, self.shape))
#     other.accumulate_grad(unbroadcast(out.grad * self.data, other.shape))
# ```
#
# (`backward()` calls it as `node._backward(node)`: the output is passed in rather than
# captured, which keeps old graphs from piling up in memory; the module docstring of
# `autograd.py` explains why.)
#
# `backward()` first sorts the graph so that every node comes after its parents
# (a *topological order*), then visits it in reverse: by the time a node's
# `_backward` runs, its own `.grad` is complete.

# %%
order = L.topological_order()
print("topological order (inputs first):", [t._op or f"leaf {t.data:+.1f}" for t in order])
print("backward() visits them in reverse:", [t._op or f"leaf {t.data:+.1f}" for t in reversed(order)])

# %% [markdown]
# ## 2. Backward by hand, then by the engine
#
# The chain rule, from the output back to the inputs (`L = tanh(d)`, so
# `dL/dd = 1 - tanh(d)^2`):
#
#     dL/dd = 1 - L^2
#     dL/dc = dL/dd * 1                          (d = c + a)
#     dL/db = dL/dc * a                          (c = a * b)
#     dL/da = dL/dc * b  +  dL/dd * 1            a feeds both c and d: the two paths add up
#
# The last line is why `accumulate_grad` *adds* into `.grad` instead of overwriting it.

# %%
dL_dd = 1 - L.data**2
dL_dc = dL_dd * 1.0
by_hand = {"a": dL_dc * b.data + dL_dd * 1.0, "b": dL_dc * a.data}

L.backward()  # seeds dL/dL = 1 and walks the graph
print(f"dL/da   by hand {by_hand['a']:+.6f}   engine {a.grad:+.6f}")
print(f"dL/db   by hand {by_hand['b']:+.6f}   engine {b.grad:+.6f}")
assert np.isclose(by_hand["a"], a.grad) and np.isclose(by_hand["b"], b.grad)

# %% [markdown]
# One trap, the same as in PyTorch: gradients of the *inputs* (leaves) accumulate
# across calls. Calling `backward()` a second time without clearing adds the same
# gradient again. That is why every training step calls `optimizer.zero_grad()` before
# `loss.backward()` (see `train_step` in `ack_numpy/train.py`). `zero_grad()` sets
# `.grad` to `None`, which means "no gradient yet": the next `backward()` starts from
# nothing rather than adding to zeros (PyTorch does the same, `zero_grad(set_to_none=True)`).

# %%
L.backward()
print(f"after a second backward(): a.grad = {a.grad:+.6f}  (twice the value above)")
a.zero_grad()
b.zero_grad()
print("after zero_grad():         a.grad =", a.grad, " (None: no gradient yet)")

# %% [markdown]
# And when we only want values (evaluating a model on the test set), `no_grad()` stops
# the recording, so no graph is kept alive in memory (`evaluate` in `train.py` uses it):

# %%
with no_grad():
    e = a * b
print("inside no_grad: e.requires_grad =", e.requires_grad, "| parents recorded:", len(e._parents))

# %% [markdown]
# Every `backward()` so far started from a scalar, a loss, where the seed `dL/dL = 1` is
# obvious. From a tensor with more than one number there is no single derivative to
# start from, so `backward()` without an argument refuses (as PyTorch does). Pass the
# seed yourself: `y.backward(g)` computes the gradients of `L = sum(y * g)`, that is,
# it pretends `g` is `dL/dy`. A tensor with exactly one number, of any shape (`(1,)`,
# `(1, 1)`), counts as a scalar: the seed is 1.

# %%
v = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
y = v * v                                                     # (3,): not a scalar
try:
    y.backward()
except RuntimeError as error:
    print("y.backward() on shape (3,):", error)
y.backward(np.array([1.0, 0.0, 10.0]))                         # the gradient of L = y[0] + 10 y[2]
print("y.backward(g) with g = [1, 0, 10]: v.grad =", v.grad, " (= 2 v * g)")
v.zero_grad()
(v * v).sum().reshape(1, 1).backward()                         # shape (1, 1): one number, seed 1
print("a (1, 1) output: v.grad =", v.grad, " (= 2 v, as for the scalar sum)")

# %% [markdown]
# ## 3. The same on arrays: a small layer
#
# Networks work on arrays, and the rules are the same, with one addition:
# **broadcasting**. Take a layer with a bias added to every row,
#
#     x: (N, 3),  W: (3, 2),  bias: (2,)
#     z = x W + bias      (N, 2)      the bias is "stretched" over the N rows
#     y = tanh(z)         (N, 2)
#     L = mean(y^2)       ()
#
# By hand, writing `g_v` for `dL/dv` (same shape as `v`):
#
#     g_y = 2 y / (N*2)           (N, 2)   derivative of the mean of squares
#     g_z = g_y * (1 - y^2)       (N, 2)   tanh' = 1 - tanh^2
#     g_W = x^T g_z               (3, 2)   as for any matrix product
#     g_x = g_z W^T               (N, 3)
#     g_bias = sum over rows of g_z   (2,)  the bias touched every row, so its gradient is the sum
#
# The last line is what `unbroadcast` in `autograd.py` does for every binary operation.

# %%
rng = np.random.default_rng(0)
N = 4
x_np, W_np, bias_np = rng.normal(size=(N, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)

x, W, bias = (Tensor(v, requires_grad=True) for v in (x_np, W_np, bias_np))
y = (x @ W + bias).tanh()
loss = (y**2).mean()
loss.backward()

# the same, by hand, in plain NumPy
y_np = np.tanh(x_np @ W_np + bias_np)
g_y = 2 * y_np / y_np.size
g_z = g_y * (1 - y_np**2)
hand = {"x": g_z @ W_np.T, "W": x_np.T @ g_z, "bias": g_z.sum(axis=0)}

for name, t in [("x", x), ("W", W), ("bias", bias)]:
    diff = np.abs(hand[name] - t.grad).max()
    print(f"d loss/d {name:4s} shape {str(t.grad.shape):7s} max |by hand - engine| = {diff:.2e}")
    assert diff < 1e-12

# %% [markdown]
# ## 4. Checking a gradient numerically
#
# A hand-written backward can be wrong in ways that still run and produce numbers of
# the right shape. The independent check is the definition of the derivative. For each
# entry `W[i, j]`, nudge it by a small `eps` both ways and look at the change in the loss:
#
#     dL/dW[i,j]  ~  ( L(W + eps e_ij) - L(W - eps e_ij) ) / (2 eps)      (central difference)
#
# This costs two forward passes per entry, so it is only for small test problems. The
# package has it as `numerical_grad(f, arrays, index, eps)` in `ack_numpy/gradcheck.py`:
# it nudges each entry of `arrays[index]` in place and returns the central differences
# of `f(*arrays)`.

# %%
def loss_of(W_values: np.ndarray) -> float:
    """The loss as a plain function of W (forward only, no graph)."""
    with no_grad():
        return float(((Tensor(x_np) @ Tensor(W_values) + Tensor(bias_np)).tanh() ** 2).mean().data)


numeric = numerical_grad(loss_of, [W_np.copy()], 0, eps=1e-6)
print("engine   dL/dW:\n", W.grad)
print("numeric  dL/dW:\n", numeric)
rel = np.abs(numeric - W.grad).max() / np.abs(W.grad).max()
print(f"largest difference, relative to the largest gradient: {rel:.1e}")

# %% [markdown]
# ### How small should `eps` be?
#
# Not as small as possible. The central difference has two errors pulling in opposite
# directions: the *truncation* error of the formula shrinks like `eps^2`, but the
# *rounding* error of subtracting two nearly equal losses grows like
# `machine precision / eps`. Let us measure the error of the check for a range of `eps`,
# in float64 and in float32 (the precision training uses).

# %%
def loss_of_dtype(W_values, dtype):
    xs, bs = x_np.astype(dtype), bias_np.astype(dtype)
    return float(np.mean(np.tanh(xs @ W_values.astype(dtype) + bs) ** 2))


epsilons = np.logspace(-10, -1, 19)
errors = {}
for dtype in (np.float64, np.float32):
    errors[dtype.__name__] = [
        np.abs(numerical_grad(lambda v: loss_of_dtype(v, dtype), [W_np.copy()], 0, eps) - W.grad).max()
        for eps in epsilons
    ]
for name, errs in errors.items():
    best = int(np.argmin(errs))
    print(f"{name}: machine epsilon {np.finfo(name).eps:.1e}; "
          f"smallest error of the check {errs[best]:.1e}, at eps = {epsilons[best]:.0e}")

fig, ax = plt.subplots(figsize=(6, 3.8))
for name, errs in errors.items():
    ax.loglog(epsilons, errs, marker="o", label=name)
ax.set_xlabel("eps")
ax.set_ylabel("max |numeric - engine|")
ax.set_title("Central differences: rounding (left) vs truncation (right)")
ax.grid(alpha=0.3, which="both")
ax.legend()
save(fig, "01_finite_difference_error.png")

# %% [markdown]
# The curve has a valley: to the left rounding dominates, to the right the formula's
# own error does. float32's machine epsilon (the relative rounding step, printed above)
# is far larger than float64's, so its valley is far higher and its best `eps` larger.
# (The flat float32 line on the far left: there `W +- eps` rounds to `W` itself, the two
# losses are identical and the estimate is 0, so the error is the gradient itself.)
#
# That is why every gradient check in `tests/` runs in **float64**: there, a mismatch
# far above the valley means a bug in the backward, not noise.
#
# The tests check every operation with one function, `grad_check(op, *arrays)` from
# `ack_numpy/gradcheck.py`: it converts the inputs to float64, makes a scalar
# `L = sum(op(*inputs) * R)` with fixed random weights `R` (a plain sum could hide errors
# that cancel between outputs), compares the backward with `numerical_grad` for every
# input, and raises an `AssertionError` naming the input if they differ. It returns the
# largest error per input. Here it is on our layer, and on a multiplication whose
# backward we break on purpose:

# %%
errors = grad_check(lambda x_, W_, b_: ((x_ @ W_ + b_).tanh() ** 2).mean(), x_np, W_np, bias_np)
print("grad_check of the layer: max error per input", {k: f"{e:.1e}" for k, e in errors.items()})


def broken_square(t: Tensor) -> Tensor:
    """t * t, with a wrong backward: it forgets the factor 2."""
    out = Tensor.from_op(t.data * t.data, (t,), "broken_square")

    def _backward(out):
        t.accumulate_grad(out.grad * t.data)   # should be out.grad * 2 * t.data

    out._backward = _backward
    return out


try:
    grad_check(broken_square, x_np)
except AssertionError as error:
    print("grad_check of broken_square:", error)

# %% [markdown]
# ## Changing an array after the forward pass
#
# A backward runs later than its forward, and it reads the arrays it needs then: the
# backward of `a * b` multiplies the incoming gradient by `b.data` as it is when
# `backward()` runs. Change `b`'s values in between (an optimiser step, `w.data *= 0.5`,
# or an edit to the NumPy array you wrapped: `Tensor(array)` shares its memory) and the
# gradient would silently be computed from values the forward pass never used: numbers
# of the right shape, wrong. So the engine refuses, as PyTorch does ("modified by an
# inplace operation"). NumPy cannot count writes to an array, so `autograd.py` makes each
# recorded op's output read-only, and keeps a CRC-32 of every leaf (input, weight) an op
# read; `backward()` recomputes those and names the op whose array changed.
# (`saved_state` and `check_unchanged` in `autograd.py`. The cost is one pass over the
# inputs and weights per forward and per backward, not over the activations: 1.6-3.7% of
# a training step's CPU time, by `python -m ack_numpy.lab.bench.inplace_check`, whose
# record is `data/bench/inplace-check.txt`.)

# %%
b_values = np.array([1.0, 2.0, 3.0])
a = Tensor(np.ones(3), requires_grad=True)
product = (a * Tensor(b_values)).sum()    # d product / d a = b = [1, 2, 3]
b_values *= 10                            # changed in place before backward
try:
    product.backward()
except RuntimeError as error:
    print("backward refused:", error)
product = (a * Tensor(b_values)).sum()    # redo the forward pass: now d/da = [10, 20, 30]
product.backward()
print("after a new forward pass, a.grad =", a.grad)

# %% [markdown]
# **What we saw:** a graph is recorded as we compute; `backward()` runs each
# operation's local chain rule in reverse topological order; contributions through
# different paths add up (and leaves accumulate across calls); broadcasting shows up
# in the backward as a sum; finite differences in float64 are the independent check;
# and an array changed after the forward pass is refused rather than used.
#
# Next: `02_convolution_im2col.py`, the convolution and its backward, built on the same
# machinery.

# %% [markdown]
# ## Exercises
#
# 1. `tanh_layer_grads(x, W, g)`: for `y = tanh(x @ W)` and a given `g = dL/dy`, return
#    `dL/dx` and `dL/dW` by hand, in plain NumPy (section 3 did it with a bias and a mean).
# 2. `bias_grad(grad, bias_shape)`: a bias of shape `(1, C, 1, 1)`, `(C, 1, 1)` or `(W,)`
#    was broadcast over an `(N, C, H, W)` array; return its gradient (what `unbroadcast`
#    does; write it yourself).
#
# Write your answers in `tutorials/exercises/ex01.py` (each function raises
# `NotImplementedError` until you do), then run
#
#     python tutorials/check.py 01
#
# It says, exercise by exercise, right or wrong with a hint. The reference solutions are
# in `tutorials/solutions/ex01.py`; look after trying.
