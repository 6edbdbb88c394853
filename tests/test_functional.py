"""im2col, conv2d, pooling and losses: literal-vs-fast agreement and gradient checks."""
import numpy as np
import pytest

import ack_numpy.functional as F
from ack_numpy import Tensor
from ack_numpy.functional.conv import col2im_batch_last, im2col_batch_last

from ack_numpy.gradcheck import grad_check as check_gradients

rng = np.random.default_rng(7)

CONV_CASES = [  # (N, C, H, W, O, m, stride, padding)
    (2, 3, 7, 7, 4, 3, 1, 0),
    (2, 3, 7, 6, 4, 3, 2, 1),
    (1, 2, 8, 8, 3, 5, 1, 2),
    (3, 1, 6, 6, 2, 2, 2, 0),
    (1, 2, 5, 5, 2, 3, 3, 1),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_im2col_matches_loops_and_col2im_is_its_adjoint(case):
    n, c, h, w, _, m, s, p = case
    x = rng.normal(size=(n, c, h, w))
    cols = F.im2col(x, m, s, p)
    np.testing.assert_array_equal(cols, F.im2col_loops(x, m, s, p))
    y = rng.normal(size=cols.shape)
    np.testing.assert_allclose(F.col2im(y, x.shape, m, s, p), F.col2im_loops(y, x.shape, m, s, p), atol=1e-12, rtol=0)
    # adjoint: <im2col(x), y> == <x, col2im(y)> for every x, y
    y = rng.normal(size=cols.shape)
    assert np.sum(cols * y) == pytest.approx(np.sum(x * F.col2im(y, x.shape, m, s, p)), rel=1e-12)


@pytest.mark.parametrize("col2im", [F.col2im, F.col2im_loops])
def test_col2im_with_a_wrong_shape_names_both_shapes(col2im):
    with pytest.raises(ValueError, match=r"col2im: cols has shape \(10, 9\), expected \(N\*Ho\*Wo, C\*m\*m\) = "
                                         r"\(18, 9\) for x_shape \(2, 1, 5, 5\), kernel_size 3, stride 1, padding 0"):
        col2im(np.zeros((10, 9)), (2, 1, 5, 5), 3)
    with pytest.raises(ValueError, match=r"col2im: x_shape must be \(N, C, H, W\), got \(5, 5\)"):
        col2im(np.zeros((9, 9)), (5, 5), 3)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_batch_last_layout_reorders_the_rows_and_its_col2im_is_the_adjoint(case):
    # conv2d's own layout: the same patches, locations in (i, j, n) order instead of (n, i, j)
    n, c, h, w, _, m, s, p = case
    x = rng.normal(size=(n, c, h, w))
    PT = im2col_batch_last(x, m, s, p)
    out_h, out_w = F.conv_output_size(h, m, s, p), F.conv_output_size(w, m, s, p)
    expected = F.im2col_loops(x, m, s, p).reshape(n, out_h, out_w, -1).transpose(1, 2, 0, 3).reshape(PT.T.shape)
    np.testing.assert_array_equal(PT.T, expected)
    dPT = rng.normal(size=PT.shape)
    dx = col2im_batch_last(dPT, x.shape, m, s, p)
    assert dx.shape == x.shape and dx.flags.c_contiguous
    assert np.sum(PT * dPT) == pytest.approx(np.sum(x * dx), rel=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_im2col_equals_loops(case):
    n, c, h, w, o, m, s, p = case
    x, weight, bias = rng.normal(size=(n, c, h, w)), rng.normal(size=(o, c, m, m)), rng.normal(size=o)
    fast = F.conv2d(x, weight, bias, s, p).data
    np.testing.assert_allclose(fast, F.conv2d_loops(x, weight, bias, s, p), atol=1e-12, rtol=0)


@pytest.mark.parametrize("case", CONV_CASES[:3])
def test_conv2d_gradients(case):
    n, c, h, w, o, m, s, p = case
    check_gradients(lambda x, k, b: F.conv2d(x, k, b, s, p),
                    rng.normal(size=(n, c, h, w)), rng.normal(size=(o, c, m, m)), rng.normal(size=o))


def test_conv2d_errors():
    with pytest.raises(ValueError, match="x has 3 channels but the weight expects 2"):
        F.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        F.conv2d(np.zeros((3, 5, 5)), np.zeros((4, 3, 3, 3)))
    with pytest.raises(ValueError, match="does not fit"):
        F.conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3)))
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=0)


@pytest.mark.parametrize("k, s, size", [(2, 2, 6), (2, 2, 7), (3, 2, 7), (3, 1, 5), (2, 3, 8)])
def test_max_pool(k, s, size):
    x = rng.normal(size=(2, 3, size, size))  # continuous values: no ties, so the argmax is unique
    np.testing.assert_array_equal(F.max_pool2d(x, k, s).data, F.max_pool2d_loops(x, k, s))
    check_gradients(lambda t: F.max_pool2d(t, k, s), x)


def test_max_pool_ties_go_to_the_first_element_and_nan_propagates():
    # Like np.argmax: on a tie the first element of the window (row-major) wins the gradient.
    x = Tensor(np.zeros((1, 1, 4, 4)), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0], np.tile([[1, 0], [0, 0]], (2, 2)))
    # A NaN in a window is not hidden by the maximum (the loss must become NaN, not stay finite).
    x_nan = np.arange(16.0).reshape(1, 1, 4, 4)
    x_nan[0, 0, 0, 1] = np.nan
    assert np.isnan(F.max_pool2d(x_nan, 2).data[0, 0, 0, 0])
    assert not np.isnan(F.max_pool2d(x_nan, 2).data[0, 0, 1, 1])


def test_log_softmax_and_cross_entropy():
    z = rng.normal(size=(5, 4)) * 3
    np.testing.assert_allclose(np.exp(F.log_softmax(z).data).sum(axis=1), 1.0)
    check_gradients(lambda t: F.log_softmax(t, axis=1), z)
    targets = np.array([0, 3, 1, 1, 2])
    check_gradients(lambda t: F.cross_entropy(t, targets), z)
    expected = -np.mean(F.log_softmax(z).data[np.arange(5), targets])
    assert F.cross_entropy(z, targets).item() == pytest.approx(expected)


def test_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1000.0, 0.0], [0.0, -1000.0]])
    loss = F.cross_entropy(z, np.array([0, 0])).item()
    assert np.isfinite(loss) and loss == pytest.approx(0.0)


def test_cross_entropy_errors():
    with pytest.raises(ValueError, match=r"targets must be in \[0, 3\)"):
        F.cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="integer targets"):
        F.cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))


def test_linear_gradients():
    check_gradients(lambda x, w, b: F.linear(x, w, b), rng.normal(size=(4, 3)), rng.normal(size=(2, 3)),
                    rng.normal(size=2))


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_reference_matches_loops_and_fast_version_values_and_gradients(case):
    n, c, h, w, o, m, s, p = case
    x, weight, bias = rng.normal(size=(n, c, h, w)), rng.normal(size=(o, c, m, m)), rng.normal(size=o)
    np.testing.assert_allclose(F.conv2d_reference(x, weight, bias, s, p).data,
                               F.conv2d_loops(x, weight, bias, s, p), atol=1e-12, rtol=0)
    grads = []
    for op in (F.conv2d_reference, F.conv2d):
        tensors = [Tensor(a, requires_grad=True) for a in (x, weight, bias)]
        out = op(*tensors, stride=s, padding=p)
        (out * Tensor(np.sin(np.arange(out.size)).reshape(out.shape))).sum().backward()
        grads.append([t.grad for t in tensors])
    for reference, fast in zip(*grads):
        np.testing.assert_allclose(fast, reference, atol=1e-10, rtol=0)
    check_gradients(lambda x_, k_, b_: F.conv2d_reference(x_, k_, b_, s, p), x, weight, bias)


# ----------------------------------------------------------------------------- hostile arguments
X = np.zeros((1, 2, 6, 6))


@pytest.mark.parametrize("call, message", [
    (lambda: F.conv2d(np.zeros((1, 0, 6, 6)), np.zeros((2, 0, 3, 3))), "x has 0 channels"),
    (lambda: F.conv2d(X, np.zeros((0, 2, 3, 3))), r"weight of shape \(0, 2, 3, 3\) is empty"),
    (lambda: F.conv2d(X, np.zeros((2, 2, 0, 0))), r"weight of shape \(2, 2, 0, 0\) is empty"),
    (lambda: F.conv2d(X, np.zeros((2, 2, 3, 3)), stride=1.0), "stride must be a positive integer, got 1.0"),
    (lambda: F.conv2d(X, np.zeros((2, 2, 3, 3)), padding=-1), "padding must be a non-negative integer, got -1"),
    (lambda: F.conv2d(X, np.zeros((2, 2, 3, 3)), padding=10**6), "padding 1000000 must be smaller than the kernel size 3"),
    (lambda: F.conv2d(X, np.zeros((2, 2, 3, 3)), stride=True), "stride must be a positive integer, got True"),
    (lambda: F.max_pool2d(X, 0), "kernel_size must be a positive integer, got 0"),
    (lambda: F.max_pool2d(X, -2), "kernel_size must be a positive integer, got -2"),
    (lambda: F.max_pool2d(X, 2.0), "kernel_size must be a positive integer, got 2.0"),
    (lambda: F.max_pool2d(X, 2, stride=0), "stride must be a positive integer, got 0"),
    (lambda: F.max_pool2d(X, 7), "kernel of size 7 does not fit an input of size 6"),
    (lambda: F.im2col(X, 0), "kernel_size must be a positive integer, got 0"),
    (lambda: F.im2col(X[0], 3), r"im2col expects x of shape \(N, C, H, W\), got shape \(2, 6, 6\)"),
    (lambda: F.im2col_loops(X[0], 3), r"im2col_loops expects x of shape \(N, C, H, W\), got shape \(2, 6, 6\)"),
    (lambda: F.im2col(X[:, :0], 3), r"im2col: x has 0 channels"),
    (lambda: F.cross_entropy(np.zeros((0, 10)), np.zeros(0, dtype=np.int64)), "cross_entropy: no examples"),
])
def test_bad_sizes_are_value_errors_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("x_dtype", [np.float16, np.float64, np.int64])
def test_mixed_dtypes_are_refused_before_any_work_naming_the_inputs(x_dtype):
    x, weight, bias = np.zeros((1, 2, 6, 6), dtype=x_dtype), np.zeros((3, 2, 3, 3), np.float32), np.zeros(3, np.float32)
    # float64 meets float32 in the op; float16 and int64 are no Tensor dtype at all.
    refused = rf"a Tensor holds float32 or float64, got {np.dtype(x_dtype)} data"
    expected = rf"conv2d: inputs of different dtypes \(x \(1, 2, 6, 6\) float64, weight .* float32|{refused}"
    for op in (F.conv2d, F.conv2d_reference, F.conv2d_loops):
        with pytest.raises(TypeError, match=expected):
            op(x, weight, bias)
    with pytest.raises(TypeError, match=rf"linear: inputs of different dtypes \(x \(4, 3\) float64|{refused}"):
        F.linear(np.zeros((4, 3), dtype=x_dtype), np.zeros((2, 3), np.float32))


def test_the_loop_rungs_check_their_arguments_like_the_fast_ones():
    with pytest.raises(ValueError, match="x has 2 channels but the weight expects 3"):
        F.conv2d_loops(X, np.zeros((1, 3, 3, 3)))
    with pytest.raises(ValueError, match="kernel_size must be a positive integer"):
        F.max_pool2d_loops(X, 0)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        F.im2col_loops(X, 3, stride=0)


def test_an_empty_batch_gives_an_empty_output():
    # N = 0 is a batch with no images, not an error: the output has N = 0 too.
    assert F.conv2d(np.zeros((0, 2, 6, 6)), np.zeros((3, 2, 3, 3))).shape == (0, 3, 4, 4)
    assert F.max_pool2d(np.zeros((0, 2, 6, 6))).shape == (0, 2, 3, 3)
