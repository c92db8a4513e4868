"""Tests of fnn.optim.masks: path prefixes, predicates and boolean trees; masked, freeze and
multi_transform by hand; masks that select nothing; one-line recipes from the docs."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
import fnn.optim as optim
from fnn import losses, tree


def mlp():
    return fnn.init([fnn.Dense(3), fnn.LayerNorm(), fnn.Tanh(), fnn.Dense(12), fnn.Tanh(),
                     fnn.Dense(2)], (2,), key=0, dtype=np.float64)


def ones_like(t):
    return tree.map(np.ones_like, t)


def test_prefix_selects_whole_fields_and_indices_only():
    """'layers[1]' selects layers[1].* but not layers[10]...; a tuple selects the union."""
    p = {"layers": [np.zeros(1)] * 12}
    tx = optim.masked(optim.scale(2.0), "['layers'][1]")
    u, _ = tx.update(ones_like(p), tx.init(p), p)
    assert [float(a[0]) for a in u["layers"]] == [1.0, 2.0] + [1.0] * 10
    tx = optim.masked(optim.scale(2.0), ("['layers'][0]", "['layers'][11]"))
    u, _ = tx.update(ones_like(p), tx.init(p), p)
    assert [float(a[0]) for a in u["layers"]] == [2.0] + [1.0] * 10 + [2.0]


@given(st.lists(st.booleans(), min_size=3, max_size=3))
def test_predicate_prefix_and_tree_masks_agree(choice):
    """The same selection given as a predicate, as a tuple of prefixes and as a boolean tree
    gives the same updates."""
    if not any(choice):
        choice = [True, False, False]
    p = {"a": np.ones(2), "b": np.ones(1), "c": np.ones(3)}
    names = [k for k, c in zip(p, choice, strict=True) if c]
    masks = [
        lambda path: path.strip("[']") in names,
        tuple(f"['{k}']" for k in names),
        {k: np.array(k in names) for k in p},
    ]
    outs = []
    for m in masks:
        tx = optim.masked(optim.scale(3.0), m)
        outs.append(tx.update(p, tx.init(p), p)[0])
    for o in outs[1:]:
        assert tree.allclose(o, outs[0], rtol=0.0)
    assert [float(outs[0][k][0]) for k in p] == [3.0 if c else 1.0 for c in choice]


def test_masked_inner_state_keeps_unselected_buffers_at_init():
    """masked(trace(μ), mask): selected leaves get momentum, the others pass unchanged and
    keep zero buffers."""
    p = {"a": np.zeros(1), "b": np.zeros(1)}
    g = {"a": np.array([1.0]), "b": np.array([1.0])}
    tx = optim.masked(optim.trace(0.5), "['a']")
    s = tx.init(p)
    _, s = tx.update(g, s, p)
    u, s = tx.update(g, s, p)
    assert float(u["a"][0]) == 1.5 and float(u["b"][0]) == 1.0
    assert float(s.momentum["b"][0]) == 0.0


def test_no_decay_on_biases_and_norm_scales_in_one_line():
    """adamw(mask=lambda p: p.endswith('.w')) decays Dense weights only: with zero gradients,
    biases and LayerNorm's gamma/beta are bit-identical, weights shrink by (1 − lr·λ)."""
    net = mlp()
    opt = optim.adamw(0.1, weight_decay=0.5, mask=lambda path: path.endswith(".w"))
    new, _ = opt.update(tree.map(np.zeros_like, net), opt.init(net), net)
    for (path, a), b in zip(tree.leaves_with_path(net), tree.leaves(new), strict=True):
        if path.endswith(".w"):
            np.testing.assert_allclose(b, a * (1 - 0.1 * 0.5), rtol=1e-14)
        else:
            assert np.array_equal(a, b), path


def test_freeze_everything_but_the_head_in_one_line():
    """chain(freeze(lambda p: not p.startswith('layers[5]')), adam): only the head moves, the
    rest are the very same arrays after several steps."""
    net = mlp()
    x = np.random.default_rng(0).normal(size=(8, 2))
    y = np.random.default_rng(1).normal(size=(8, 2))
    opt = optim.chain(optim.freeze(lambda path: not path.startswith("layers[5]")), optim.adam(1e-2))
    state, new = opt.init(net), net
    for _ in range(3):
        new, state = opt.update(fnn.grad(new, x, y, losses.mse), state, new)
    for (path, a), b in zip(tree.leaves_with_path(net), tree.leaves(new), strict=True):
        assert (a is b) != path.startswith("layers[5]"), path


def test_freeze_outputs_negative_zero_updates():
    """A frozen leaf's update (Optax-style) is -0.0, so apply_updates keeps its bits."""
    p = {"a": np.array([-0.0, 1.0]), "b": np.ones(1)}
    tx = optim.chain(optim.freeze("['a']"), optim.scale_by_learning_rate(1.0))
    u, _ = tx.update(ones_like(p), tx.init(p), p)
    assert np.signbit(u["a"]).all() and not u["a"].any()
    assert optim.apply_updates(p, u)["a"].tobytes() == p["a"].tobytes()


def test_multi_transform_by_hand_with_a_dict_of_masks():
    """Each label's optimizer runs on its leaves only: SGD on the body, Adam's first step
    (±lr) on the head."""
    p = {"body": np.array([1.0, 1.0]), "head": np.array([0.0])}
    g = {"body": np.array([2.0, -2.0]), "head": np.array([5.0])}
    opt = optim.multi_transform({"b": optim.sgd(0.1), "h": optim.adam(0.01)},
                                {"b": "['body']", "h": "['head']"})
    new, state = opt.update(g, opt.init(p), p)
    np.testing.assert_allclose(new["body"], [0.8, 1.2], rtol=1e-15)
    np.testing.assert_allclose(new["head"], [-0.01 * 5.0 / (5.0 + 1e-8)], rtol=1e-14)
    assert sorted(state.inner) == ["b", "h"] and sorted(state.slots) == ["mu", "nu"]
    assert float(state.slots["mu"]["body"][0]) == 0.0  # Adam never saw the body


@pytest.mark.parametrize(
    ("labels", "error", "match"),
    [
        (lambda path: "x", ValueError, r"multi_transform: the labels function gave 'x' for \['a'\]; expected one of \['p', 'q'\]"),
        ({"p": "['a']", "q": "['a']"}, ValueError, r"multi_transform: \['a'\] is selected by 2 labels"),
        ({"p": "['a']"}, ValueError, r"multi_transform: \['b'\] is selected by 0 labels"),
        ({"p": "['a']", "q": "['b']", "r": "['b']"}, ValueError, r"labels \['r'\] have no transformation"),
        ({"p": "['a']", "q": "['zz']"}, ValueError, r"multi_transform label 'q': the mask \"\['zz'\]\" names no parameter path"),
    ],
)
def test_multi_transform_label_errors(labels, error, match):
    """Every leaf needs exactly one known label; a label mask must select something."""
    p = {"a": np.ones(1), "b": np.ones(1)}
    opt = optim.multi_transform({"p": optim.sgd(0.1), "q": optim.sgd(0.2)}, labels)
    with pytest.raises(error, match=match):
        opt.init(p)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: optim.masked(optim.scale(1.0), None), TypeError, r"masked: mask must be a path prefix"),
        (lambda: optim.masked("adam", "a"), TypeError, r"masked: must be a gradient transformation"),
        (lambda: optim.multi_transform({}, lambda p: "a"), TypeError, r"multi_transform: transforms must be a non-empty dict"),
        (lambda: optim.multi_transform({"a": optim.sgd(0.1)}, 3), TypeError, r"multi_transform: labels must be a function"),
        (lambda: optim.multi_transform({1: optim.sgd(0.1)}, lambda p: 1), TypeError, r"multi_transform: labels must be strings"),
    ],
)
def test_bad_mask_arguments_raise(make, error, match):
    """Wrong kinds of masks, transformations and labels are refused at construction."""
    with pytest.raises(error, match=match):
        make()


def test_mask_naming_no_path_mutates_nothing():
    """The error for a mask that selects nothing leaves params, grads and state unchanged."""
    net = mlp()
    g = ones_like(net)
    ok = optim.adam()
    state = ok.init(net)
    before = [a.copy() for a in tree.leaves((net, g, state))]
    bad = optim.chain(optim.masked(optim.scale(1.0), "layers[6]"), ok)
    with pytest.raises(ValueError, match=r"adam.update: masked: the mask 'layers\[6\]' names no parameter path"):
        bad.update(g, optim.OptimizerState(0, ((), state.inner)), net)
    assert all(np.array_equal(a, b) for a, b in zip(before, tree.leaves((net, g, state)), strict=True))


def test_resolved_masks_are_cached_per_structure():
    """A predicate mask is called once per leaf for a structure, not on every update."""
    calls = []

    def mask(path):
        calls.append(path)
        return path == "['a']"

    p = {"a": np.zeros(1), "b": np.zeros(1)}
    opt = optim.chain(optim.freeze(mask), optim.sgd(0.1))
    state = opt.init(p)
    for _ in range(5):
        p, state = opt.update(ones_like(p), state, p)
    assert calls == ["['a']", "['b']"]


def test_learning_rate_of_a_multi_transform():
    """learning_rate is the groups' common rate, NaN when they differ."""
    p = {"a": np.zeros(1), "b": np.zeros(1)}
    same = optim.multi_transform({"x": optim.sgd(0.1), "y": optim.adam(0.1)}, lambda q: "x" if "a" in q else "y")
    other = optim.multi_transform({"x": optim.sgd(0.1), "y": optim.adam(0.2)}, lambda q: "x" if "a" in q else "y")
    assert optim.learning_rate(same, same.init(p)) == 0.1
    assert np.isnan(optim.learning_rate(other, other.init(p)))
