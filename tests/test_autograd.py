"""The autograd engine: every op's backward against finite differences (float64), the dtype
rule, and the debugging aids (repr, topological_order, ACK_DEBUG)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ack_numpy import Tensor, no_grad
from ack_numpy.autograd import unbroadcast

from ack_numpy.gradcheck import grad_check as check_gradients

rng = np.random.default_rng(42)


def r(*shape, positive=False):
    a = rng.normal(size=shape)
    return np.abs(a) + 0.5 if positive else a


@pytest.mark.parametrize("a_shape, b_shape", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)),
                                              ((2, 3, 4), (3, 1)), ((3, 4), ())])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_binary_ops_with_broadcasting(op, a_shape, b_shape):
    fns = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
           "mul": lambda a, b: a * b, "div": lambda a, b: a / b}
    check_gradients(fns[op], r(*a_shape), r(*b_shape, positive=(op == "div")))


def test_reflected_ops_with_numbers():
    check_gradients(lambda a: 2.0 - a, r(3))
    check_gradients(lambda a: 3.0 / a, r(3, positive=True))
    check_gradients(lambda a: 1.5 * a + 2.0, r(3))


@pytest.mark.parametrize("name", ["neg", "exp", "log", "tanh", "relu", "pow"])
def test_unary_ops(name):
    fns = {"neg": lambda a: -a, "exp": lambda a: a.exp(), "log": lambda a: a.log(),
           "tanh": lambda a: a.tanh(), "relu": lambda a: a.relu(), "pow": lambda a: a ** 3.0}
    x = r(4, 5, positive=(name == "log"))
    if name == "relu":
        x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink where the derivative jumps
    check_gradients(fns[name], x)


def test_matmul():
    check_gradients(lambda a, b: a @ b, r(3, 4), r(4, 5))


def test_matmul_shape_error_names_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\) @ \(5, 2\)"):
        Tensor(r(3, 4)) @ Tensor(r(5, 2))


@pytest.mark.parametrize("axis, keepdims", [(None, False), (0, False), (1, True), ((0, 2), False)])
def test_sum_and_mean(axis, keepdims):
    check_gradients(lambda a: a.sum(axis=axis, keepdims=keepdims), r(2, 3, 4))
    check_gradients(lambda a: a.mean(axis=axis, keepdims=keepdims), r(2, 3, 4))


def test_reshape_transpose_getitem():
    check_gradients(lambda a: a.reshape(6, 4), r(2, 3, 4))
    check_gradients(lambda a: a.transpose(2, 0, 1), r(2, 3, 4))
    check_gradients(lambda a: a.T, r(3, 5))
    check_gradients(lambda a: a[1:, ::2], r(3, 5))
    check_gradients(lambda a: a[np.array([0, 2, 0])], r(3, 5))  # repeated index accumulates


def test_tensor_used_twice_accumulates():
    x = Tensor(np.array([3.0]), requires_grad=True)
    y = x * x + x  # dy/dx = 2x + 1
    y.backward(np.ones(1))
    assert x.grad[0] == pytest.approx(7.0)


def test_backward_by_hand_matches_engine():
    # L = sum(tanh(a @ b)):  dL/da = (1 - t^2) @ b^T  with t = tanh(a @ b)
    a, b = r(2, 3), r(3, 4)
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    (ta @ tb).tanh().sum().backward()
    t = np.tanh(a @ b)
    np.testing.assert_allclose(ta.grad, (1 - t**2) @ b.T)
    np.testing.assert_allclose(tb.grad, a.T @ (1 - t**2))


def test_no_grad_records_nothing():
    x = Tensor(r(3), requires_grad=True)
    with no_grad():
        y = (x * 2).sum()
    assert not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_backward_needs_scalar_or_gradient():
    x = Tensor(r(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()


def test_float32_stays_float32():
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    y = ((x * 2 + 1) / 3 - 0.5).tanh().exp().sum() * 0.1
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


def test_unbroadcast():
    g = np.ones((2, 3, 4))
    assert unbroadcast(g, (3, 1)).shape == (3, 1)
    assert unbroadcast(g, (3, 1))[0, 0] == 8
    assert unbroadcast(g, ()).shape == ()


def test_a_backward_that_changes_the_dtype_is_caught_not_cast():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64 for a float32 tensor"):
        x.accumulate_grad(np.ones(3, dtype=np.float64))


# ----------------------------------------------------------------------------- dtypes
def test_mixed_dtypes_are_refused_at_forward_naming_both():
    a = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    other = np.ones(3)
    with pytest.raises(TypeError, match=r"mul: inputs of different dtypes .*float32.*float64.*does not promote"):
        a * other
    with pytest.raises(TypeError, match="add: inputs of different dtypes"):
        Tensor(other) + a
    with no_grad():  # the rule does not depend on grad mode
        with pytest.raises(TypeError, match="different dtypes"):
            a * other


@pytest.mark.parametrize("scalar", [2, 2.5, np.float64(2.5), np.int64(2), np.float32(2.5)])
def test_a_number_never_changes_an_ops_dtype(scalar):
    a = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    for out in (a * scalar, scalar * a, a + scalar, scalar - a, a / scalar, scalar / a, a ** scalar):
        assert out.dtype == np.float32, out
    (a ** np.float64(2.0)).sum().backward()  # used to become float64 and blame the leaf
    assert a.grad.dtype == np.float32 and np.allclose(a.grad, 2.0)


@pytest.mark.parametrize("data", [np.array([1, 2, 3]), np.array([True, False]), [1, 2], np.ones(2, np.float16)])
def test_integer_bool_and_half_data_are_refused_unless_converted_explicitly(data):
    with pytest.raises(TypeError, match=r"holds float32 or float64, got \w+ data: convert it explicitly"):
        Tensor(data)
    with pytest.raises(TypeError, match="holds float32 or float64"):
        Tensor(np.ones(3, np.float32)) * np.asarray(data)  # an array operand is wrapped the same way
    converted = Tensor(data, dtype=np.float32)
    assert converted.dtype == np.float32 and np.array_equal(converted.data, np.asarray(data, np.float32))


@pytest.mark.parametrize("data", [np.array([1j]), np.array([object()]), np.array(["a"])])
def test_complex_object_and_string_data_are_refused_even_with_a_dtype(data):
    with pytest.raises(TypeError, match=rf"holds float32 or float64, got {data.dtype} data$"):
        Tensor(data)
    with pytest.raises(TypeError, match="holds float32 or float64"):
        Tensor(data, dtype=np.float64)


def test_the_issue_cases_no_longer_answer_silently():
    with pytest.raises(TypeError):
        Tensor(np.array([1, 2, 3])) + 0.5       # was [1 2 3]: the 0.5 dropped
    with pytest.raises(TypeError):
        Tensor(np.array([True, False])) * 5     # was [True False]
    with pytest.raises(TypeError, match="not dtype=int32"):
        Tensor(np.ones(2), dtype=np.int32)
    with pytest.raises(TypeError, match="constant real exponents"):
        Tensor(np.ones(2)) ** np.ones(2)


@pytest.mark.parametrize("scalar", [1j, np.complex64(1j), "2"])
def test_a_complex_or_text_number_is_refused_not_cast(scalar):
    with pytest.raises(TypeError, match="only real numbers combine with a Tensor"):
        Tensor(np.ones(2, np.float32)) * scalar      # 1j would have been cast to 0 with a warning


def test_mean_of_nothing_is_a_clear_error():
    with pytest.raises(ValueError, match=r"mean\(\) of an empty tensor \(shape \(0,\)"):
        Tensor(np.zeros(0), requires_grad=True).mean()
    with pytest.raises(ValueError, match="empty tensor"):
        Tensor(np.zeros((3, 0))).mean(axis=1)
    assert Tensor(np.zeros((3, 0))).mean(axis=0).shape == (0,)  # averaging 3 rows of nothing is fine


# ----------------------------------------------------------------------------- debugging aids
def test_topological_order_is_public_and_puts_parents_first():
    a, b = Tensor(np.array(2.0), requires_grad=True), Tensor(np.array(3.0), requires_grad=True)
    c = a * b
    loss = (c + a).tanh()
    order = loss.topological_order()
    assert order[-1] is loss and len(order) == 5 and len({id(t) for t in order}) == 5
    position = {id(t): i for i, t in enumerate(order)}
    for node in order:
        for parent in node._parents:
            assert position[id(parent)] < position[id(node)]
    assert [t._op for t in order if t._parents] == ["mul", "add", "tanh"]


def test_repr_shows_values_shape_dtype_op_and_gradient_state():
    a = Tensor(np.array([1.5, -2.0], dtype=np.float32), requires_grad=True)
    y = (a * a).sum()
    assert repr(a) == "Tensor([ 1.5, -2. ], shape=(2,), dtype=float32, requires_grad=True, grad=None)"
    assert repr(y) == "Tensor(6.25, shape=(), dtype=float32, op=sum, requires_grad=True, grad=None)"
    y.backward()
    assert repr(a).endswith("requires_grad=True, grad=<float32 array>)")
    big = Tensor(np.zeros((64, 1, 28, 28)))
    assert repr(big) == "Tensor(shape=(64, 1, 28, 28), dtype=float64)"  # no values, no gradient state
    with no_grad():
        assert "op=relu" in repr(big.relu())  # the op is named even when no graph is recorded


def run_with_debug(code: str, value: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ACK_DEBUG=value, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


DEBUG_PROGRAM = """
import numpy as np
from ack_numpy import Tensor
from ack_numpy.nn import AdaptiveConv2d
x = Tensor(np.ones((2, 1, 5, 5), dtype=np.float32))
layer = AdaptiveConv2d(1, 3, 3, rng=np.random.default_rng(0))
y = layer(x).sum()
print("result", y.shape)
"""


def test_ack_debug_prints_each_op_with_its_shapes_to_stderr():
    done = run_with_debug(DEBUG_PROGRAM, "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "result ()\n"  # stdout is the program's own
    assert done.stderr.splitlines() == [
        "ack: adaptive_conv2d (2, 1, 5, 5) float32, (3, 9, 9) float32, (3, 9) float32, (3,) float32"
        " -> (2, 3, 3, 3) float32",
        "ack: tanh (2, 3, 3, 3) float32 -> (2, 3, 3, 3) float32",
        "ack: sum (2, 3, 3, 3) float32 -> () float32",
    ]
    silent = run_with_debug(DEBUG_PROGRAM, "0")
    assert silent.returncode == 0 and silent.stderr == ""


def test_ack_debug_marks_ops_that_record_no_graph():
    done = run_with_debug("from ack_numpy import Tensor\nTensor([1.0, 2.0]) * 2.0", "1")
    assert done.stderr == "ack: mul (2,) float64, () float64 -> (2,) float64   (not recorded)\n"


@pytest.mark.parametrize("data", [[1, 2], [True, False], ["a", "b"], [1 + 2j]])
def test_only_real_floating_tensors_can_require_gradients(data):
    with pytest.raises(TypeError, match="a Tensor holds float32 or float64"):
        Tensor(data, requires_grad=True)


def test_a_parameter_shows_its_gradient_state():
    from ack_numpy.nn import Parameter

    p = Parameter(np.zeros((8, 9, 9), dtype=np.float32))
    assert repr(p) == "Parameter(shape=(8, 9, 9), dtype=float32, requires_grad=True, grad=None)"


# ----------------------------------------------------------------------------- in-place changes
def test_an_input_array_changed_in_place_after_forward_is_caught_naming_the_op():
    w = Tensor(np.ones(3), requires_grad=True)
    a = np.arange(3.0)
    y = (w * Tensor(a)).sum()       # Tensor(a) shares a's memory, as np.asarray does
    a *= 2                          # without the check, dL/dw would be the new a
    with pytest.raises(RuntimeError, match=r"backward of mul: its input 1 \(\(3,\) float64\) was changed in place"):
        y.backward()


def test_a_weight_changed_in_place_or_replaced_before_backward_is_caught():
    from ack_numpy import optim
    from ack_numpy.nn import Parameter

    w = Parameter(np.ones((2, 2)))
    loss = ((Tensor(np.ones((1, 2))) @ w).tanh() ** 2).sum()
    w.grad = np.ones((2, 2))
    optim.SGD([w], lr=0.1).step()   # a step between forward and backward
    with pytest.raises(RuntimeError, match="backward of matmul: its input 1 .* changed in place"):
        loss.backward()

    loss = (w * 3.0).sum()
    w.data = np.zeros((2, 2))       # rebinding .data is caught the same way
    with pytest.raises(RuntimeError, match="backward of mul: its input 0"):
        loss.backward()


def test_an_output_its_backward_reads_cannot_be_changed_in_place_or_replaced_unseen():
    x = Tensor(np.zeros(3), requires_grad=True)
    y = x.exp()                     # exp's backward reads y.data
    with pytest.raises(ValueError, match="read-only"):
        y.data += 1.0               # an op's output is read-only while its graph is recorded
    y.data = y.data + 1.0
    with pytest.raises(RuntimeError, match="backward of exp: its output was changed in place or replaced"):
        y.sum().backward()
    with no_grad():                 # nothing recorded, nothing locked
        z = x.exp()
    z.data += 1.0


def test_unchanged_graphs_backward_as_before_and_twice():
    x = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    y = (x * x).tanh().sum()
    y.backward()
    first = x.grad.copy()
    x.zero_grad()
    y.backward()                    # nothing changed: a second backward is allowed and equal
    assert np.array_equal(x.grad, first)
    x.data[0] = 9.0                 # a change after backward is the normal optimiser step
    assert x.grad is not None


@pytest.mark.parametrize("make, error, message", [
    (lambda t: t + True, TypeError, "only real numbers combine with a Tensor, got True"),   # bool arrays are refused too
    (lambda t: t + 1e300, OverflowError, "does not fit in float32"),                       # would be inf silently
    (lambda t: t + 2**200, OverflowError, r"the number 2\^200 or more in size \(an integer of about 61 digits\)"),
    (lambda t: t + 10**5000, OverflowError, "an integer of about 5001 digits"),           # str() of it would fail
    (lambda t: t + np.longdouble("1e400"), OverflowError, r"the number 1e\+400 does not fit"),  # beyond float64 too
    (lambda t: Tensor([[1.0], [1.0, 2.0]]), ValueError, "a Tensor needs a rectangular array"),
    (lambda t: t.mean(axis=5), ValueError, r"mean\(axis=5\) of a tensor with 1 axes"),      # was a raw IndexError
    (lambda t: Tensor(np.ma.array([1.0, 2.0], mask=[0, 1])), TypeError, "masked array"),   # the mask was dropped
])
def test_more_inputs_that_would_give_a_wrong_or_raw_answer(make, error, message):
    with pytest.raises(error, match=message):
        make(Tensor(np.ones(3, dtype=np.float32)))


def test_a_conversion_that_would_overflow_is_refused_not_turned_into_infinity():
    with pytest.raises(ValueError, match=r"values too large for float32 \(largest \|value\| 1e\+300\)"):
        Tensor(np.array([1.0, 1e300]), dtype=np.float32)
    assert np.isinf(Tensor(np.array([np.inf]), dtype=np.float32).data).all()  # an infinity the data had stays
