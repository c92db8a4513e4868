"""Tests of fnn.layers.initializers: scale, determinism and resolution by name."""

import numpy as np
import pytest

from fnn.layers import initializers as ini


@pytest.mark.parametrize(
    ("fn", "expected_var"),
    [
        (ini.glorot_uniform, 2.0 / (400 + 600)),
        (ini.glorot_normal, 2.0 / (400 + 600)),
        (ini.he_uniform, 2.0 / 400),
        (ini.he_normal, 2.0 / 400),
        (ini.lecun_normal, 1.0 / 400),
    ],
)
def test_variance_matches_formula(fn, expected_var):
    """Each initialiser's sample variance is within 3% of its formula (240,000 samples)."""
    w = fn(0, (400, 600), np.dtype(np.float64))
    assert abs(w.var() / expected_var - 1) < 0.03
    assert abs(w.mean()) < 0.01


def test_conv_fans_use_receptive_field():
    """For a (3, 3, 4, 8) kernel fan_in = 36 and fan_out = 72."""
    assert ini.fans((3, 3, 4, 8)) == (36, 72)


def test_same_key_same_weights_and_dtype():
    """Same key, same bits; the dtype is the one asked for."""
    a = ini.he_normal(5, (3, 4), np.dtype(np.float32))
    b = ini.he_normal(5, (3, 4), np.dtype(np.float32))
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not ini.zeros(0, (2,), np.dtype(np.float64)).any()


def test_resolve():
    """Names resolve once; unknown names and non-callables are refused."""
    assert ini.resolve("he_normal") is ini.he_normal
    assert ini.resolve(ini.zeros) is ini.zeros
    with pytest.raises(ValueError, match="choose one of"):
        ini.resolve("xavier")
    with pytest.raises(TypeError, match="initialiser must be a function"):
        ini.resolve(3)
