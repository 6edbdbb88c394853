"""The autograd engine: a NumPy array that remembers how it was made.

A `Tensor` holds `data` (a NumPy array) and, after `backward()`, `grad` (an array of
the same shape). Every operation creates a new Tensor that keeps its parents and a
small `_backward` function that applies the chain rule for that one operation:

    out = f(a, b)            forward:  out.data = f(a.data, b.data)
    out._backward(out)       backward: a.grad += out.grad * df/da,  b.grad += ...

`backward()` sorts the graph topologically and calls each `_backward` in reverse,
exactly as in karpathy/micrograd, but on whole arrays instead of scalars. Each op names
its function after itself (`_matmul_backward`, `_tanh_backward`), so that a traceback
from inside `backward()` says which op it came from.

One difference from micrograd: `_backward` receives its output tensor as an argument
(`node._backward(node)`) instead of capturing `out` from the op that made it. A closure
that captured `out` and was stored in `out._backward` would form a reference cycle
(out -> _backward -> out), and NumPy arrays held by a cycle are freed only when Python's
cycle collector happens to run. Without the cycle, each step's graph is freed as soon
as it is unused.

The one subtlety of arrays is broadcasting: if `a` of shape (3, 1) is added to `b` of
shape (3, 4), the gradient that flows back to `a` has shape (3, 4) and must be summed
over the broadcast axes. `unbroadcast` does that, and every binary op uses it.

Bigger operations (convolution, pooling, the adaptive kernel, the losses) live in
`ack_numpy.functional`; they build their output with `Tensor.from_op` and write their
own backward next to their forward, the same way as the ops in this file.

The dtype rule: a Tensor holds float32 (training) or float64 (gradient checks), nothing
else. Integer, bool and float16 data are refused at construction unless `dtype=` asks
for the conversion (`Tensor(labels, dtype=np.float32)`: visible in the code); complex,
object and string data are always refused. Dtypes are never promoted: all inputs of an
op must have one dtype, and a number (a Python or NumPy scalar, also as an exponent)
takes the dtype of the tensor it meets, so float32 training stays float32 and a float64
array that slips in is refused at the op that received it, naming the dtypes, instead
of surfacing later as a wrong-dtype gradient.

In-place changes: a backward reads its inputs' (and sometimes its output's) `data` when
backward() runs, not when the op ran. So a recorded op's output is made read-only, and
the op keeps a CRC-32 of each leaf it read (inputs, weights); backward() refuses, naming
the op, if one of them changed or was replaced in between (`saved_state`,
`check_unchanged`), where PyTorch would compare its `_version` counters.

Debugging: `repr(t)` shows shape, dtype, the op that made t and its gradient state;
`t.topological_order()` lists the graph behind t; and with the environment variable
ACK_DEBUG=1 every op prints one line to stderr as it runs (name, input and output
shapes and dtypes), from `Tensor.from_op`, the one place every op passes through.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import warnings
import zlib
from typing import Callable, Iterator, Sequence, Union

import numpy as np

ArrayLike = Union["Tensor", np.ndarray, float, int]
# What an op of ack_numpy.functional takes as an array argument: a Tensor, or a NumPy
# array that `as_tensor` wraps as a constant (no gradient flows back to it).
TensorLike = Union["Tensor", np.ndarray]

# Whether new operations record the graph. `no_grad()` switches it off for evaluation,
# so that inference neither keeps activations alive nor spends time on closures.
_GRAD_ENABLED = True

# ACK_DEBUG=1 (any value but "" and "0") prints every op as it runs; see `debug_line`.
DEBUG = os.environ.get("ACK_DEBUG", "") not in ("", "0")


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Context manager: operations inside it do not record a graph (like torch.no_grad)."""
    global _GRAD_ENABLED
    previous = _GRAD_ENABLED
    _GRAD_ENABLED = False
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


def is_grad_enabled() -> bool:
    return _GRAD_ENABLED


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` down to `shape`, undoing NumPy broadcasting.

    Broadcasting (1) prepends axes and (2) stretches axes of length 1. The gradient of
    a stretched input is the sum over the stretched axis, so undo (1) by summing the
    leading axes and (2) by summing, with keepdims, every axis where shape has a 1.
    """
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Tensor:
    """A NumPy array with a gradient and a record of the operation that produced it.

    Attributes:
        data: the values, any shape; float32 (training) or float64 (checks), nothing else.
        grad: dL/d(data), same shape as data; None until backward() reaches it.
        requires_grad: whether gradients should be computed for this tensor.
    """

    def __init__(self, data: ArrayLike, requires_grad: bool = False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        self.data: np.ndarray = float_array(data, dtype)
        self.grad: np.ndarray | None = None
        self.requires_grad = requires_grad
        self._parents: tuple[Tensor, ...] = ()
        self._backward: Callable[[Tensor], None] = lambda out: None
        self._op = ""  # name of the op that made this tensor, for debugging and graphs
        self._saved: tuple = ()  # what backward() checks before this op's backward: `saved_state`

    @classmethod
    def from_op(cls, data: np.ndarray, parents: Sequence["Tensor"], op: str) -> "Tensor":
        """Make the output of an operation. It records its parents only if some parent
        needs a gradient and grad mode is on; the caller then sets `out._backward`.

        Every op passes through here, so this is where mixed dtypes are refused and
        where ACK_DEBUG prints."""
        check_same_dtype(op, {f"input {i}": p for i, p in enumerate(parents)})
        out = cls(data)
        out._op = op
        if _GRAD_ENABLED and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._parents = tuple(parents)
            out._saved = saved_state(out)  # checked by backward(): see `check_unchanged`
        if DEBUG:
            print(debug_line(op, parents, out), file=sys.stderr)
        return out

    # ---------------------------------------------------------------- basics
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    def __repr__(self) -> str:
        """Tensor([1.5, -2.], shape=(2,), dtype=float32, op=mul, requires_grad=True, grad=None).

        Values are shown for tensors of at most REPR_VALUES numbers; `op` names the op
        that made the tensor (none for an input); `grad` is None until backward reaches it."""
        parts = [f"shape={self.shape}", f"dtype={self.dtype}"]
        if self.data.size <= REPR_VALUES:
            parts.insert(0, np.array2string(self.data, precision=4, separator=", ").replace("\n", ""))
        if self._op:
            parts.append(f"op={self._op}")
        if self.requires_grad:
            parts.append("requires_grad=True")
            parts.append("grad=None" if self.grad is None else f"grad=<{self.grad.dtype} array>")
        return f"{type(self).__name__}({', '.join(parts)})"

    def accumulate_grad(self, grad: np.ndarray) -> None:
        """self.grad = self.grad + grad (a tensor used twice receives both contributions).

        The first gradient is stored as it comes, without a copy, so treat `.grad` as
        read-only: it may be a broadcast view (the backward of `sum`) or the very array
        another tensor holds (the backward of `a + b` gives both the same one).

        A gradient of another dtype is a bug in some backward (a float64 that crept into
        float32 training, say): refuse it rather than cast it and hide the upcast."""
        grad = np.asarray(grad)
        if grad.dtype != self.data.dtype:
            raise TypeError(f"gradient of dtype {grad.dtype} for a {self.data.dtype} tensor "
                            f"(made by {self._op or 'a leaf'}): a backward changed the dtype")
        # Never in place: `grad` may be read-only (np.broadcast_to in `sum`) or shared with
        # another tensor, so the first one is kept as it is and a second one makes a new array.
        if self.grad is None:
            self.grad = grad
        else:
            self.grad = self.grad + grad

    def zero_grad(self) -> None:
        self.grad = None

    # ---------------------------------------------------------------- backward
    def backward(self, grad: np.ndarray | None = None) -> None:
        """Compute d(self)/d(every tensor in the graph that requires grad).

        `grad` defaults to 1 and is only optional for a scalar (a loss)."""
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without an argument needs a scalar, got shape {self.shape}")
            grad = np.ones_like(self.data)
        grad = np.asarray(grad, dtype=self.data.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"gradient shape {grad.shape} does not match tensor shape {self.shape}")

        order = self.topological_order()
        for node in order:
            if node is not self and node._parents:
                node.grad = None  # intermediate grads are rebuilt for this backward pass
        self.grad = grad.copy()
        for node in reversed(order):
            if node._parents and node.grad is not None:
                check_unchanged(node)
                node._backward(node)  # passed in, not captured: see the module docstring

    def topological_order(self) -> list["Tensor"]:
        # Iterative DFS (a recursive one would hit Python's recursion limit on long graphs).
        order, visited = [], set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, children_done = stack.pop()
            if children_done:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            for parent in node._parents:
                if id(parent) not in visited:
                    stack.append((parent, False))
        return order

    # ---------------------------------------------------------------- arithmetic
    def __add__(self, other: ArrayLike) -> "Tensor":
        other = as_tensor(other, like=self)
        out = Tensor.from_op(self.data + other.data, (self, other), "add")

        def _add_backward(out):  # d(a+b)/da = 1, d(a+b)/db = 1
            if self.requires_grad:
                self.accumulate_grad(unbroadcast(out.grad, self.shape))
            if other.requires_grad:
                other.accumulate_grad(unbroadcast(out.grad, other.shape))

        out._backward = _add_backward
        return out

    def __mul__(self, other: ArrayLike) -> "Tensor":
        other = as_tensor(other, like=self)
        out = Tensor.from_op(self.data * other.data, (self, other), "mul")

        def _mul_backward(out):  # d(a*b)/da = b, d(a*b)/db = a
            if self.requires_grad:
                self.accumulate_grad(unbroadcast(out.grad * other.data, self.shape))
            if other.requires_grad:
                other.accumulate_grad(unbroadcast(out.grad * self.data, other.shape))

        out._backward = _mul_backward
        return out

    def __truediv__(self, other: ArrayLike) -> "Tensor":
        other = as_tensor(other, like=self)
        out = Tensor.from_op(self.data / other.data, (self, other), "div")

        def _div_backward(out):  # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
            if self.requires_grad:
                self.accumulate_grad(unbroadcast(out.grad / other.data, self.shape))
            if other.requires_grad:
                other.accumulate_grad(unbroadcast(-out.grad * self.data / other.data**2, other.shape))

        out._backward = _div_backward
        return out

    def __neg__(self) -> "Tensor":
        out = Tensor.from_op(-self.data, (self,), "neg")

        def _neg_backward(out):
            self.accumulate_grad(-out.grad)

        out._backward = _neg_backward
        return out

    def __sub__(self, other: ArrayLike) -> "Tensor":
        return self + (-as_tensor(other, like=self))

    def __radd__(self, other: ArrayLike) -> "Tensor":
        return self + other

    def __rmul__(self, other: ArrayLike) -> "Tensor":
        return self * other

    def __rsub__(self, other: ArrayLike) -> "Tensor":
        return as_tensor(other, like=self) - self

    def __rtruediv__(self, other: ArrayLike) -> "Tensor":
        return as_tensor(other, like=self) / self

    def __pow__(self, exponent: float) -> "Tensor":
        if isinstance(exponent, Tensor) or not np.isscalar(exponent) or isinstance(exponent, (complex, np.complexfloating, str, bytes)):
            raise TypeError(f"only constant real exponents are supported, as in x ** 2.0; got {type(exponent).__name__}")
        # A Python float never changes the dtype; a NumPy float64 would make float32 ** it float64.
        exponent = float(exponent)
        out = Tensor.from_op(self.data**exponent, (self,), "pow")

        def _pow_backward(out):  # d(x^k)/dx = k x^(k-1)
            self.accumulate_grad(out.grad * exponent * self.data ** (exponent - 1))

        out._backward = _pow_backward
        return out

    def __matmul__(self, other: ArrayLike) -> "Tensor":
        """Matrix product of 2-D tensors: (n, k) @ (k, m) -> (n, m)."""
        other = as_tensor(other, like=self)
        if self.ndim != 2 or other.ndim != 2:
            raise ValueError(f"matmul needs two 2-D tensors, got shapes {self.shape} and {other.shape}")
        if self.shape[1] != other.shape[0]:
            raise ValueError(f"matmul shapes do not fit: {self.shape} @ {other.shape}")
        out = Tensor.from_op(self.data @ other.data, (self, other), "matmul")

        def _matmul_backward(out):  # C = A B:  dA = dC B^T,  dB = A^T dC
            if self.requires_grad:
                self.accumulate_grad(out.grad @ other.data.T)
            if other.requires_grad:
                other.accumulate_grad(self.data.T @ out.grad)

        out._backward = _matmul_backward
        return out

    # ---------------------------------------------------------------- reductions
    def sum(self, axis=None, keepdims: bool = False) -> "Tensor":
        out = Tensor.from_op(self.data.sum(axis=axis, keepdims=keepdims), (self,), "sum")

        def _sum_backward(out):  # every summed element receives the output's gradient
            grad = out.grad
            if axis is not None and not keepdims:
                grad = np.expand_dims(grad, axis)
            self.accumulate_grad(np.broadcast_to(grad, self.shape))

        out._backward = _sum_backward
        return out

    def mean(self, axis=None, keepdims: bool = False) -> "Tensor":
        axes = () if axis is None else tuple(np.atleast_1d(axis))
        if any(not -self.ndim <= a < self.ndim for a in axes):
            raise ValueError(f"mean(axis={axis}) of a tensor with {self.ndim} axes (shape {self.shape})")
        count = self.data.size if axis is None else int(np.prod([self.shape[a] for a in axes]))
        if count == 0:
            raise ValueError(f"mean() of an empty tensor (shape {self.shape}, axis={axis}): "
                             f"there is nothing to average")
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count)

    # ---------------------------------------------------------------- shape
    def reshape(self, *shape) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        out = Tensor.from_op(self.data.reshape(shape), (self,), "reshape")

        def _reshape_backward(out):
            self.accumulate_grad(out.grad.reshape(self.shape))

        out._backward = _reshape_backward
        return out

    def transpose(self, *axes) -> "Tensor":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        axes = axes or tuple(reversed(range(self.ndim)))
        out = Tensor.from_op(self.data.transpose(axes), (self,), "transpose")

        def _transpose_backward(out):  # undo the permutation
            self.accumulate_grad(out.grad.transpose(np.argsort(axes)))

        out._backward = _transpose_backward
        return out

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def __getitem__(self, index) -> "Tensor":
        out = Tensor.from_op(self.data[index], (self,), "getitem")

        def _getitem_backward(out):  # scatter the gradient back; np.add.at handles repeated indices
            grad = np.zeros_like(self.data)
            np.add.at(grad, index, out.grad)
            self.accumulate_grad(grad)

        out._backward = _getitem_backward
        return out

    # ---------------------------------------------------------------- elementwise
    def exp(self) -> "Tensor":
        out = Tensor.from_op(np.exp(self.data), (self,), "exp")

        def _exp_backward(out):  # d(e^x)/dx = e^x
            self.accumulate_grad(out.grad * out.data)

        out._backward = _exp_backward
        return out

    def log(self) -> "Tensor":
        out = Tensor.from_op(np.log(self.data), (self,), "log")

        def _log_backward(out):  # d(log x)/dx = 1/x
            self.accumulate_grad(out.grad / self.data)

        out._backward = _log_backward
        return out

    def tanh(self) -> "Tensor":
        out = Tensor.from_op(np.tanh(self.data), (self,), "tanh")

        def _tanh_backward(out):  # d(tanh x)/dx = 1 - tanh(x)^2
            self.accumulate_grad(out.grad * (1.0 - out.data * out.data))

        out._backward = _tanh_backward
        return out

    def relu(self) -> "Tensor":
        out = Tensor.from_op(np.maximum(self.data, 0), (self,), "relu")

        def _relu_backward(out):  # d(max(x,0))/dx = 1 where x > 0, else 0
            self.accumulate_grad(out.grad * (self.data > 0))

        out._backward = _relu_backward
        return out


    # NumPy defers to Tensor's operators: np.float64(2.0) * t calls t.__rmul__ (and
    # keeps t's dtype) instead of making an object array of Tensors.
    __array_ufunc__ = None


REPR_VALUES = 8  # repr shows the values of tensors up to this size

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(data, dtype=None) -> np.ndarray:
    """The array a Tensor holds: float32 or float64, never anything else.

    Integer and bool data are refused unless `dtype` asks for a float (an explicit,
    visible conversion); complex, object and string data are always refused. Without
    this, Tensor([1, 2, 3]) + 0.5 would stay int64 and silently drop the 0.5."""
    if isinstance(data, np.ma.MaskedArray):
        raise TypeError("a Tensor cannot hold a masked array (its mask would be dropped): "
                        "fill the masked entries first, e.g. Tensor(x.filled(0.0))")
    ragged = ValueError("a Tensor needs a rectangular array of numbers: these nested lists have rows of "
                        "different lengths, or hold things that are not numbers")
    try:
        with warnings.catch_warnings():  # NumPy < 1.24 makes an object array of ragged lists, with a warning
            warnings.simplefilter("ignore")
            source = np.asarray(data)
    except ValueError:  # NumPy >= 1.24: ragged lists are an error
        raise ragged from None
    if source.dtype == object and isinstance(data, (list, tuple)):
        raise ragged
    if dtype is not None and np.dtype(dtype) not in FLOAT_DTYPES:
        raise TypeError(f"a Tensor holds float32 or float64, not dtype={np.dtype(dtype)}")
    if source.dtype in FLOAT_DTYPES and dtype is None:
        return source
    if source.dtype.kind in "fiub" and dtype is not None:
        with np.errstate(over="ignore"):  # the check below says it in words
            converted = source.astype(dtype)
        if source.dtype.kind == "f":
            overflowed = np.isfinite(source) & ~np.isfinite(converted)
        else:
            overflowed = ~np.isfinite(converted)
        if overflowed.any():
            raise ValueError(f"values too large for {np.dtype(dtype)} (largest |value| "
                             f"{number_text(np.abs(source[overflowed]).max())}): a Tensor never holds "
                             f"an infinity the data did not have")
        return converted
    hint = ": convert it explicitly, e.g. Tensor(x, dtype=np.float32)" if source.dtype.kind in "fiub" else ""
    raise TypeError(f"a Tensor holds float32 or float64, got {source.dtype} data{hint}")


def fingerprint(array: np.ndarray) -> int:
    """A CRC-32 of the array's bytes: equal before and after unless the values changed.
    (A non-contiguous view is copied first.)"""
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"))


def saved_state(out: Tensor) -> tuple:
    """What `check_unchanged` needs to see that the arrays out's backward reads are the
    ones the forward pass used: one (array, crc) pair for each parent and for out.

    NumPy cannot count writes to an array as PyTorch's `_version` counter does, so:
    - an op's output is ours: it is made read-only (free), so that an in-place write to
      it fails at once, and only its identity is kept (crc None);
    - a leaf (an input, a weight) belongs to the user and must stay writable (the
      optimiser writes it after backward): its CRC-32 is kept and compared. This costs
      one pass over the inputs and weights per forward and per backward, not over the
      activations (tutorial 01, "Changing an array after the forward pass")."""
    out.data.flags.writeable = False
    return tuple((t.data, fingerprint(t.data) if not t._parents else None) for t in (*out._parents, out))


def check_unchanged(out: Tensor) -> None:
    """Refuse to run out's backward if an array it reads changed since the forward pass.

    The backward closures read `self.data`, `other.data` and `out.data` when backward()
    runs, not when the op ran: had one been changed in place (x.data *= 2, an optimiser
    step, a NumPy array edited after Tensor(array)) or replaced (w.data = ...), the
    gradients would be computed silently from the new values. This is PyTorch's
    "modified by an inplace operation" error."""
    for i, (t, (array, crc)) in enumerate(zip((*out._parents, out), out._saved)):
        if t.data is not array or (crc is not None and fingerprint(array) != crc):
            which = "its output" if t is out else f"its input {i} ({describe(t)})"
            raise RuntimeError(f"backward of {out._op}: {which} was changed in place or replaced after the "
                               f"forward pass, so its gradient would be computed from the new values; "
                               f"redo the forward pass after changing it")


def describe(t: Tensor) -> str:
    """'(64, 1, 28, 28) float32': shape and dtype, as the error and debug lines print them."""
    return f"{t.shape} {t.dtype}"


def check_same_dtype(op: str, inputs: dict[str, Tensor | None]) -> None:
    """Refuse an op whose inputs (by name; None entries are absent inputs) have different
    dtypes: ack_numpy never promotes."""
    given = {name: t for name, t in inputs.items() if t is not None}
    if len({t.dtype for t in given.values()}) > 1:
        shown = ", ".join(f"{name} {describe(t)}" for name, t in given.items())
        raise TypeError(f"{op}: inputs of different dtypes ({shown}); ack_numpy does not promote "
                        f"dtypes: convert them to one, e.g. x.astype(np.float32) or Tensor(x, dtype=np.float32)")


def debug_line(op: str, inputs: Sequence[Tensor], out: Tensor) -> str:
    """One line per op for ACK_DEBUG: 'ack: matmul (64, 800) float32, (800, 500) float32 -> (64, 500) float32'."""
    recorded = "" if out._parents else "   (not recorded)"
    return f"ack: {op} {', '.join(describe(t) for t in inputs)} -> {describe(out)}{recorded}"


def number_text(value) -> str:
    """A number as a message shows it: short, even for an integer of thousands of digits
    (whose str() Python may refuse to make)."""
    if isinstance(value, (int, np.integer)):
        bits = abs(int(value)).bit_length()
        if bits > 64:
            return f"2^{bits - 1} or more in size (an integer of about {int(bits * math.log10(2)) + 1} digits)"
        return str(int(value))
    return np.format_float_scientific(value, precision=2, trim="-")  # also a long double beyond float64


def as_tensor(value: ArrayLike, like: Tensor | None = None) -> Tensor:
    """Wrap arrays and numbers in a (constant) Tensor; pass Tensors through.

    A Python number takes the dtype of `like`, so `x * 2` keeps a float32 x float32."""
    if isinstance(value, Tensor):
        return value
    if like is not None and np.isscalar(value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"only real numbers combine with a Tensor, got {value!r}")
        try:
            as_float = float(value)  # a Python int of any size, first as a Python float
        except OverflowError:  # an int beyond every float (10**400)
            as_float = math.inf
        with np.errstate(over="ignore"):
            number = np.asarray(as_float, dtype=like.dtype)
        finite = isinstance(value, (int, np.integer)) or bool(np.isfinite(value))
        if finite and not np.isfinite(number):
            raise OverflowError(f"the number {number_text(value)} does not fit in {like.dtype} (largest: "
                                f"{np.finfo(like.dtype).max:.3g}), the dtype of the Tensor it combines with")
        return Tensor(number)
    return Tensor(value)
