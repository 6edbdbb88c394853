"""The public gradient check: it passes a correct backward and catches a wrong one."""
import numpy as np
import pytest

from ack_numpy import Tensor
from ack_numpy.gradcheck import grad_check, numerical_grad

rng = np.random.default_rng(0)


def test_numerical_grad_of_a_known_function():
    # f(a, b) = sum(a^2 * b): df/da = 2 a b, df/db = a^2
    a, b = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    f = lambda a_, b_: float(np.sum(a_**2 * b_))  # noqa: E731
    np.testing.assert_allclose(numerical_grad(f, [a, b], 0), 2 * a * b, atol=1e-8)
    np.testing.assert_allclose(numerical_grad(f, [a, b], 1), a**2, atol=1e-8)


def test_numerical_grad_leaves_the_arrays_unchanged():
    a = rng.normal(size=(4,))
    before = a.copy()
    numerical_grad(lambda v: float(np.sum(np.sin(v))), [a], 0)
    assert np.array_equal(a, before)


def test_a_correct_op_passes_and_reports_small_errors():
    x, w = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    errors = grad_check(lambda x_, w_: (x_ @ w_).tanh(), x, w)
    assert sorted(errors) == [0, 1]
    assert all(0 <= e < 1e-8 for e in errors.values())


def test_inputs_are_checked_in_float64_even_if_given_float32():
    x = rng.normal(size=(5,)).astype(np.float32)
    seen = []

    def op(t):
        seen.append(t.data.dtype)
        return t * t

    grad_check(op, x)
    assert set(seen) == {np.dtype(np.float64)}


def wrong_square(t: Tensor) -> Tensor:
    """y = t^2 with a deliberately wrong backward (t instead of 2 t)."""
    out = Tensor.from_op(t.data**2, (t,), "wrong_square")

    def _backward(out):
        t.accumulate_grad(out.grad * t.data)  # the bug: the factor 2 is missing

    out._backward = _backward
    return out


def test_a_wrong_backward_is_caught_and_the_input_named():
    x, y = rng.normal(size=(3,)), rng.normal(size=(2, 3))
    with pytest.raises(AssertionError, match=r"input 1 \(shape \(2, 3\)\).*differ in 6 of 6 entries"):
        grad_check(lambda a, b: a * 2.0 + wrong_square(b), x, y)


def test_an_input_without_gradient_is_caught():
    x, y = rng.normal(size=(3,)), rng.normal(size=(3,))
    with pytest.raises(AssertionError, match=r"input 1 .*received no gradient"):
        grad_check(lambda a, b: a * Tensor(b.data), x, y)   # b.data: cut out of the graph


def test_a_wrong_backward_hidden_by_a_plain_sum_is_caught():
    # Swapping the gradients of two outputs leaves d(sum)/dx unchanged when they cancel;
    # the random weights R make L = sum(op * R) see it.
    def swapped(t: Tensor) -> Tensor:
        out = Tensor.from_op(t.data * 3.0, (t,), "swapped")

        def _backward(out):
            t.accumulate_grad(3.0 * out.grad[::-1])   # the bug: gradients of the outputs reversed

        out._backward = _backward
        return out

    with pytest.raises(AssertionError, match="input 0"):
        grad_check(swapped, rng.normal(size=(4,)))
