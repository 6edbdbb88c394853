"""The rung switch: a layer calls the fast, reference or loops version of its op, and all
three give the same values and gradients through a whole model; the literal backward of
conv2d against finite differences; each op's backward has its own name."""
import numpy as np
import pytest

import ack_numpy.functional as F
from ack_numpy import Tensor
from ack_numpy.gradcheck import grad_check
from ack_numpy.models import build_model
from ack_numpy.nn import AdaptiveConv2d, Conv2d

rng = np.random.default_rng(24)


def float64_model(name: str):
    model = build_model(name, seed=1)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    return model


def values_and_gradients(model, x: np.ndarray, labels: np.ndarray):
    model.zero_grad()
    xt = Tensor(x, requires_grad=True)
    logits = model(xt)
    F.cross_entropy(logits, labels).backward()
    return logits.data, xt.grad, [p.grad for p in model.parameters()]


@pytest.mark.parametrize("name", ["adaptive-lenet", "plain-small", "lenet"])
def test_every_rung_agrees_through_a_whole_model_forward_and_backward(name):
    model = float64_model(name)
    x, labels = rng.normal(size=(2, 1, 28, 28)), np.array([3, 7])
    results = {}
    for rung in ("fast", "reference", "loops"):
        model.use_rung(rung)
        results[rung] = values_and_gradients(model, x, labels)
    fast_logits, fast_dx, fast_grads = results["fast"]
    assert all(g is not None for g in fast_grads)
    for rung in ("reference", "loops"):
        logits, dx, grads = results[rung]
        np.testing.assert_allclose(logits, fast_logits, atol=1e-10, rtol=0, err_msg=rung)
        np.testing.assert_allclose(dx, fast_dx, atol=1e-10, rtol=0, err_msg=rung)
        for (pname, _), g, fast in zip(model.named_parameters(), grads, fast_grads):
            np.testing.assert_allclose(g, fast, atol=1e-10, rtol=0, err_msg=f"{rung}: d{pname}")


def test_use_rung_reaches_every_conv_layer_and_the_graph_shows_which_op_ran():
    model = build_model("adaptive-lenet", seed=0).use_rung("loops")
    first, second = model.features[0], model.features[2]
    assert isinstance(first, AdaptiveConv2d) and isinstance(second, Conv2d)
    assert first.rung == second.rung == "loops"
    assert "rung='loops'" in repr(model)
    ops = {t._op for t in model(Tensor(np.zeros((1, 1, 28, 28), np.float32))).topological_order()}
    assert {"adaptive_conv2d_loops", "conv2d_loops"} <= ops and "adaptive_conv2d" not in ops
    model.use_rung("fast")
    ops = {t._op for t in model(Tensor(np.zeros((1, 1, 28, 28), np.float32))).topological_order()}
    assert {"adaptive_conv2d", "conv2d"} <= ops and "conv2d_loops" not in ops


@pytest.mark.parametrize("options", [{"q_form": "diagonal"}, {"q_form": "low-rank", "q_rank": 1}])
def test_a_layer_with_only_the_fast_op_refuses_other_rungs_and_nothing_changes(options):
    model = build_model("adaptive-lenet", seed=0, **options)
    second = model.features[2]
    with pytest.raises(ValueError, match=r"use_rung\('loops'\): \w+ has only the fast version"):
        model.use_rung("loops")
    assert second.rung == "fast"  # refused before any layer was changed
    assert model.use_rung("fast") is model
    plain = build_model("plain-small", seed=0, first_activation="quadratic").use_rung("loops")  # s + a s^2: element-wise
    assert plain.features[0].rung == plain.features[4].rung == "loops"


def test_float32_stays_float32_on_every_rung():
    layer = AdaptiveConv2d(1, 2, 3, rng=np.random.default_rng(0))
    x = Tensor(rng.normal(size=(1, 1, 6, 6)).astype(np.float32), requires_grad=True)
    for rung in ("fast", "reference", "loops"):
        layer.rung = rung
        layer.zero_grad()
        y = layer(x)
        y.sum().backward()
        assert y.dtype == np.float32 and layer.Q.grad.dtype == np.float32, rung


@pytest.mark.parametrize("make", [lambda r: Conv2d(1, 2, 3, rung=r), lambda r: AdaptiveConv2d(1, 2, 3, rung=r),
                                  lambda r: build_model("lenet").use_rung(r)])
def test_an_unknown_rung_is_one_clear_error(make):
    with pytest.raises(ValueError, match="rung must be one of 'fast', 'reference', 'loops', got 'loop'"):
        make("loop")


def test_a_wrong_rung_set_by_hand_is_refused_at_forward():
    layer = Conv2d(1, 2, 3)
    layer.rung = "slow"
    with pytest.raises(ValueError, match="Conv2d: rung must be one of"):
        layer(Tensor(np.zeros((1, 1, 5, 5), np.float32)))


CASES = [  # (N, C, H, W, O, m, stride, padding)
    (2, 1, 6, 6, 3, 3, 1, 0),
    (1, 2, 7, 6, 2, 3, 2, 1),
    (1, 3, 5, 5, 2, 2, 1, 1),
]


@pytest.mark.parametrize("case", CASES)
def test_conv2d_loops_backward_finite_differences(case):
    n, c, h, w, o, m, s, p = case
    x, W, b = rng.normal(size=(n, c, h, w)), rng.normal(size=(o, c, m, m)), rng.normal(size=o)
    grad_check(lambda x_, W_, b_: F.conv2d_loops_with_grad(x_, W_, b_, s, p), x, W, b)
    grad_check(lambda x_, W_: F.conv2d_loops_with_grad(x_, W_, None, s, p), x, W)


@pytest.mark.parametrize("case", CASES)
def test_adaptive_conv2d_loops_backward_finite_differences(case):
    n, c, h, w, o, m, s, p = case
    D = c * m * m
    x, Q, wk, b = rng.normal(size=(n, c, h, w)), rng.normal(size=(o, D, D)), rng.normal(size=(o, D)), rng.normal(size=o)
    grad_check(lambda *t: F.adaptive_conv2d_loops_with_grad(*t, stride=s, padding=p), x, Q, wk, b)
    grad_check(lambda x_, Q_: F.adaptive_conv2d_loops_with_grad(x_, Q_, None, None, s, p), x, Q)


def test_conv2d_literal_backward_rejects_a_gradient_of_the_wrong_shape():
    from ack_numpy.functional.conv import conv2d_backward_loops

    with pytest.raises(ValueError, match=r"grad_y must have the shape of y \(N, O, Ho, Wo\) = \(1, 2, 3, 3\)"):
        conv2d_backward_loops(np.zeros((1, 1, 5, 5)), np.zeros((2, 1, 3, 3)), None, np.zeros((1, 2, 5, 5)))


def test_each_backward_is_named_after_its_op():
    # a traceback from inside backward() names the op: _matmul_backward, _conv2d_backward, ...
    a = Tensor(rng.normal(size=(2, 1, 5, 5)), requires_grad=True)
    Q, W = Tensor(rng.normal(size=(2, 9, 9)), requires_grad=True), Tensor(rng.normal(size=(2, 1, 3, 3)), requires_grad=True)
    outs = [F.adaptive_conv2d(a, Q), F.adaptive_conv2d_reference(a, Q), F.adaptive_conv2d_loops_with_grad(a, Q),
            F.conv2d(a, W), F.conv2d_reference(a, W), F.conv2d_loops_with_grad(a, W), F.max_pool2d(a, 2)]
    m = a.reshape(2, 25)
    outs += [m + m, m * m, m / 2.0, -m, m ** 2, m @ m.T, m.sum(), m.transpose(1, 0), m[0], m.exp(), (m * m + 1.0).log(),
             m.tanh(), m.relu(), F.log_softmax(m), F.cross_entropy(m, np.array([0, 1]))]
    from ack_numpy.functional import quadratic
    q, U, V = (Tensor(rng.normal(size=shape), requires_grad=True) for shape in ((2, 9), (2, 3, 9), (2, 3, 9)))
    outs += [quadratic.diagonal_adaptive_conv2d(a, q), quadratic.lowrank_adaptive_conv2d(a, U, V),
             quadratic.quadratic_activation(a, Tensor(np.ones(1), requires_grad=True))]
    names = set()
    for out in outs:
        assert out._backward.__name__ == f"_{out._op}_backward", out._op
        names.add(out._backward.__name__)
    assert len(names) == len(outs)   # no two ops share a name
