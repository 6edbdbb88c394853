"""The autograd engine: every op's backward against finite differences (float64)."""
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
