"""Tests of fnn.tree: structure-preserving maps with arrays as leaves."""

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import tree
from fnn.layers._base import Array, Layer, param_field, state_field
from fnn.testing import arrays, shapes


@attrs.frozen(eq=False)
class Pair:
    name: str
    a: np.ndarray
    b: object


@attrs.frozen(eq=False)
class WithState(Layer):
    w: np.ndarray | None = param_field()
    running: np.ndarray | None = state_field()


leaf = arrays(shapes(0, 2, 1, 3))
trees = st.recursive(
    leaf | st.none() | st.integers() | st.text(max_size=3),
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.lists(kids, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=2), kids, max_size=3)
        | st.builds(Pair, st.text(max_size=2), leaf, kids)
    ),
    max_leaves=8,
)


@given(trees)
def test_map_identity_preserves_structure_and_values(t):
    """Mapping the identity gives an equal tree whose leaves are read-only."""
    out = tree.map(lambda x: x, t)
    assert tree.allclose(out, t)
    tree.check_same_structure(out, t)
    assert all(not x.flags.writeable for x in tree.leaves(out))


@given(trees)
def test_sub_of_self_is_zero_and_size_counts_elements(t):
    """t - t is all zeros, has the same size, and vdot(t, t) equals norm(t)²."""
    z = tree.sub(t, t)
    assert all((x == 0).all() for x in tree.leaves(z))
    assert tree.size(z) == sum(x.size for x in tree.leaves(t))
    assert np.isclose(tree.vdot(t, t), tree.norm(t) ** 2)


@given(trees)
def test_map_does_not_mutate_inputs(t):
    """A map leaves the input's leaves exactly as they were."""
    before = [x.copy() for x in tree.leaves(t)]
    tree.scale(tree.add(t, t), 3.0)
    for x, y in zip(before, tree.leaves(t), strict=True):
        np.testing.assert_array_equal(x, y)


def test_non_array_values_pass_through_from_first_tree():
    """Ints, strings, None and functions are structure: carried from the first tree."""
    t = {"n": 3, "s": "relu", "f": len, "none": None, "x": np.ones(2)}
    out = tree.add(t, t)
    assert out["n"] == 3 and out["s"] == "relu" and out["f"] is len and out["none"] is None
    np.testing.assert_array_equal(out["x"], [2.0, 2.0])


def test_mismatch_names_first_differing_path_and_shapes():
    """A shape mismatch reports the path and both shapes."""
    a = {"layers": [Pair("d", np.zeros((32, 16)), None)]}
    b = {"layers": [Pair("d", np.zeros((16, 32)), None)]}
    with pytest.raises(
        ValueError, match=r"\['layers'\]\[0\]\.a: shape \(32, 16\) vs shape \(16, 32\)"
    ):
        tree.add(a, b)


@pytest.mark.parametrize(
    ("a", "b", "pattern"),
    [
        (
            [np.zeros(1)],
            [np.zeros(1), np.zeros(1)],
            r"<root>: list of length 1 vs list of length 2",
        ),
        ({"a": np.zeros(1)}, {"b": np.zeros(1)}, r"dict with keys"),
        ((np.zeros(1),), [np.zeros(1)], r"tuple of length 1 vs list"),
        ([np.zeros(1)], [None], r"\[0\]: shape \(1,\) vs None"),
    ],
)
def test_container_mismatches_raise(a, b, pattern):
    """Differing container kinds, lengths, keys or leaf/non-leaf raise ValueError."""
    with pytest.raises(ValueError, match=pattern):
        tree.check_same_structure(a, b)
    assert not tree.allclose(a, b)


def test_scale_keeps_dtype():
    """Scaling a float32 tree by a Python float stays float32."""
    out = tree.scale([np.ones(3, np.float32)], 0.1)
    assert out[0].dtype == np.float32


def test_zeros_like_and_paths():
    """zeros_like keeps shapes/dtypes; leaves_with_path names attrs fields and indices."""
    t = (Pair("p", np.ones((2, 2), np.float32), {"k": np.ones(1)}),)
    z = tree.zeros_like(t)
    assert z[0].a.dtype == np.float32 and not z[0].a.any()
    assert [p for p, _ in tree.leaves_with_path(t)] == ["[0].a", "[0].b['k']"]


def test_map_with_path_masks_by_path():
    """A mask by path changes only the chosen leaves."""
    t = {"keep": np.ones(2), "zero": np.ones(2)}
    out = tree.map_with_path(lambda p, x: x * 0 if "zero" in p else x, t)
    np.testing.assert_array_equal(out["keep"], [1, 1])
    np.testing.assert_array_equal(out["zero"], [0, 0])


def test_state_paths_marks_state_fields():
    """Fields declared with state_field are reported as state; params are not."""
    layer = WithState(w=np.ones(2), running=np.zeros(2))
    assert tree.state_paths({"l": layer}) == frozenset({"['l'].running"})


def test_readonly_never_changes_callers_array_flags():
    """readonly returns a read-only view and leaves the caller's array writeable."""
    a = np.ones(3)
    v = tree.readonly(a)
    assert a.flags.writeable and not v.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        v[0] = 2.0
    assert tree.readonly(v) is v


def test_allclose_tolerances():
    """allclose uses rtol/atol on every leaf pair."""
    assert tree.allclose([np.array(1.0)], [np.array(1.0 + 1e-9)], rtol=1e-8)
    assert not tree.allclose([np.array(1.0)], [np.array(1.1)])


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
    assert tree.state_mask(net) == reference(net)


def test_state_mask_on_nested_containers():
    """Dicts, lists and tuples around layers keep the leaf order of fnn.tree.leaves."""
    net = fnn.init([Stats(), fnn.Dense(2)], (3,), key=0)
    t = {"a": [np.zeros(1), (net.layers[0], np.ones(2))], "b": {"c": net}, "d": "tag", "e": None}
    assert tree.state_mask(t) == reference(t)
    assert sum(tree.state_mask(t)) == 4
