"""The adaptive convolution: literal loops vs im2col, gradients, kernels, errors, the layer."""
import numpy as np
import pytest

import ack_numpy.functional as F
from ack_numpy import Tensor
from ack_numpy.nn import AdaptiveConv2d

from ack_numpy.gradcheck import grad_check as check_gradients

rng = np.random.default_rng(3)

CASES = [  # (N, C, H, W, O, m, stride, padding)
    (2, 1, 6, 6, 3, 3, 1, 0),
    (1, 2, 7, 6, 2, 3, 2, 1),
    (2, 3, 5, 5, 2, 2, 1, 0),
    (1, 1, 9, 9, 2, 5, 2, 2),
    (1, 2, 4, 4, 1, 1, 1, 0),
]


def random_args(case, static_kernel=True, bias=True):
    n, c, h, w, o, m, _, _ = case
    D = c * m * m
    return (rng.normal(size=(n, c, h, w)), rng.normal(size=(o, D, D)),
            rng.normal(size=(o, D)) if static_kernel else None, rng.normal(size=o) if bias else None)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("static_kernel", [True, False])
def test_im2col_version_equals_literal_loops(case, static_kernel):
    x, Q, w, b = random_args(case, static_kernel)
    s, p = case[6], case[7]
    fast = F.adaptive_conv2d(x, Q, w, b, s, p).data
    np.testing.assert_allclose(fast, F.adaptive_conv2d_loops(x, Q, w, b, s, p), atol=1e-10, rtol=0)
    np.testing.assert_allclose(F.adaptive_kernels(x, Q, w, s, p), F.adaptive_kernels_loops(x, Q, w, s, p),
                               atol=1e-10, rtol=0)


def test_sigma_is_the_quadratic_form_at_one_location():
    # sigma = p^T Q p + w.p + b, written out for the patch under output pixel (1, 2)
    x, Q, w, b = random_args((1, 2, 5, 5, 2, 3, 1, 0))
    p = x[0, :, 1:4, 2:5].reshape(-1)
    sigma = F.adaptive_conv2d(x, Q, w, b).data
    for o in range(2):
        assert sigma[0, o, 1, 2] == pytest.approx(p @ Q[o] @ p + w[o] @ p + b[o])


def test_zero_Q_is_an_ordinary_convolution():
    x, Q, w, b = random_args((2, 3, 6, 6, 4, 3, 1, 1))
    adaptive = F.adaptive_conv2d(x, np.zeros_like(Q), w, b, 1, 1).data
    ordinary = F.conv2d(x, w.reshape(4, 3, 3, 3), b, 1, 1).data
    np.testing.assert_allclose(adaptive, ordinary, atol=1e-12)


@pytest.mark.parametrize("case", CASES[:4])
def test_gradients_of_x_Q_w_b(case):
    x, Q, w, b = random_args(case)
    s, p = case[6], case[7]
    check_gradients(lambda x_, Q_, w_, b_: F.adaptive_conv2d(x_, Q_, w_, b_, s, p), x, Q, w, b)


@pytest.mark.parametrize("case", [CASES[0], CASES[1]])
def test_location_blocks_do_not_change_values_or_gradients(case, monkeypatch):
    # The fast path walks over locations in blocks of ~BLOCK_BYTES; the cases above fit in
    # one block, so shrink it until every block holds a few locations (and the last is short).
    from ack_numpy.functional import adaptive

    x, Q, w, b = random_args(case)
    s, p = case[6], case[7]
    O, D, _ = Q.shape
    monkeypatch.setattr(adaptive, "BLOCK_BYTES", 3 * O * D * 8)
    R = F.im2col(x, int(round((D / x.shape[1]) ** 0.5)), s, p).shape[0]
    blocks = adaptive.location_blocks(R, O * D, 8)
    assert len(blocks) > 2 and blocks[0] == slice(0, 3) and blocks[-1].stop == R
    np.testing.assert_allclose(F.adaptive_conv2d(x, Q, w, b, s, p).data,
                               F.adaptive_conv2d_loops(x, Q, w, b, s, p), atol=1e-10, rtol=0)
    check_gradients(lambda x_, Q_, w_, b_: F.adaptive_conv2d(x_, Q_, w_, b_, s, p), x, Q, w, b)


def test_gradients_without_static_kernel_and_bias():
    x, Q, _, _ = random_args(CASES[1], static_kernel=False, bias=False)
    check_gradients(lambda x_, Q_: F.adaptive_conv2d(x_, Q_, None, None, 2, 1), x, Q)


def test_gradient_formulas_at_one_location():
    # dsigma/dQ = p p^T and dsigma/dp = (Q + Q^T) p + w, for a 1-pixel output
    x, Q, w, b = random_args((1, 1, 3, 3, 1, 3, 1, 0))
    tx, tQ = Tensor(x, requires_grad=True), Tensor(Q, requires_grad=True)
    F.adaptive_conv2d(tx, tQ, w, b).sum().backward()
    p = x.reshape(-1)
    np.testing.assert_allclose(tQ.grad[0], np.outer(p, p))
    np.testing.assert_allclose(tx.grad.reshape(-1), (Q[0] + Q[0].T) @ p + w[0])


def test_argument_errors_are_clear():
    x = np.zeros((1, 2, 6, 6))
    with pytest.raises(ValueError, match=r"D=10 but x has C=2 channels.*not a square"):
        F.adaptive_conv2d(x, np.zeros((1, 10, 10)))
    with pytest.raises(ValueError, match=r"D=9 but x has C=2 channels.*not divisible"):
        F.adaptive_conv2d(x, np.zeros((1, 9, 9)))
    with pytest.raises(ValueError, match=r"Q of shape \(O, D, D\)"):
        F.adaptive_conv2d(x, np.zeros((1, 18, 9)))
    with pytest.raises(ValueError, match=r"w of shape \(O, D\) = \(1, 18\)"):
        F.adaptive_conv2d(x, np.zeros((1, 18, 18)), np.zeros((2, 18)))
    with pytest.raises(ValueError, match=r"b of shape \(O,\) = \(1,\)"):
        F.adaptive_conv2d(x, np.zeros((1, 18, 18)), None, np.zeros(3))
    with pytest.raises(ValueError, match=r"x of shape \(N, C, H, W\)"):
        F.adaptive_conv2d(np.zeros((2, 6, 6)), np.zeros((1, 18, 18)))


def test_layer_parameters_and_output():
    layer = AdaptiveConv2d(2, 4, 3, padding=1, rng=np.random.default_rng(0))
    names = [name for name, _ in layer.named_parameters()]
    assert names == ["Q", "w", "b"]
    assert layer.Q.shape == (4, 18, 18) and layer.w.shape == (4, 18) and layer.b.shape == (4,)
    assert layer.num_parameters() == 4 * (18 * 18 + 18 + 1)
    x = Tensor(np.random.default_rng(1).uniform(size=(3, 2, 8, 8)).astype(np.float32))
    y = layer(x)
    assert y.shape == (3, 4, 8, 8) and y.dtype == np.float32
    assert np.all(np.abs(y.data) < 1)  # tanh
    np.testing.assert_allclose(layer.kernels(x), F.adaptive_kernels(x, layer.Q, layer.w, 1, 1))
    no_static = AdaptiveConv2d(1, 2, 3, static_kernel=False)
    assert [n for n, _ in no_static.named_parameters()] == ["Q", "b"]
    with pytest.raises(ValueError, match="activation"):
        AdaptiveConv2d(1, 2, 3, activation="sigmoid")


def test_initial_quadratic_term_is_small_next_to_the_static_kernel():
    layer = AdaptiveConv2d(1, 8, 5, rng=np.random.default_rng(0), dtype=np.float64)
    x = np.random.default_rng(1).uniform(size=(4, 1, 12, 12))
    quadratic = F.adaptive_conv2d(x, layer.Q, None, None).data
    linear = F.adaptive_conv2d(x, np.zeros_like(layer.Q.data), layer.w, None).data
    assert quadratic.std() < 0.3 * linear.std()


def test_only_the_symmetric_part_of_Q_matters_so_Q_starts_and_stays_symmetric():
    x, Q, w, b = random_args((2, 1, 6, 6, 3, 3, 1, 0))
    antisymmetric = Q - Q.transpose(0, 2, 1)
    np.testing.assert_allclose(F.adaptive_conv2d(x, Q + antisymmetric, w, b).data,
                               F.adaptive_conv2d(x, Q, w, b).data, atol=1e-12)
    layer = AdaptiveConv2d(1, 3, 3, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(layer.Q.data, layer.Q.data.transpose(0, 2, 1))
    from ack_numpy.optim import Adam
    opt = Adam(layer.parameters(), lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        (layer(Tensor(x.astype(np.float32))) ** 2.0).sum().backward()
        opt.step()
    np.testing.assert_allclose(layer.Q.data, layer.Q.data.transpose(0, 2, 1), atol=1e-7)


@pytest.mark.parametrize("case", CASES)
def test_reference_im2col_version_matches_loops_and_fast_version_values_and_gradients(case):
    x, Q, w, b = random_args(case)
    s, p = case[6], case[7]
    np.testing.assert_allclose(F.adaptive_conv2d_reference(x, Q, w, b, s, p).data,
                               F.adaptive_conv2d_loops(x, Q, w, b, s, p), atol=1e-10, rtol=0)
    grads = []
    for op in (F.adaptive_conv2d_reference, F.adaptive_conv2d):
        tensors = [Tensor(a, requires_grad=True) for a in (x, Q, w, b)]
        out = op(*tensors, stride=s, padding=p)
        (out * Tensor(np.cos(np.arange(out.size)).reshape(out.shape))).sum().backward()
        grads.append([t.grad for t in tensors])
    for reference, fast in zip(*grads):
        np.testing.assert_allclose(fast, reference, atol=1e-10, rtol=0)


def test_reference_version_gradient_check():
    x, Q, w, b = random_args(CASES[1])
    check_gradients(lambda x_, Q_, w_, b_: F.adaptive_conv2d_reference(x_, Q_, w_, b_, 2, 1), x, Q, w, b)
    x, Q, _, _ = random_args(CASES[0], static_kernel=False, bias=False)
    check_gradients(lambda x_, Q_: F.adaptive_conv2d_reference(x_, Q_), x, Q)


@pytest.mark.parametrize("call, message", [
    (lambda: F.adaptive_conv2d(np.zeros((1, 0, 6, 6)), np.zeros((1, 0, 0))), "x has 0 channels"),
    (lambda: F.adaptive_conv2d(np.zeros((1, 1, 6, 6)), np.zeros((0, 9, 9))), r"Q of shape \(0, 9, 9\) is empty"),
    (lambda: F.adaptive_conv2d(np.zeros((1, 1, 6, 6)), np.zeros((2, 0, 0))), r"Q of shape \(2, 0, 0\) is empty"),
    (lambda: F.adaptive_conv2d(np.zeros((1, 1, 6, 6)), np.zeros((2, 9, 9)), padding=3), "padding 3 must be smaller"),
    (lambda: F.adaptive_conv2d(np.zeros((1, 1, 6, 6)), np.zeros((2, 9, 9)), stride=0.5), "stride must be a positive"),
    (lambda: F.adaptive_kernels(np.zeros((1, 0, 6, 6)), np.zeros((1, 0, 0))), "x has 0 channels"),
])
@pytest.mark.parametrize("rung", ["fast", "loops"])
def test_empty_and_bad_sizes_are_value_errors(call, message, rung, monkeypatch):
    if rung == "loops":  # the literal rung refuses the same arguments the same way
        monkeypatch.setattr(F, "adaptive_conv2d", F.adaptive_conv2d_loops)
        monkeypatch.setattr(F, "adaptive_kernels", F.adaptive_kernels_loops)
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("x_dtype", [np.float16, np.float64, np.int64])
def test_mixed_dtypes_are_refused_at_forward_naming_x_and_Q(x_dtype):
    # The rule: every input of an op has one dtype; ack_numpy does not promote.
    layer = AdaptiveConv2d(1, 2, 3, rng=np.random.default_rng(0))
    x = np.ones((1, 1, 5, 5), dtype=x_dtype)
    # float64 meets float32 in the op; float16 and int64 are no Tensor dtype at all.
    refused = rf"a Tensor holds float32 or float64, got {np.dtype(x_dtype)} data"
    expected = rf"adaptive_conv2d: inputs of different dtypes \(x \(1, 1, 5, 5\) float64, Q \(2, 9, 9\) float32|{refused}"
    for op in (F.adaptive_conv2d, F.adaptive_conv2d_reference, F.adaptive_conv2d_loops):
        with pytest.raises(TypeError, match=expected):
            op(x, layer.Q, layer.w, layer.b)
    with pytest.raises(TypeError, match=expected):
        layer(Tensor(x))
    with pytest.raises(TypeError, match=f"does not promote|{refused}"):
        layer.kernels(x)
    assert layer(Tensor(x.astype(np.float32))).dtype == np.float32  # the fix the message names works


def test_layer_constructor_refuses_bad_sizes_naming_the_argument():
    for args, kwargs, message in [
        ((1, 0, 3), {}, "AdaptiveConv2d: out_channels must be a positive integer, got 0"),
        ((0, 2, 3), {}, "AdaptiveConv2d: in_channels must be a positive integer, got 0"),
        ((1, 2, 0), {}, "AdaptiveConv2d: kernel_size must be a positive integer, got 0"),
        ((1, 2, -3), {}, "AdaptiveConv2d: kernel_size must be a positive integer, got -3"),
        ((1, 2, 2.5), {}, "AdaptiveConv2d: kernel_size must be a positive integer, got 2.5"),
        ((1, 2, "3"), {}, "AdaptiveConv2d: kernel_size must be a positive integer, got '3'"),
        ((1, 2, 3), {"stride": 0}, "AdaptiveConv2d: stride must be a positive integer, got 0"),
        ((1, 2, 3), {"padding": -1}, "AdaptiveConv2d: padding must be a non-negative integer, got -1"),
        ((1, 2, 3), {"padding": 10**6}, "AdaptiveConv2d: padding 1000000 must be smaller than kernel_size 3"),
        ((1, 2, 3), {"q_scale": float("nan")}, "AdaptiveConv2d: q_scale must be a finite number >= 0"),
        ((1, 2, 3), {"q_scale": -1.0}, "AdaptiveConv2d: q_scale must be a finite number >= 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            AdaptiveConv2d(*args, **kwargs)
    assert AdaptiveConv2d(1, 2, np.int64(3)).kernel_size == 3  # NumPy integers are integers


# ----------------------------------------------------------------------------- the literal backward
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("static_kernel", [True, False])
def test_literal_backward_equals_the_engine_backward(case, static_kernel):
    from ack_numpy.functional.adaptive import adaptive_conv2d_backward_loops

    x, Q, w, b = random_args(case, static_kernel, bias=static_kernel)
    s, p = case[6], case[7]
    tensors = [None if v is None else Tensor(v, requires_grad=True) for v in (x, Q, w, b)]
    sigma = F.adaptive_conv2d(*tensors, s, p)
    G = rng.normal(size=sigma.shape)                       # dL/dsigma for L = sum(sigma * G)
    (sigma * Tensor(G)).sum().backward()
    literal = adaptive_conv2d_backward_loops(x, Q, w, b, G, s, p)
    for name, t, mine in zip("xQwb", tensors, literal):
        if t is None:
            assert mine is None, f"d{name} should be None when {name} is None"
        else:
            assert mine.shape == t.grad.shape, name
            np.testing.assert_allclose(mine, t.grad, atol=1e-10, rtol=0, err_msg=f"d{name}")


def test_literal_backward_rejects_a_gradient_of_the_wrong_shape():
    from ack_numpy.functional.adaptive import adaptive_conv2d_backward_loops

    x, Q, w, b = random_args(CASES[0])
    with pytest.raises(ValueError, match=r"grad_sigma must have the shape of sigma \(N, O, Ho, Wo\) = \(2, 3, 4, 4\)"):
        adaptive_conv2d_backward_loops(x, Q, w, b, np.zeros((2, 3, 6, 6)))
