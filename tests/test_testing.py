"""Tests of fnn.testing: the public gradient checks catch wrong gradients and pass right ones."""

import attrs
import numpy as np
import pytest
from hypothesis import given

import fnn
from fnn import losses, testing


def test_check_vjp_accepts_a_right_and_rejects_a_wrong_derivative():
    """d sin = cos passes; d sin = -cos and d sin = 0 fail."""
    x = np.linspace(-1, 1, 7)
    right = testing.check_vjp(np.sin, lambda x: (np.sin(x), lambda dy: dy * np.cos(x)), x)
    assert right.ok and right.max_rel_error < 1e-6
    for wrong in (lambda dy: -dy * np.cos(x), lambda dy: 0 * dy):
        with pytest.raises(testing.GradientCheckError, match="FAILED"):
            testing.check_vjp(np.sin, lambda x, w=wrong: (np.sin(x), w), x)


def test_check_loss_catches_a_factor_of_two():
    """An MSE whose gradient forgets the factor 2 (the classic 2/n vs 1/n bug) fails."""

    def half(pred, y):
        v, g = losses.mse.value_and_grad(pred, y)
        return v, g / 2

    bad = losses.Loss("half_mse", half)
    pred, y = np.random.default_rng(0).normal(size=(2, 3, 2))
    report = testing.check_loss(bad, pred, y, raise_on_fail=False)
    assert not report.ok
    assert "half_mse" in str(report) and "FAIL" in str(report)


def test_check_network_catches_a_broken_layer_inside_a_network():
    """A Dense with a mean-instead-of-sum bias gradient is caught at the network level."""

    @attrs.frozen(eq=False)
    class MeanBias(fnn.Dense):
        def vjp(self, x, *, key=None, training=False, need_dx=True):
            y, pb = super().vjp(x, need_dx=need_dx)
            return y, lambda dy: (attrs.evolve(pb(dy)[0], b=dy.mean(0)), pb(dy)[1])

    net = fnn.init([fnn.Dense(3), fnn.Tanh(), MeanBias(2)], (4,), key=0, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(5, 4))
    y = np.random.default_rng(1).normal(size=(5, 2))
    with pytest.raises(testing.GradientCheckError, match=r"FAIL layers\[2\]\.b"):
        testing.check_network(net, x, y, losses.mse)


def test_checks_require_float64():
    """float32 layers and inputs are refused with the fix."""
    layer, _ = fnn.Dense(2).init(0, (3,), np.dtype(np.float32))
    with pytest.raises(TypeError, match=r"dtype=np\.float64"):
        testing.check_layer(layer, np.zeros((1, 3), np.float32))


def test_tolerances_are_settable_and_reported():
    """A report carries the tolerances; an impossible rtol makes a right gradient fail."""
    layer, _ = fnn.Dense(2).init(0, (3,), np.dtype(np.float64))
    x = np.random.default_rng(0).normal(size=(2, 3))
    report = testing.check_layer(layer, x, rtol=1e-6, atol=1e-8)
    assert report.rtol == 1e-6 and "rtol=1e-06" in str(report)
    strict = testing.check_layer(layer, x, rtol=1e-30, atol=0.0, raise_on_fail=False)
    assert not strict.ok


@given(testing.networks())
def test_networks_strategy_builds_float64_mlps(net):
    """Generated networks are float64, built and start with a Dense layer."""
    assert net.dtype == np.float64
    assert isinstance(net.layers[0], fnn.Dense)
    assert all(layer.built for layer in net.layers)


@given(testing.arrays((3, 4), low=-1, high=1, away_from=(0.0,), margin=0.1))
def test_arrays_strategy_respects_bounds_and_margins(x):
    """Generated arrays are float64, inside the bounds and away from the given points."""
    assert x.dtype == np.float64 and x.shape == (3, 4)
    assert (np.abs(x) <= 1).all() and (np.abs(x) >= 0.1).all()


@given(testing.dense_layers())
def test_dense_layers_strategy(layer):
    """Generated Dense layers are unbuilt with a positive width."""
    assert not layer.built and layer.units >= 1


def test_check_layer_names_a_gradient_of_the_wrong_shape():
    """A pullback that forgets the batch sum is reported with the layer, the parameter, both
    shapes and the likely fix (not as 'tree structures differ')."""

    @attrs.frozen(eq=False)
    class Sumless(fnn.Dense):
        def vjp(self, x, *, key=None, training=False, need_dx=True):
            y, pb = super().vjp(x, need_dx=need_dx)
            return y, lambda dy: (attrs.evolve(pb(dy)[0], b=dy), pb(dy)[1])

    layer, _ = Sumless(3).init(0, (2,), np.dtype(np.float64))
    with pytest.raises(ValueError, match=r"^Dense\(units=3\): the pullback returned a gradient "
                                         r"of b with shape \(4, 3\) but b has shape \(3,\); did "
                                         r"you forget to sum over the batch axis\?"):
        testing.check_layer(layer, np.random.default_rng(0).normal(size=(4, 2)))


@given(testing.nested_layers())
def test_nested_layers_strategy_builds_and_keeps_its_promise(case):
    """Generated nestings build for their input shape, in float64, and forward gives the shape
    init promised; containers nest at most three deep."""
    layer, in_shape = case
    built, out_shape = layer.init(0, in_shape, np.dtype(np.float64))
    x = np.random.default_rng(0).normal(size=(3, *in_shape))
    assert built.forward(x, training=True).shape == (3, *out_shape)

    def depth(lay):
        kids = [c for _, c in lay.sublayers()]
        return 1 + max(map(depth, kids)) if kids else 0

    assert depth(layer) <= 3


def test_report_rows_align_for_long_paths():
    """Every row of a report puts 'analytic' in the same column, however deep the path."""
    block = fnn.Residual([fnn.Sequential([fnn.Dense(2), fnn.Tanh()])])
    net = fnn.init([fnn.Dense(2), block], (2,), key=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    text = str(testing.check_network(net, rng.normal(size=(3, 2)), rng.normal(size=(3, 2)),
                                     losses.mse))
    rows = text.splitlines()[1:]
    assert len({row.index(" analytic ") for row in rows}) == 1
    assert any("layers[1].body.layers[0].layers[0].w" in row for row in rows)
