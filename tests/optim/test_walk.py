"""Tests of fnn.optim._walk: the fast state mask agrees with fnn.tree's paths."""

import attrs
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import tree
from fnn.layers._base import Array, Layer, param_field, state_field
from fnn.optim._walk import state_mask


@attrs.frozen(eq=False)
class Stats(Layer):
    """A test layer with one trainable and two state arrays."""

    w: Array | None = param_field()
    mean: Array | None = state_field()
    var: Array | None = state_field()

    def init(self, key, in_shape, dtype):
        ones = np.ones(in_shape, dtype)
        return attrs.evolve(self, w=ones, mean=ones * 0, var=ones), in_shape

    def vjp(self, x, *, key=None, training=False, need_dx=True):
        return x * self.w, lambda dy: (self.zero_grad_like(w=(dy * x).sum(0)), dy * self.w)


def reference(t):
    state = tree.state_paths(t)
    return [p in state for p, _ in tree.leaves_with_path(t)]


layer_choices = st.sampled_from(["dense", "stats", "tanh"])


@given(st.lists(layer_choices, min_size=1, max_size=5), st.integers(1, 4))
def test_state_mask_matches_state_paths_on_networks(kinds, width):
    """For networks mixing trainable and state fields, state_mask == membership in state_paths."""
    make = {"dense": lambda: fnn.Dense(width), "stats": Stats, "tanh": fnn.Tanh}
    net = fnn.init([make[k]() for k in kinds], (width,), key=0)
    assert state_mask(net) == reference(net)


def test_state_mask_on_nested_containers():
    """Dicts, lists and tuples around layers keep the leaf order of fnn.tree.leaves."""
    net = fnn.init([Stats(), fnn.Dense(2)], (3,), key=0)
    t = {"a": [np.zeros(1), (net.layers[0], np.ones(2))], "b": {"c": net}, "d": "tag", "e": None}
    assert state_mask(t) == reference(t)
    assert sum(state_mask(t)) == 4
