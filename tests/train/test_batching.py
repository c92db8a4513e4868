"""Tests of fnn.train.batching: deterministic shuffling, full coverage, and errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn import random
from fnn.train import batches


@given(st.integers(1, 50), st.integers(1, 12), st.integers(0, 2**31), st.booleans())
def test_every_example_once_per_epoch(n, batch_size, seed, drop_last):
    """Each example appears exactly once (or the remainder is dropped), x and y stay aligned."""
    x = np.arange(n * 2).reshape(n, 2)
    y = np.arange(n)
    got = list(batches(x, y, batch_size, key=seed, drop_last=drop_last))
    seen = np.concatenate([yb for _, yb in got]) if got else np.array([], int)
    for xb, yb in got:
        np.testing.assert_array_equal(xb, x[yb])
    sizes = [len(yb) for _, yb in got]
    if drop_last:
        assert sizes == [batch_size] * (n // batch_size)
        assert len(np.unique(seen)) == len(seen)
    else:
        assert sorted(seen.tolist()) == list(range(n))
        assert sizes == [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])


@given(st.integers(2, 40), st.integers(1, 8), st.integers(0, 2**31))
def test_same_key_same_batches(n, batch_size, seed):
    """The same key (int or Key) gives bit-identical batches."""
    x, y = np.random.default_rng(0).normal(size=(n, 3)), np.arange(n)
    a = list(batches(x, y, batch_size, key=seed))
    b = list(batches(x, y, batch_size, key=random.key(seed)))
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_different_keys_shuffle_differently():
    """Two keys give two different orders (for 100 examples a collision is impossible in practice)."""
    y = np.arange(100)
    order = [np.concatenate([yb for _, yb in batches(y, y, 10, key=k)]) for k in (0, 1)]
    assert not np.array_equal(order[0], order[1])
    assert not np.array_equal(order[0], y)


def test_no_key_keeps_order_without_copying():
    """Without a key the batches are in order and are views of the data."""
    x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
    got = list(batches(x, y, 2))
    assert [yb.tolist() for _, yb in got] == [[0, 1], [2, 3], [4]]
    assert all(np.shares_memory(xb, x) for xb, _ in got)


def test_inputs_unchanged():
    """Batching mutates neither x nor y."""
    x, y = np.arange(12.0).reshape(6, 2), np.arange(6)
    x0, y0 = x.copy(), y.copy()
    for xb, _ in batches(x, y, 4, key=3):
        xb += 1  # a batch is the caller's copy; writing to it must not reach x
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


def test_errors():
    """Bad arguments raise at call time with a message naming fnn.batches and the fix."""
    x, y = np.zeros((4, 2)), np.zeros(4)
    with pytest.raises(ValueError, match=r"fnn.batches: batch_size must be >= 1, got 0"):
        batches(x, y, 0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        batches(x, y, 2.0)
    with pytest.raises(ValueError, match="x has 4 examples but y has 3"):
        batches(x, y[:3], 2)
    with pytest.raises(TypeError, match="pair of NumPy arrays"):
        batches([[0.0]], [0], 1)
    with pytest.raises(ValueError, match="is empty"):
        batches(x[:0], y[:0], 1)
    with pytest.raises(TypeError, match="key must be"):
        batches(x, y, 2, key=-1)


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("shape", [(11,), (11, 3), (11, 4, 3, 2)])
def test_shuffled_batches_are_copies_like_fancy_indexing(shape, layout):
    """Shuffled batches equal x[idx] in values, dtype, strides and layout for C-ordered,
    Fortran-ordered and strided x of any rank, and never share memory with x."""
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    if layout == "F":
        x = np.asfortranarray(x)
    elif layout == "strided":
        x = np.repeat(x, 2, axis=-1)[..., ::2]
    y = np.arange(shape[0])
    order = random.generator(random.key(3)).permutation(shape[0])
    for i, (xb, yb) in enumerate(batches(x, y, 4, key=3)):
        want = x[order[4 * i : 4 * i + 4]]
        np.testing.assert_array_equal(xb, want)
        np.testing.assert_array_equal(yb, y[order[4 * i : 4 * i + 4]])
        assert xb.dtype == want.dtype and xb.strides == want.strides
        assert xb.flags.c_contiguous == want.flags.c_contiguous
        assert not np.shares_memory(xb, x)
