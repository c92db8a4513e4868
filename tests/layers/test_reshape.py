"""Tests of fnn.layers.reshape: Flatten and Reshape."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn import testing
from fnn.layers.reshape import Flatten, Reshape


@given(testing.arrays(testing.shapes(2, 4, 1, 4)), st.integers(0, 2**31))
def test_flatten_shape_and_gradient(x, seed):
    """Flatten gives (batch, prod(rest)) as init promised, and its pullback is exact."""
    _, out_shape = Flatten().init(0, x.shape[1:], x.dtype)
    assert (
        Flatten().forward(x).shape
        == (x.shape[0], *out_shape)
        == (x.shape[0], math.prod(x.shape[1:]))
    )
    testing.check_layer(Flatten(), x, seed=seed)


@given(testing.arrays(testing.shapes(2, 2, 1, 12)), st.integers(0, 2**31))
def test_reshape_with_minus_one(x, seed):
    """Reshape((-1, 1)) keeps every value, matches its promised shape and its gradient."""
    layer = Reshape((-1, 1))
    _, out_shape = layer.init(0, x.shape[1:], x.dtype)
    y = layer.forward(x)
    assert y.shape == (x.shape[0], *out_shape)
    np.testing.assert_array_equal(y.ravel(), x.ravel())
    testing.check_layer(layer, x, seed=seed)


def test_reshape_errors():
    """Impossible targets and malformed shapes are refused with the reason."""
    with pytest.raises(ValueError, match="hold 6 values but"):
        Reshape((4,)).init(0, (2, 3), np.dtype(np.float64))
    with pytest.raises(ValueError, match="at most one -1"):
        Reshape((-1, -1))
    with pytest.raises(TypeError, match="tuple of ints"):
        Reshape("28x28")
    with pytest.raises(ValueError, match="cannot reshape"):
        Reshape((-1, 4)).init(0, (6,), np.dtype(np.float64))
