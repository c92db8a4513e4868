"""Tests of fnn._arrays, the input policy every entry point applies."""

import math
import warnings

import numpy as np
import pytest

from fnn import _arrays


def test_plain_views_subclasses_as_ndarray_without_copying():
    """An ndarray subclass comes back as a plain ndarray sharing the caller's memory."""
    base = np.arange(6.0).reshape(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        m = np.asmatrix(base)
    out = _arrays.plain("who", "x", m)
    assert type(out) is np.ndarray
    assert np.shares_memory(out, base)
    assert out.shape == (2, 3)
    rec = _arrays.plain("who", "x", np.zeros(3).view(np.recarray))
    assert type(rec) is np.ndarray


def test_plain_refuses_masked_arrays_naming_the_fix():
    """A masked array is a TypeError naming the entry point, the argument and .filled()."""
    masked = np.ma.array([1.0, 2.0], mask=[False, True])
    with pytest.raises(TypeError, match=r"^fnn\.thing: y is a masked array.*y\.filled\(value\)"):
        _arrays.plain("fnn.thing", "y", masked)
    # Even without any masked entry: the policy is about the type, decided once.
    with pytest.raises(TypeError, match="masked array"):
        _arrays.plain("fnn.thing", "y", np.ma.array([1.0, 2.0]))


def test_plain_converts_byte_order_and_keeps_values():
    """A big-endian array comes back in native order with the same values; the caller's
    array is untouched; a plain native array comes back as the same object."""
    big = np.arange(4, dtype=">f4")
    out = _arrays.plain("who", "x", big)
    assert out.dtype == np.float32 and out.dtype.isnative
    assert out.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert big.dtype == np.dtype(">f4")
    a = np.arange(3.0)
    assert _arrays.plain("who", "x", a) is a


def test_plain_passes_non_arrays_through():
    """Non-arrays come back unchanged, for the caller's own type check."""
    for v in (None, [1, 2], 3.0, "s"):
        assert _arrays.plain("who", "x", v) is v


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32", np.dtype("f8")])
def test_compute_dtype_accepts_float32_and_float64(dtype):
    """float32 and float64 (as types, names or dtypes) are the compute dtypes."""
    assert _arrays.compute_dtype("who", dtype) in (np.float32, np.float64)


@pytest.mark.parametrize(
    ("dtype", "why"),
    [
        (np.float16, "float16 is not supported"),
        (np.longdouble, "extended precision"),
        (np.int32, "not floating-point"),
        ("nonsense", "got 'nonsense'"),
        (None, "got None"),
    ],
)
def test_compute_dtype_refuses_the_rest(dtype, why):
    """float16, extended precision, integers and non-dtypes are a TypeError saying why."""
    if dtype is np.longdouble and np.dtype(np.longdouble) == np.float64:
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(TypeError, match=rf"^fnn\.init: dtype must be np\.float32 or np\.float64.*{why}"):
        _arrays.compute_dtype("fnn.init", dtype)


def test_cast_finite_refuses_values_beyond_the_target_range():
    """float64 beyond float32's range is refused before the cast (no overflow warning,
    no inf passed on); within range, the cast happens."""
    x = np.array([[1.0, -1e39]])
    with np.errstate(all="raise"), pytest.raises(ValueError, match=r"1e\+39.*beyond the range of float32"):
        _arrays.cast_finite("who", "x", x, np.dtype(np.float32))
    ok = _arrays.cast_finite("who", "x", np.array([[3e38]]), np.dtype(np.float32))
    assert ok.dtype == np.float32 and np.isfinite(ok).all()
    with pytest.raises(ValueError, match="NaN or inf"):
        _arrays.cast_finite("who", "x", np.array([np.nan]), np.dtype(np.float64))
    big_int = np.array([np.iinfo(np.int64).max])
    assert np.isfinite(_arrays.cast_finite("who", "x", big_int, np.dtype(np.float32))).all()


def test_real_never_overflows():
    """Python ints beyond float range become ±inf instead of raising OverflowError."""
    assert _arrays.real(10**400) == math.inf
    assert _arrays.real(-(10**400)) == -math.inf
    assert _arrays.real(np.float32(0.5)) == 0.5


def test_short_cuts_long_reprs():
    """A 400-digit int is cut to the limit in messages."""
    text = _arrays.short(10**400)
    assert len(text) == 60 and text.endswith("...")


def test_ignoring_underflow_ignores_only_underflow():
    """Inside, underflow is ignored; overflow still raises as the caller set; outside, the
    caller's state is restored."""

    @_arrays.ignoring_underflow
    def f(a, b):
        return np.exp(a) * b

    with np.errstate(all="raise"):
        assert f(np.float32(-200), np.float32(1)) == 0
        with pytest.raises(FloatingPointError, match="overflow"):
            f(np.float32(100), np.float32(1))
        with pytest.raises(FloatingPointError, match="underflow"):
            np.exp(np.float32(-200))
    assert f.__name__ == "f"
