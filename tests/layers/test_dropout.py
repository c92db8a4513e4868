"""Tests of fnn.layers.dropout.Dropout: keys, modes, gradient, purity and errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import testing
from fnn.layers.dropout import Dropout

probs = st.floats(0.0, 0.9)


def normal_arrays(shape):
    """float64 standard-normal arrays drawn from a Hypothesis-chosen seed."""
    return st.integers(0, 2**32 - 1).map(lambda s: np.random.default_rng(s).normal(size=shape))


@st.composite
def cases(draw):
    shape = draw(testing.shapes(min_rank=2, max_rank=4))
    return Dropout(draw(probs)), draw(normal_arrays(shape)), draw(st.integers(0, 2**31))


@given(cases(), st.booleans())
def test_shape_is_preserved(case, training):
    """init's out_shape and forward's output keep the input's shape."""
    layer, x, key = case
    _, out_shape = layer.init(0, x.shape[1:], np.dtype(np.float64))
    assert layer.forward(x, key=key, training=training).shape == (x.shape[0], *out_shape)


@given(cases(), st.booleans(), st.integers(0, 2**31))
def test_gradient_matches_finite_differences(case, training, seed):
    """With the mask fixed by the key, dL/dx agrees with central differences."""
    layer, x, key = case
    testing.check_layer(layer, x, key=key, training=training, seed=seed)


@given(cases())
def test_same_key_same_mask_and_evaluation_is_identity(case):
    """The same key gives bit-identical outputs; evaluation mode returns x unchanged."""
    layer, x, key = case
    a = layer.forward(x, key=key, training=True)
    b = layer.forward(x, key=fnn.random.key(key), training=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.forward(x, key=key, training=False), x)


@given(cases())
def test_training_output_is_zero_or_scaled_input(case):
    """Every output is 0 or x / (1 - drop_prob), and vjp's y equals forward's."""
    layer, x, key = case
    y = layer.forward(x, key=key, training=True)
    scaled = x / (1 - layer.drop_prob)
    assert np.all((y == 0) | np.isclose(y, scaled, rtol=1e-15, atol=0))
    y2, _ = layer.vjp(x, key=key, training=True)
    np.testing.assert_array_equal(y, y2)


@given(cases())
def test_forward_and_pullback_are_pure(case):
    """forward/vjp leave x unchanged."""
    layer, x, key = case
    x0 = x.copy()
    y, pullback = layer.vjp(x, key=key, training=True)
    pullback(np.random.default_rng(0).normal(size=y.shape))
    np.testing.assert_array_equal(x, x0)


def test_drop_rate_and_mean_are_as_documented():
    """About drop_prob of the units are zeroed, different keys give different masks, and
    the mean is preserved (inverted dropout)."""
    x = np.ones((200, 500), np.float32)
    layer = Dropout(0.3)
    y = layer.forward(x, key=1, training=True)
    assert abs((y == 0).mean() - 0.3) < 0.01
    assert abs(y.mean() - 1.0) < 0.02
    assert y.dtype == np.float32
    assert not np.array_equal(y, layer.forward(x, key=2, training=True))


def test_drop_prob_zero_is_the_identity_even_in_training():
    """drop_prob=0 keeps every unit."""
    x = np.random.default_rng(0).normal(size=(4, 5))
    np.testing.assert_array_equal(Dropout(0.0).forward(x, key=0, training=True), x)


def test_network_threads_a_key_to_each_dropout_layer():
    """fnn.forward in training mode gives each Dropout its own key: two dropout layers in a
    row use different masks, the same network key repeats them, and evaluation is the identity."""
    net = fnn.init([Dropout(0.5), fnn.Identity(), Dropout(0.5)], (1000,), key=0)
    x = np.ones((2, 1000), np.float32)
    acts = fnn.activations(net, x, key=7, training=True)
    assert not np.array_equal(acts[1] == 0, acts[3] == 0)  # same key would give the same zeros
    np.testing.assert_array_equal(fnn.forward(net, x, key=7, training=True), acts[-1])
    np.testing.assert_array_equal(fnn.forward(net, x), x)


def test_network_gradient_with_dropout_uses_the_same_mask():
    """fnn.value_and_grad with a key passes the whole-network gradient check."""
    layers = [fnn.Dense(6), Dropout(0.4), fnn.Tanh(), fnn.Dense(2)]
    net = fnn.init(layers, (3,), key=1, dtype=np.float64)
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    testing.check_network(net, x, y, fnn.losses.mse, key=3, training=True)


@pytest.mark.parametrize(
    ("p", "err", "pattern"),
    [
        (1.0, ValueError, r"drop_prob must be in \[0, 1\).*1 would drop everything"),
        (-0.1, ValueError, r"drop_prob must be in \[0, 1\)"),
        (float("nan"), ValueError, r"drop_prob must be in \[0, 1\)"),
        ("0.5", TypeError, r"drop_prob must be a number"),
        (True, TypeError, r"drop_prob must be a number"),
    ],
)
def test_bad_drop_prob(p, err, pattern):
    """drop_prob outside [0, 1) or not a number is refused at construction."""
    with pytest.raises(err, match=pattern):
        Dropout(p)


def test_training_without_a_key_is_refused():
    """Training-mode forward without a key names the fix, at layer and at network level."""
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"needs a key.*key=fnn.random.key\(0\)"):
        Dropout(0.5).forward(x, training=True)
    with pytest.raises(ValueError, match=r"needs a key"):
        Dropout(0.5).vjp(x, training=True)
    net = fnn.init([Dropout(0.5)], (3,), key=0)
    with pytest.raises(ValueError, match=r"layers\[0\] \(Dropout\(drop_prob=0.5\)\).*needs a key"):
        fnn.forward(net, x, training=True)


def test_bad_inputs_and_cotangents():
    """Non-float inputs and wrong-shaped cotangents are refused."""
    with pytest.raises(TypeError, match="floating-point"):
        Dropout(0.5).forward(np.zeros((2, 3), np.int64))
    _, pullback = Dropout(0.5).vjp(np.zeros((2, 3)), key=0, training=True)
    with pytest.raises(ValueError, match=r"dy has shape \(3,\), expected \(2, 3\)"):
        pullback(np.zeros(3))
