"""Layers, parameter bookkeeping, models and optimisers."""
import numpy as np
import pytest

from ack_numpy import Tensor
from ack_numpy import optim
from ack_numpy.models import LENET_PARAMETERS, PAPER_BUDGET, MODELS, adaptive_layers, build_model
from ack_numpy.nn import Conv2d, Flatten, Linear, MaxPool2d, Parameter, ReLU, Sequential, Tanh

from ack_numpy.gradcheck import grad_check as check_gradients


def test_lenet_has_exactly_the_caffe_parameter_count():
    model = build_model("lenet")
    assert model.num_parameters() == LENET_PARAMETERS == 431_080
    shapes = {name: p.shape for name, p in model.named_parameters()}
    assert shapes["features.0.weight"] == (20, 1, 5, 5)
    assert shapes["features.2.weight"] == (50, 20, 5, 5)
    assert shapes["classifier.1.weight"] == (500, 800)
    assert shapes["classifier.3.weight"] == (10, 500)


def test_small_models_fit_the_paper_budget():
    assert PAPER_BUDGET == 6531
    ada, plain = build_model("adaptive-lenet"), build_model("plain-small")
    assert ada.num_parameters() == 6514 <= PAPER_BUDGET
    assert plain.num_parameters() <= PAPER_BUDGET
    assert len(adaptive_layers(ada)) == 1 and adaptive_layers(plain) == []
    # the ablation is the widest plain first layer that still fits the budget
    assert build_model("plain-small", channels=(10, 16)).num_parameters() > PAPER_BUDGET


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_map_images_to_ten_logits_in_float32(name):
    model = build_model(name, seed=1)
    x = Tensor(np.random.default_rng(0).uniform(size=(3, 1, 28, 28)).astype(np.float32))
    logits = model(x)
    assert logits.shape == (3, 10) and logits.dtype == np.float32


def test_model_options_are_explorable():
    model = build_model("adaptive-lenet", channels=(4, 8), kernel_sizes=(5, 3), adaptive=(True, True), hidden=32)
    assert len(adaptive_layers(model)) == 2
    assert model(Tensor(np.zeros((2, 1, 28, 28), np.float32))).shape == (2, 10)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'resnet'.*lenet"):
        build_model("resnet")


def test_same_seed_same_weights_different_seed_different_weights():
    a, b, c = build_model("adaptive-lenet", seed=3), build_model("adaptive-lenet", seed=3), build_model("adaptive-lenet", seed=4)
    for (name, p), (_, q), (_, r) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert not np.array_equal(a.named_parameters().__next__()[1].data, c.named_parameters().__next__()[1].data)


def test_state_dict_round_trip_and_mismatch_errors():
    a, b = build_model("adaptive-lenet", seed=0), build_model("adaptive-lenet", seed=1)
    b.load_state_dict(a.state_dict())
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    state = a.state_dict()
    state["features.0.Q"] = np.zeros((1, 2, 2))
    with pytest.raises(ValueError, match="'features.0.Q' has shape"):
        b.load_state_dict(state)
    with pytest.raises(ValueError, match="missing"):
        b.load_state_dict({})


def test_sequential_names_and_layer_gradients():
    rng = np.random.default_rng(0)
    net = Sequential(Conv2d(1, 2, 3, padding=1, rng=rng, dtype=np.float64), Tanh(), MaxPool2d(2), Flatten(),
                     Linear(2 * 2 * 2, 3, rng=rng, dtype=np.float64), ReLU())
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "4.weight", "4.bias"]
    check_gradients(lambda x: net(x), rng.normal(size=(2, 1, 4, 4)))


def test_linear_rejects_wrong_input_width():
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 4\)"):
        Linear(4, 2)(Tensor(np.zeros((3, 5))))


def quadratic_problem():
    # minimise |p - 3|^2 from p = 0
    p = Parameter(np.zeros(3))
    def loss():
        return ((p - 3.0) * (p - 3.0)).sum()
    return p, loss


def test_sgd_step_matches_the_formula():
    p = Parameter(np.array([1.0, -2.0]))
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    p.grad = np.array([0.5, 0.5])
    opt.step()  # v = g + wd*p;  p -= lr*v
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * (0.5 + 0.01), -2.0 - 0.1 * (0.5 - 0.02)])
    p.grad = np.array([0.5, 0.5])
    before = p.data.copy()
    opt.step()  # v = 0.9*v_prev + g + wd*p
    v = 0.9 * np.array([0.51, 0.48]) + 0.5 + 0.01 * before
    np.testing.assert_allclose(p.data, before - 0.1 * v)


def test_adam_first_step_moves_each_weight_by_lr():
    # after one step m_hat = g and v_hat = g^2, so the update is lr * sign(g) (up to eps)
    p = Parameter(np.array([1.0, 1.0, 1.0]))
    opt = optim.Adam([p], lr=0.01)
    p.grad = np.array([3.0, -0.2, 1e-3])
    opt.step()
    np.testing.assert_allclose(p.data, [0.99, 1.01, 0.99], atol=1e-6)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.5), lambda ps: optim.Adam(ps, lr=0.3)])
def test_optimisers_minimise_a_quadratic(make):
    p, loss = quadratic_problem()
    opt = make([p])
    for _ in range(200):
        opt.zero_grad()
        loss().backward()
        opt.step()
    np.testing.assert_allclose(p.data, 3.0, atol=1e-2)


def test_optimiser_state_round_trip():
    p, loss = quadratic_problem()
    opt = optim.Adam([p], lr=0.1)
    for _ in range(3):
        opt.zero_grad(); loss().backward(); opt.step()
    q = Parameter(p.data.copy())
    opt2 = optim.Adam([q], lr=0.1)
    opt2.load_state_dict(opt.state_dict())
    for o, param in ((opt, p), (opt2, q)):
        o.zero_grad()
        ((param - 3.0) * (param - 3.0)).sum().backward()
        o.step()
    np.testing.assert_array_equal(p.data, q.data)


def test_optimiser_errors():
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, inf\), got 0.0"):
        optim.SGD([Parameter(np.zeros(1))], lr=0)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([], lr=0.1)


@pytest.mark.parametrize("make, message", [
    (lambda ps: optim.SGD(ps, lr=float("inf")), r"lr must be a finite number in \(0, inf\), got inf"),
    (lambda ps: optim.SGD(ps, lr=float("nan")), r"lr must be a finite number .* got nan"),
    (lambda ps: optim.SGD(ps, lr=-0.1), r"lr must be .* got -0.1"),
    (lambda ps: optim.SGD(ps, lr="0.1"), r"lr must be a real number, got '0.1'"),
    (lambda ps: optim.SGD(ps, lr=True), r"lr must be a real number, got True"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=-5), r"momentum must be a finite number in \[0, 1\), got -5.0"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=1.0), r"momentum must be .*\[0, 1\), got 1.0"),
    (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=float("nan")), r"weight_decay must be a finite number in \[0, inf\), got nan"),
    (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1e-4), r"weight_decay must be .* got -0.0001"),
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.999)), r"betas\[0\] must be a finite number in \[0, 1\), got 1.0"),
    (lambda ps: optim.Adam(ps, betas=(0.9, -0.1)), r"betas\[1\] must be .* got -0.1"),
    (lambda ps: optim.Adam(ps, betas=0.9), r"betas must be a pair \(beta1, beta2\), got 0.9"),
    (lambda ps: optim.Adam(ps, eps=0.0), r"eps must be a finite number in \(0, inf\), got 0.0"),
    (lambda ps: optim.Adam(ps, weight_decay=float("inf")), r"weight_decay must be .* got inf"),
    (lambda ps: optim.Adam(ps + ps), r"optimizer parameter 1 is parameter 0 again \(shape \(2,\)\)"),
    (lambda ps: optim.SGD([ps[0], Tensor(np.zeros(2))], lr=0.1), r"optimizer parameter 1 is not a Tensor that requires grad"),
])
def test_every_hyperparameter_is_checked_naming_it(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make([Parameter(np.zeros(2))])


def test_the_edges_of_the_ranges_are_accepted():
    p = Parameter(np.zeros(2))
    optim.SGD([p], lr=1e-9, momentum=0.0, weight_decay=0.0)
    optim.Adam([p], lr=np.float32(0.01), betas=(0.0, 0.0), eps=1e-12)


def load_error(opt, state) -> str:
    with pytest.raises(ValueError) as caught:
        opt.load_state_dict(state)
    return str(caught.value)


def test_optimiser_state_is_checked_naming_the_entry():
    p = Parameter(np.zeros(2, dtype=np.float32))
    adam, sgd = optim.Adam([p]), optim.SGD([p], lr=0.1, momentum=0.9)
    good = adam.state_dict()
    assert load_error(adam, {k: v for k, v in good.items() if k != "t"}) == \
        "optimizer state has no entry 't' (Adam's step count)"
    assert load_error(adam, {**good, "t": np.array(1.5)}) == \
        "optimizer state 't' (Adam's step count) must be a non-negative integer, got float64 1.5"
    assert load_error(adam, {**good, "t": np.array(-1)}).endswith("got int64 -1")
    assert load_error(adam, {**good, "m.0": np.array([1j, 0])}) == \
        "optimizer state 'm.0' holds complex128 values, expected real numbers"
    assert load_error(adam, {**good, "v.0": np.array(["a", "b"])}) == \
        "optimizer state 'v.0' holds <U1 values, expected real numbers"
    assert load_error(adam, {**good, "v.0": np.array([np.nan, 0])}) == \
        "optimizer state 'v.0' holds NaN or infinite values"
    assert load_error(sgd, {}) == "optimizer state has no entry 'velocity.0'"
    assert load_error(sgd, {"velocity.0": np.zeros(3)}) == \
        "optimizer state 'velocity.0' has shape (3,), parameter has (2,)"


def test_a_refused_state_dict_leaves_the_model_as_it_was():
    model = Linear(2, 1, rng=np.random.default_rng(0))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    state = {k: np.full_like(v, 5.0) for k, v in before.items()}
    last = list(state)[-1]
    state[last] = np.full_like(state[last], np.nan)
    with pytest.raises(ValueError, match=rf"state_dict entry '{last}' holds NaN or infinite values"):
        model.load_state_dict(state)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("bad, error, message", [
    (np.array([np.nan, 1.0]), FloatingPointError, r"optimizer parameter 1 \(shape \(2,\)\): its gradient holds NaN or infinite values; no parameter"),
    (np.array([1.0]), ValueError, r"optimizer parameter 1 \(shape \(2,\)\) has a gradient of shape \(1,\)"),
    (np.ones((2, 2)), ValueError, r"has a gradient of shape \(2, 2\); no parameter was updated"),
])
@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.Adam(ps)])
def test_a_gradient_set_by_hand_is_checked_before_any_weight_moves(make, bad, error, message):
    a, b = Parameter(np.zeros(2)), Parameter(np.zeros(2))
    opt = make([a, b])
    a.grad, b.grad = np.ones(2), bad
    with pytest.raises(error, match=message):
        opt.step()
    np.testing.assert_array_equal(a.data, np.zeros(2))   # parameter 0 was not updated either
    for name, value in opt.state_dict().items():         # nor the optimiser's state (velocity; t, m, v)
        assert not np.any(value), name


def test_a_refused_adam_state_leaves_the_optimiser_as_it_was():
    p = Parameter(np.zeros(2, dtype=np.float32))
    adam = optim.Adam([p])
    good = {k: v.copy() for k, v in adam.state_dict().items()}
    bad = {**good, "t": np.array(7), "m.0": np.ones(2), "v.0": np.array([np.nan, 0])}
    with pytest.raises(ValueError, match="'v.0' holds NaN"):
        adam.load_state_dict(bad)
    assert adam.t == 0 and not adam.m[0].any() and not adam.v[0].any()


@pytest.mark.parametrize("value, dtype", [(np.array([1j, 2j]), "complex128"), (np.array(["a", "b"]), "<U1"),
                                          (np.array([1, 2]), "int64"), (np.array([True, False]), "bool")])
def test_module_state_dict_values_must_be_floats_naming_the_entry(value, dtype):
    model = Linear(2, 1, rng=np.random.default_rng(0))
    state = model.state_dict()
    name = next(iter(state))
    state[name] = value.reshape(state[name].shape) if value.size == state[name].size else np.resize(value, state[name].shape)
    with pytest.raises(ValueError, match=rf"state_dict entry '{name}' holds {dtype} values, expected floating-point"):
        model.load_state_dict(state)


@pytest.mark.parametrize("make, message", [
    (lambda: Conv2d(1, 0, 3), "Conv2d: out_channels must be a positive integer, got 0"),
    (lambda: Conv2d(0, 4, 3), "Conv2d: in_channels must be a positive integer, got 0"),
    (lambda: Conv2d(1, 4, 0), "Conv2d: kernel_size must be a positive integer, got 0"),
    (lambda: Conv2d(1, 4, -1), "Conv2d: kernel_size must be a positive integer, got -1"),
    (lambda: Conv2d(1, 4, 3, stride=1.0), "Conv2d: stride must be a positive integer, got 1.0"),
    (lambda: Conv2d(1, 4, 3, padding=-2), "Conv2d: padding must be a non-negative integer, got -2"),
    (lambda: Conv2d(1, 4, 3, padding=3), "Conv2d: padding 3 must be smaller than kernel_size 3"),
    (lambda: Linear(0, 10), "Linear: in_features must be a positive integer, got 0"),
    (lambda: Linear(10, -1), "Linear: out_features must be a positive integer, got -1"),
    (lambda: Linear(10, 2.0), "Linear: out_features must be a positive integer, got 2.0"),
    (lambda: MaxPool2d(0), "MaxPool2d: kernel_size must be a positive integer, got 0"),
    (lambda: MaxPool2d(2, stride=-1), "MaxPool2d: stride must be a positive integer, got -1"),
    # a model checks its options by its own rules before building a layer (models.check_options)
    (lambda: build_model("adaptive-lenet", channels=(0, 16)), r"model option 'channels' must be two whole numbers from 1"),
    (lambda: build_model("adaptive-lenet", kernel_sizes=(3, 0)), r"model option 'kernel_sizes' must be two whole numbers >= 1"),
])
def test_layers_refuse_bad_sizes_naming_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_float64_batch_into_a_float32_model_is_refused_at_the_first_layer():
    model = build_model("lenet", seed=0)
    with pytest.raises(TypeError, match=r"conv2d: inputs of different dtypes \(x \(2, 1, 28, 28\) float64"):
        model(Tensor(np.zeros((2, 1, 28, 28))))


def test_load_state_dict_of_something_else_than_a_dict_is_one_clear_error():
    from ack_numpy.models import build_model
    from ack_numpy.optim import SGD, Adam

    model = build_model("adaptive-lenet")
    for target in (model, Adam(model.parameters()), SGD(model.parameters(), lr=0.1)):
        with pytest.raises(TypeError, match=r"needs a dict of name -> array \(what state_dict\(\) returns\), got NoneType"):
            target.load_state_dict(None)


def test_load_state_dict_refuses_values_too_large_for_the_parameters_dtype():
    from ack_numpy.nn import Linear

    layer = Linear(1, 2)
    before = layer.weight.data.copy()
    with pytest.raises(ValueError, match="state_dict entry 'weight' holds values too large for float32"):
        layer.load_state_dict({"weight": np.full((2, 1), 1e300), "bias": np.zeros(2)})
    assert np.array_equal(layer.weight.data, before)


def test_an_optimizer_state_for_other_parameters_is_refused_not_half_loaded():
    from ack_numpy.nn import Linear
    from ack_numpy.optim import Adam

    two = Adam(Linear(2, 2).parameters())
    one = Adam(list(Linear(2, 2).parameters())[:1])
    with pytest.raises(ValueError, match=r"optimizer state has entries this optimizer does not have: \['m.1', 'v.1'\]"):
        one.load_state_dict(two.state_dict())
