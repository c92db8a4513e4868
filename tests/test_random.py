"""Tests of fnn.random: explicit, splittable keys with no hidden state."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn import random

seeds = st.integers(0, 2**40)


@given(seeds)
def test_same_key_same_bits(seed):
    """The same key always produces bit-identical samples."""
    k = random.key(seed)
    a = random.normal(k, (5,))
    b = random.normal(k, (5,))
    np.testing.assert_array_equal(a, b)


@given(seeds, st.integers(2, 5))
def test_split_children_differ_and_match_fold_in(seed, n):
    """split gives n distinct keys; child i equals fold_in(key, i)."""
    k = random.key(seed)
    kids = random.split(k, n)
    assert len(set(kids)) == n
    assert all(kids[i] == random.fold_in(k, i) for i in range(n))
    draws = [random.uniform(c, (4,)) for c in kids]
    assert not np.array_equal(draws[0], draws[1])


def test_int_seed_is_the_same_as_key():
    """An int seed and key(seed) give the same stream."""
    np.testing.assert_array_equal(random.normal(3, (2,)), random.normal(random.key(3), (2,)))


def test_dtype_is_respected():
    """Samples take the requested dtype."""
    assert random.normal(0, (2,), np.float32).dtype == np.float32
    assert random.uniform(0, (2,), dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize("bad", [-1, 1.5, "0", None, True])
def test_bad_keys_are_rejected(bad):
    """Negative, non-int or bool seeds raise TypeError naming the fix."""
    with pytest.raises(TypeError, match="key"):
        random.as_key(bad)


def test_bad_split_counts():
    """split needs num >= 1 and fold_in needs data >= 0."""
    with pytest.raises(ValueError, match="num must be >= 1"):
        random.split(0, 0)
    with pytest.raises(ValueError, match="data must be >= 0"):
        random.fold_in(0, -1)
