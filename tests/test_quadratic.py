"""The quadratic controls: diagonal Q, low-rank Q, quadratic activation. Loops vs im2col,
agreement with the full adaptive convolution at the Q they stand for, and gradients."""
import numpy as np
import pytest

import ack_numpy.functional as F
from ack_numpy.gradcheck import grad_check

rng = np.random.default_rng(7)

CASES = [  # (N, C, H, W, O, m, stride, padding)
    (2, 1, 6, 6, 3, 3, 1, 0),
    (1, 2, 7, 6, 2, 3, 2, 1),
    (2, 3, 5, 5, 2, 2, 1, 0),
]


def linear_part(case):
    n, c, h, w, o, m, _, _ = case
    D = c * m * m
    return rng.normal(size=(n, c, h, w)), rng.normal(size=(o, D)), rng.normal(size=o), o, D


@pytest.mark.parametrize("case", CASES)
def test_diagonal_loops_im2col_and_full_q_agree(case):
    x, w, b, o, D = linear_part(case)
    q = rng.normal(size=(o, D))
    s, p = case[6], case[7]
    fast = F.diagonal_adaptive_conv2d(x, q, w, b, s, p).data
    np.testing.assert_allclose(fast, F.diagonal_adaptive_conv2d_loops(x, q, w, b, s, p), atol=1e-10, rtol=0)
    full = np.stack([np.diag(row) for row in q])                       # Q_o = diag(q_o)
    np.testing.assert_allclose(fast, F.adaptive_conv2d_loops(x, full, w, b, s, p), atol=1e-10, rtol=0)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("rank", [1, 2])
def test_lowrank_loops_im2col_and_full_q_agree(case, rank):
    x, w, b, o, D = linear_part(case)
    U, V = rng.normal(size=(o, rank, D)), rng.normal(size=(o, rank, D))
    s, p = case[6], case[7]
    fast = F.lowrank_adaptive_conv2d(x, U, V, w, b, s, p).data
    np.testing.assert_allclose(fast, F.lowrank_adaptive_conv2d_loops(x, U, V, w, b, s, p), atol=1e-10, rtol=0)
    full = np.einsum("okd,oke->ode", U, V)                             # Q_o = U_o^T V_o
    np.testing.assert_allclose(fast, F.adaptive_conv2d_loops(x, full, w, b, s, p), atol=1e-10, rtol=0)


def test_quadratic_activation_loops_and_the_rank_one_q_it_stands_for():
    case = CASES[0]
    x, w, b, o, D = linear_part(case)
    a = rng.normal(size=o)
    conv = F.conv2d(x, w.reshape(o, 1, 3, 3), b).data                  # s = w_o . p + b_o
    y = F.quadratic_activation(conv, a).data
    np.testing.assert_allclose(y, F.quadratic_activation_loops(conv, a), atol=1e-12, rtol=0)
    # s + a s^2 = p^T (a w w^T) p + (1 + 2 a b) w . p + b + a b^2: the adaptive form with a tied rank-1 Q
    Q = a[:, None, None] * np.einsum("od,oe->ode", w, w)
    full = F.adaptive_conv2d_loops(x, Q, (1 + 2 * a * b)[:, None] * w, b + a * b * b)
    np.testing.assert_allclose(y, full, atol=1e-10, rtol=0)


@pytest.mark.parametrize("case", CASES[:2])
def test_diagonal_gradients(case):
    x, w, b, o, D = linear_part(case)
    s, p = case[6], case[7]
    grad_check(lambda x_, q_, w_, b_: F.diagonal_adaptive_conv2d(x_, q_, w_, b_, s, p),
               x, rng.normal(size=(o, D)), w, b)
    grad_check(lambda x_, q_: F.diagonal_adaptive_conv2d(x_, q_, None, None, s, p), x, rng.normal(size=(o, D)))


@pytest.mark.parametrize("case", CASES[:2])
@pytest.mark.parametrize("rank", [1, 2])
def test_lowrank_gradients(case, rank):
    x, w, b, o, D = linear_part(case)
    s, p = case[6], case[7]
    U, V = rng.normal(size=(o, rank, D)), rng.normal(size=(o, rank, D))
    grad_check(lambda x_, U_, V_, w_, b_: F.lowrank_adaptive_conv2d(x_, U_, V_, w_, b_, s, p), x, U, V, w, b)


def test_quadratic_activation_gradients():
    grad_check(F.quadratic_activation, rng.normal(size=(2, 3, 4, 5)), rng.normal(size=3))


@pytest.mark.parametrize("call, message", [
    (lambda: F.diagonal_adaptive_conv2d(np.zeros((1, 1, 5, 5)), np.zeros((2, 8))), "D=8"),
    (lambda: F.diagonal_adaptive_conv2d(np.zeros((1, 1, 5, 5)), np.zeros((2, 9)), np.zeros((3, 9))),
     "w of shape (O, D) = (2, 9)"),
    (lambda: F.diagonal_adaptive_conv2d(np.zeros((1, 1, 5, 5)), np.zeros((2, 1, 9))), "q of shape (O, D)"),
    (lambda: F.lowrank_adaptive_conv2d(np.zeros((1, 1, 5, 5)), np.zeros((2, 1, 9)), np.zeros((2, 2, 9))),
     "U and V of one shape"),
    (lambda: F.lowrank_adaptive_conv2d(np.zeros((5, 5)), np.zeros((2, 1, 9)), np.zeros((2, 1, 9))),
     "x of shape (N, C, H, W)"),
    (lambda: F.quadratic_activation(np.zeros((1, 3, 2, 2)), np.zeros(2)), "a of shape (C,) = (3,)"),
])
def test_bad_arguments_get_one_clear_line(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)


def test_mixed_dtypes_are_refused():
    with pytest.raises(TypeError, match="inputs of different dtypes"):
        F.diagonal_adaptive_conv2d(np.zeros((1, 1, 5, 5), np.float32), np.zeros((2, 9)))


def test_the_constructor_and_build_model_refuse_a_rank_without_low_rank_q_alike():
    from ack_numpy.models import AdaptiveLeNet, build_model

    for make in (lambda: AdaptiveLeNet(q_rank=5), lambda: build_model("adaptive-lenet", q_rank=5)):
        with pytest.raises(ValueError, match="model option 'q_rank' is for q_form 'low-rank'"):
            make()
