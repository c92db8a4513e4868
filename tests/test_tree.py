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


# ---------------------------------------------------------------------------
# flatten / unflatten and the treedef


@given(trees)
def test_flatten_unflatten_round_trip(t):
    """unflatten(flatten(t)) rebuilds a tree of the same structure with the same leaves (as
    read-only arrays) and the same constants; leaves come in the order of tree.leaves."""
    leaves, td = tree.flatten(t)
    assert td.num_leaves == len(leaves) == len(tree.leaves(t))
    back = td.unflatten(leaves)
    tree.check_same_structure(back, t)
    assert all(a is b or np.array_equal(a, b) for a, b in zip(tree.leaves(back), leaves, strict=True))
    assert all(not a.flags.writeable for a in tree.leaves(back))
    assert td.paths == tuple(p for p, _ in tree.leaves_with_path(t))


@given(trees, trees)
def test_compiled_and_walked_flatten_agree(a, b):
    """Flattening b right after a (so the compiled extractor of a's structure is tried first)
    gives what a fresh walk gives: same leaves, same paths; equal treedefs iff same structure."""
    tree.flatten(a)
    leaves_b, td_b = tree.flatten(b)
    walked: list = []
    key = tree._walk(b, walked, [], 0)
    assert len(walked) == len(leaves_b) and all(x is y for x, y in zip(walked, leaves_b, strict=True))
    assert td_b._s.key == key
    same = tree._walk(a, [], [], 0) == key
    assert (tree.flatten(a)[1] == td_b) == same


def test_unflatten_keeps_constants_and_skips_init():
    """Constants come from the flattened tree; attrs instances are rebuilt without __init__ (a
    validator that would refuse is not run again), and the caller's arrays keep their flags."""
    calls = []

    @attrs.frozen(eq=False)
    class Counted:
        a: np.ndarray
        tag: str = attrs.field(validator=lambda *_: calls.append(1))

    t = Counted(np.ones(2), "x")
    _leaves, td = tree.flatten(t)
    new = np.zeros(2)
    back = td.unflatten([new])
    assert len(calls) == 1 and back.tag == "x" and type(back) is Counted
    assert new.flags.writeable and not back.a.flags.writeable
    np.testing.assert_array_equal(back.a, [0.0, 0.0])


def test_unflatten_refuses_wrong_leaves():
    """A wrong number of leaves, or a non-array, is refused naming the leaf's path."""
    _, td = tree.flatten({"w": np.zeros(2), "b": np.zeros(1)})
    with pytest.raises(ValueError, match=r"unflatten: this structure has 2 leaves, got 1"):
        td.unflatten([np.zeros(2)])
    with pytest.raises(TypeError, match=r"unflatten: leaf 1 \(\['b'\]\) must be a NumPy array, got list"):
        td.unflatten([np.zeros(2), [0.0]])
    with pytest.raises(TypeError, match=r"leaves must be a list of 2 arrays"):
        td.unflatten(np.zeros(2))


@attrs.frozen(eq=False)
class Box(Layer):
    """A container layer holding a tuple of layers, like Sequential."""

    layers: tuple = ()


@attrs.frozen(eq=False)
class Skip(Layer):
    """A container layer holding one body, like Residual."""

    body: object = None


def test_paths_and_state_through_nested_containers():
    """Attrs instances holding tuples of attrs instances (containers) give paths like
    layers[1].body.layers[0].w, and state fields deep inside are found."""
    inner = Box((WithState(w=np.ones(2), running=np.zeros(2)), Pair("p", np.ones(1), None)))
    t = Box((Pair("q", np.ones(3), None), Skip(inner)))
    _leaves, td = tree.flatten(t)
    assert td.paths == (
        "layers[0].a", "layers[1].body.layers[0].w", "layers[1].body.layers[0].running",
        "layers[1].body.layers[1].a",
    )
    assert td.state_mask == (False, False, True, False)
    assert tree.state_paths(t) == {"layers[1].body.layers[0].running"}
    other = Box((Pair("q", np.ones(3), None), Skip(Box((WithState(w=np.ones(3), running=np.zeros(2)),
                                                         Pair("p", np.ones(1), None))))))
    with pytest.raises(ValueError, match=r"layers\[1\]\.body\.layers\[0\]\.w: shape \(2,\) vs shape \(3,\)"):
        tree.check_same_structure(t, other)


def test_treedef_equality_ignores_constants_and_shapes():
    """Treedefs compare containers and leaf positions, not constants or shapes."""
    a = tree.flatten({"w": np.zeros(2), "n": 1})[1]
    b = tree.flatten({"w": np.zeros(5), "n": "other"})[1]
    c = tree.flatten({"w": np.zeros(2), "n": np.zeros(1)})[1]
    assert a == b and hash(a) == hash(b) and a != c


def test_root_exposes_nodes_for_serialisers():
    """TreeDef.root gives kinds, types, field names, state flags and constants."""
    layer = WithState(w=np.ones(2), running=np.zeros(2))
    root = tree.flatten({"layer": layer, "n": 3})[1].root
    assert root.kind == "dict" and root.keys == ("layer", "n")
    node, const = root.children
    assert node.kind == "attrs" and node.type is WithState
    assert dict(zip(node.keys, node.state, strict=True)) == {"w": False, "running": True}
    assert [c.kind for c in node.children] == ["leaf", "leaf"]
    assert const.kind == "constant" and const.value == 3
    assert tree.fields(WithState) == (("w", False), ("running", True))


def test_namedtuples_and_lists_rebuild_as_their_kind():
    """Namedtuples are rebuilt with their class, lists as lists, tuples as tuples."""
    import collections

    NT = collections.namedtuple("NT", ["a", "b"])
    t = [NT(np.ones(1), (np.zeros(2), 5))]
    out = tree.map(lambda x: x + 1, t)
    assert type(out) is list and type(out[0]) is NT and type(out[0].b) is tuple and out[0].b[1] == 5


def _nested(depth: int) -> object:
    t: object = np.zeros(1)
    for _ in range(depth):
        t = [t]
    return t


def test_deep_nesting_is_a_value_error():
    """A tree nested beyond Python's recursion limit is refused with ValueError, not RecursionError."""
    with pytest.raises(ValueError, match="nested too deeply"):
        tree.flatten(_nested(5000))


def test_nesting_limit_names_the_path():
    """flatten walks MAX_DEPTH (200) containers; one more is a NestingError naming the path
    of the container where it stopped, with one step per level, and no cycle."""
    leaves, td = tree.flatten(_nested(tree.MAX_DEPTH))
    assert len(leaves) == 1 and td.paths == ("[0]" * tree.MAX_DEPTH,)
    deep = {"ok": 1, "deep": Pair("p", np.zeros(1), _nested(tree.MAX_DEPTH))}
    with pytest.raises(tree.NestingError, match=r"more than 200 containers\) at \['deep'\]\.b\[0\]") as err:
        tree.map(np.negative, deep)
    assert err.value.steps[:3] == ("['deep']", ".b", "[0]") and len(err.value.steps) == 200
    assert err.value.cycle is None


def test_a_tree_that_contains_itself_is_named_at_its_first_repeat():
    """A cycle (a list inside itself, an attrs value holding its container) is a NestingError
    naming the path of the first container that is its own ancestor; nothing is built."""
    a: list = [np.zeros(1)]
    a.append({"again": a})
    with pytest.raises(tree.NestingError, match=r"contains itself at \[1\]\['again'\] \(a cycle\)") as err:
        tree.leaves(a)
    assert err.value.cycle == 2 and err.value.steps[:2] == ("[1]", "['again']")
    holder: list = []
    holder.append(Pair("self", np.ones(1), holder))
    with pytest.raises(ValueError, match=r"contains itself at \[0\]\.b"):
        tree.flatten(holder)


def test_dict_keys_of_other_types_are_other_structures():
    """Keys equal as Python values but of other types (True, 1, 1.0, an IntEnum member) make
    different structures: a map gives back the keys it was given, whatever came before."""
    import enum

    class Color(enum.IntEnum):
        RED = 1

    a = np.ones(1)
    for key in (True, 1, 1.0, Color.RED, 1, True):
        out = tree.map(np.negative, {key: a})
        (got,) = out
        assert type(got) is type(key) and got == key
    assert tree.flatten({1: a})[1] != tree.flatten({True: a})[1]
    assert tree.flatten({1: a})[1] == tree.flatten({1: a + 1})[1]
    with pytest.raises(ValueError, match=r"tree structures differ at <root>: dict with keys \['1'\] vs dict"):
        tree.add({1: a}, {1.0: a})


def test_map_output_is_read_only_and_does_not_freeze_the_callers_array():
    """A map that returns its input gives a read-only view; the caller's array stays writeable."""
    a = np.ones(2)
    out = tree.map(lambda x: x, {"a": a})
    assert a.flags.writeable and not out["a"].flags.writeable
    out2 = tree.map(lambda x: x * 2, [np.ones(2)])
    assert not out2[0].flags.writeable
