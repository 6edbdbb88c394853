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


def test_a_nan_input_is_refused_not_passed():
    x = np.array([1.0, np.nan])
    with pytest.raises(ValueError, match=r"grad_check: input 0 \(shape \(2,\)\) holds NaN or infinite values"):
        grad_check(lambda t: t * 2.0, x)    # used to return {0: nan} and pass
    with pytest.raises(ValueError, match="input 1 .* NaN or infinite"):
        grad_check(lambda a, b: a * b, np.ones(2), np.array([np.inf, 0.0]))


def test_a_complex_input_is_refused():
    with pytest.raises(ValueError, match="grad_check: input 0 holds complex128 values, expected real numbers"):
        grad_check(lambda t: t * 2.0, np.array([1j]))


def test_a_non_finite_output_or_difference_is_refused():
    with pytest.raises(ValueError, match=r"the output of op \(shape \(2,\)\) holds NaN or infinite values"):
        with np.errstate(invalid="ignore"):
            grad_check(lambda t: t.log(), np.array([-1.0, 1.0]))
    with pytest.raises(ValueError, match="input 0 .* the finite differences are NaN or infinite"):
        with np.errstate(invalid="ignore"):
            grad_check(lambda t: t.log(), np.array([1e-9, 1.0]), eps=1e-6)   # log of x - eps < 0


def test_a_backward_giving_nan_fails_instead_of_passing():
    def nan_backward(t: Tensor) -> Tensor:
        out = Tensor.from_op(t.data * 3.0, (t,), "nan_backward")

        def _backward(out):
            t.accumulate_grad(out.grad * np.nan)

        out._backward = _backward
        return out

    with pytest.raises(AssertionError, match=r"input 0 \(shape \(3,\)\): backward gives NaN or infinite values"):
        grad_check(nan_backward, rng.normal(size=(3,)))


def test_an_op_returning_an_array_is_a_clear_error():
    with pytest.raises(TypeError, match="op must return a Tensor, got ndarray"):
        grad_check(lambda t: t.data * 2, np.ones(2))


@pytest.mark.parametrize("setting, message", [
    ({"atol": float("nan")}, "atol must be a finite number >= 0"),   # NaN: every comparison false, any backward passed
    ({"rtol": float("nan")}, "rtol must be a finite number >= 0"),
    ({"atol": -1e-6}, "atol must be a finite number >= 0"),
    ({"eps": 0.0}, "eps must be a finite number > 0"),               # was a ZeroDivisionError
    ({"seed": -1}, "seed must be a whole number >= 0"),
])
def test_settings_that_would_make_the_check_meaningless_are_refused(setting, message):
    def three_x(t: Tensor) -> Tensor:  # forward 2x, backward 3x: a wrong backward
        out = Tensor.from_op(t.data * 2.0, (t,), "three_x")

        def _backward(out):
            t.accumulate_grad(out.grad * 3.0)

        out._backward = _backward
        return out

    with pytest.raises(ValueError, match=message):
        grad_check(three_x, rng.normal(size=(3,)), **setting)


def test_an_input_with_no_entries_is_refused():
    with pytest.raises(ValueError, match="nothing to check"):
        grad_check(lambda t: t * 2.0, np.zeros(0))
