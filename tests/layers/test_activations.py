"""Tests of fnn.layers.activations: every activation's shape, gradient, purity, errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn import testing
from fnn.layers.activations import ELU, GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh

inputs = testing.arrays(testing.shapes(1, 3, 1, 4), away_from=(0.0,))


@given(testing.elementwise_activations(), inputs, st.integers(0, 2**31))
def test_elementwise_gradients_match_finite_differences(layer, x, seed):
    """Each activation's pullback agrees with central differences (inputs off the kinks)."""
    testing.check_layer(layer, x, seed=seed)


@given(testing.arrays(testing.shapes(2, 3, 1, 5), low=-10, high=10), st.integers(0, 2**31))
def test_softmax_gradient_matches_finite_differences(x, seed):
    """Softmax's Jacobian-vector product agrees with central differences."""
    testing.check_layer(Softmax(), x, seed=seed)


@given(
    st.one_of(testing.elementwise_activations(), st.just(Softmax())),
    testing.arrays(testing.shapes(2, 3, 1, 4)),
)
def test_shape_dtype_and_purity(layer, x):
    """Output shape/dtype equal the input's, the input is unchanged, and init promises it."""
    x0 = x.copy()
    _, out_shape = layer.init(0, x.shape[1:], x.dtype)
    y = layer.forward(x)
    assert y.shape == x.shape == (x.shape[0], *out_shape) and y.dtype == x.dtype
    np.testing.assert_array_equal(x, x0)
    y32 = layer.forward(x.astype(np.float32))
    assert y32.dtype == np.float32


def test_known_values():
    """Spot values of each activation at a few points."""
    x = np.array([[-2.0, 0.5]])
    np.testing.assert_allclose(ReLU().forward(x), [[0.0, 0.5]])
    np.testing.assert_allclose(LeakyReLU(0.1).forward(x), [[-0.2, 0.5]])
    np.testing.assert_allclose(ELU(1.0).forward(x), [[np.expm1(-2.0), 0.5]])
    np.testing.assert_allclose(Tanh().forward(x), np.tanh(x))
    np.testing.assert_allclose(Sigmoid().forward(x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(Identity().forward(x), x)
    np.testing.assert_allclose(
        GELU().forward(np.array([[0.0, 1.0]])), [[0.0, 0.8411919906]], rtol=1e-9
    )
    np.testing.assert_allclose(Softmax().forward(np.array([[0.0, np.log(3.0)]])), [[0.25, 0.75]])


def test_no_overflow_for_extreme_inputs():
    """Sigmoid, ELU and Softmax stay finite for inputs of ±1000 (errors are raised in tests)."""
    x = np.array([[-1000.0, 1000.0]])
    assert np.isfinite(Sigmoid().forward(x)).all()
    assert np.isfinite(ELU().forward(x)).all()
    np.testing.assert_allclose(Softmax().forward(x), [[0.0, 1.0]])


@pytest.mark.parametrize("layer", [ReLU(), Tanh(), Softmax()])
def test_bad_inputs(layer):
    """Non-arrays and integer arrays are refused with the fix in the message."""
    with pytest.raises(TypeError, match=r"np.asarray"):
        layer.forward([[1.0]])
    with pytest.raises(TypeError, match=r"astype\(np.float32\)"):
        layer.forward(np.ones((1, 2), np.int32))


def test_bad_configs_and_softmax_rank():
    """Negative or non-finite slopes are refused; Softmax needs a class axis."""
    with pytest.raises(ValueError, match="negative_slope must be a finite number"):
        LeakyReLU(-0.1)
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        ELU(float("nan"))
    with pytest.raises(ValueError, match=r"x.reshape\(-1, 1\)"):
        Softmax().forward(np.ones(3))
