"""Tests of fnn.layers.dense.Dense: shape, gradient, purity and errors."""

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import testing
from fnn.layers.dense import Dense

dims = st.integers(1, 6)


@st.composite
def built_dense(draw):
    d_in, units = draw(dims), draw(dims)
    layer = Dense(units, use_bias=draw(st.booleans()))
    built, out_shape = layer.init(draw(st.integers(0, 2**31)), (d_in,), np.dtype(np.float64))
    x = draw(testing.arrays((draw(testing.batch_sizes()), d_in)))
    return built, out_shape, x


@st.composite
def built_sequence_dense(draw):
    """A Dense built for (batch, time, d_in) sequences, and such a batch (time 1 included)."""
    d_in, units, time = draw(dims), draw(dims), draw(st.integers(1, 5))
    layer = Dense(units, use_bias=draw(st.booleans()))
    built, out_shape = layer.init(draw(st.integers(0, 2**31)), (time, d_in), np.dtype(np.float64))
    x = draw(testing.arrays((draw(testing.batch_sizes()), time, d_in)))
    return built, out_shape, x


@given(built_sequence_dense(), st.integers(0, 2**31))
def test_sequences_act_on_the_last_axis(case, seed):
    """On (batch, time, d_in) Dense maps every step alike: init promises (time, units), forward
    equals the 2-D layer on the flattened steps, and the gradients match finite differences."""
    layer, out_shape, x = case
    y = layer.forward(x)
    assert y.shape == (x.shape[0], *out_shape) == (*x.shape[:2], layer.units)
    flat = layer.forward(x.reshape(-1, x.shape[-1])).reshape(y.shape)
    np.testing.assert_allclose(y, flat, rtol=1e-12, atol=1e-12)
    testing.check_layer(layer, x, seed=seed)


def test_sequence_shape_errors_name_the_fix():
    """A 4-D input asks for a Flatten; a wrong width on a sequence names (batch, time, d_in)."""
    layer, _ = Dense(2).init(0, (3,), np.dtype(np.float64))
    with pytest.raises(ValueError, match=r"put a Flatten\(\) before it"):
        layer.forward(np.zeros((1, 2, 2, 3)))
    with pytest.raises(ValueError, match=r"built for \(batch, time, 3\)"):
        layer.forward(np.zeros((1, 2, 4)))


@given(built_dense())
def test_shape_promised_by_init_is_produced(case):
    """The shape init promises equals the shape forward produces."""
    layer, out_shape, x = case
    assert layer.forward(x).shape == (x.shape[0], *out_shape)


@given(built_dense(), st.integers(0, 2**31))
def test_gradient_matches_finite_differences(case, seed):
    """dL/dx, dL/dW and dL/db agree with central differences for a random cotangent."""
    layer, _, x = case
    testing.check_layer(layer, x, seed=seed)


@given(built_dense())
def test_forward_and_pullback_are_pure(case):
    """forward/vjp leave x and the parameters unchanged and read-only."""
    layer, _, x = case
    x0, w0 = x.copy(), layer.w.copy()
    y, pullback = layer.vjp(x)
    dlayer, _ = pullback(np.random.default_rng(0).normal(size=y.shape))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(layer.w, w0)
    assert not layer.w.flags.writeable
    assert not dlayer.w.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        layer.w[0, 0] = 1.0


def test_float32_stays_float32():
    """A float32 layer computes its output and gradients in float32."""
    layer, _ = Dense(3).init(0, (2,), np.dtype(np.float32))
    y, pullback = layer.vjp(np.ones((4, 2), np.float32))
    dlayer, dx = pullback(np.full((4, 3), 0.5, np.float32) * np.arange(3, dtype=np.float32))
    assert y.dtype == dlayer.w.dtype == dlayer.b.dtype == dx.dtype == np.float32


def test_need_dx_false_skips_input_gradient():
    """With need_dx=False the pullback returns dx=None but the same parameter gradients."""
    layer, _ = Dense(3).init(0, (2,), np.dtype(np.float64))
    x = np.arange(8.0).reshape(4, 2)
    dy = np.arange(12.0).reshape(4, 3) - 5
    d1, dx1 = layer.vjp(x)[1](dy)
    d2, dx2 = layer.vjp(x, need_dx=False)[1](dy)
    assert dx1 is not None and dx2 is None
    assert fnn.tree.allclose(d1, d2)


def test_broken_bias_gradient_is_caught():
    """A Dense whose bias gradient is a mean instead of a sum fails the gradient check."""

    @attrs.frozen(eq=False)
    class MeanBiasDense(Dense):
        def vjp(self, x, *, key=None, training=False, need_dx=True):
            y, pullback = super().vjp(x, need_dx=need_dx)

            def wrong(dy):
                dlayer, dx = pullback(dy)
                return attrs.evolve(dlayer, b=dy.mean(axis=0)), dx

            return y, wrong

    layer, _ = MeanBiasDense(3).init(0, (2,), np.dtype(np.float64))
    x = np.random.default_rng(1).normal(size=(4, 2))
    with pytest.raises(testing.GradientCheckError, match=r"FAIL b \(direction"):
        testing.check_layer(layer, x)
    report = testing.check_layer(layer, x, raise_on_fail=False)
    assert not report.ok and report.worst.where.startswith("b")


def test_zero_backward_pass_is_caught():
    """A pullback that returns zeros for dx fails the check (random cotangents)."""

    @attrs.frozen(eq=False)
    class ZeroDx(Dense):
        def vjp(self, x, *, key=None, training=False, need_dx=True):
            y, pullback = super().vjp(x)
            return y, lambda dy: (pullback(dy)[0], np.zeros_like(x))

    layer, _ = ZeroDx(2).init(0, (3,), np.dtype(np.float64))
    with pytest.raises(testing.GradientCheckError, match=r"FAIL x"):
        testing.check_layer(layer, np.random.default_rng(2).normal(size=(2, 3)))


@pytest.mark.parametrize(
    ("x", "err", "pattern"),
    [
        (
            np.zeros((4, 2)),
            ValueError,
            r"Dense\(units=10\): x has shape \(4, 2\) but this layer was built for \(batch, 3\)",
        ),
        (np.zeros((3, 5)), ValueError, r"did you pass x transposed\?"),
        (np.zeros(3), ValueError, r"add a batch axis with x\[None\]"),
        (np.zeros((2, 3), np.int64), TypeError, r"floating-point"),
        (np.zeros((2, 3), np.float32), TypeError, r"cast the input with x.astype\(np.float64\)"),
        ([[0.0, 0.0, 0.0]], TypeError, r"must be a NumPy array"),
    ],
)
def test_bad_inputs_name_the_problem(x, err, pattern):
    """Wrong width, rank, dtype or kind raise with the layer's name and the fix."""
    layer, _ = Dense(10).init(0, (3,), np.dtype(np.float64))
    with pytest.raises(err, match=pattern):
        layer.forward(x)


def test_bad_configs_and_unbuilt_layers():
    """units must be a positive int; an unbuilt layer refuses to run; init needs a vector input."""
    with pytest.raises(ValueError, match="units must be a positive int"):
        Dense(0)
    with pytest.raises(ValueError, match="not initialised"):
        Dense(2).forward(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="put a Flatten"):
        Dense(2).init(0, (4, 4, 1), np.dtype(np.float64))
    with pytest.raises(ValueError, match="unknown initialiser 'nope'"):
        Dense(2, w_init="nope")


def test_pullback_rejects_wrong_cotangent_shape():
    """A cotangent of the wrong shape is refused rather than broadcast."""
    layer, _ = Dense(2).init(0, (3,), np.dtype(np.float64))
    _, pullback = layer.vjp(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"dy has shape \(4, 1\), expected \(4, 2\)"):
        pullback(np.zeros((4, 1)))
