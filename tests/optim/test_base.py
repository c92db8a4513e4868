"""Tests of fnn.optim.base: purity, structure and dtype, masks, state leaves, learning rates, errors."""

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
import fnn.optim as optim
from fnn import losses, testing, tree
from fnn.layers._base import Array, Layer, param_field, state_field

FACTORIES = {
    "sgd": lambda: optim.sgd(0.1),
    "sgd_momentum": lambda: optim.sgd(0.1, momentum=0.9),
    "sgd_nesterov": lambda: optim.sgd(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: optim.adam(1e-2),
    "adamw": lambda: optim.adamw(1e-2, weight_decay=0.1),
    "rmsprop": lambda: optim.rmsprop(1e-2, momentum=0.5),
    "adagrad": lambda: optim.adagrad(1e-2),
    "clip_l2_sgd": lambda: optim.chain(
        optim.clip_by_global_norm(0.5), optim.l2_penalty(0.1), optim.sgd(0.1, momentum=0.9)
    ),
    "cosine_adam": lambda: optim.adam(optim.cosine_decay(1e-2, total_steps=5, warmup_steps=2)),
}


@attrs.frozen(eq=False)
class Shift(Layer):
    """A test layer with a trainable offset and a non-trainable running value (like batch-norm)."""

    b: Array | None = param_field()
    running: Array | None = state_field()

    def init(self, key, in_shape, dtype):
        return attrs.evolve(self, b=np.zeros(in_shape, dtype), running=np.full(in_shape, 2.0, dtype)), in_shape

    def vjp(self, x, *, key=None, training=False, need_dx=True):
        def pullback(dy):
            return self.zero_grad_like(b=dy.sum(axis=0)), dy

        return x + self.b, pullback


def net_with_state(dtype=np.float64):
    return fnn.init([fnn.Dense(3), Shift(), fnn.Tanh(), fnn.Dense(2)], (2,), key=3, dtype=dtype)


def data(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((6, 2)).astype(dtype), rng.standard_normal((6, 2)).astype(dtype)


def run(opt, net, steps, x, y):
    state = opt.init(net)
    for _ in range(steps):
        grads = fnn.grad(net, x, y, losses.mse)
        net, state = opt.update(grads, state, net)
    return net, state


@st.composite
def param_trees(draw):
    """Dicts and lists of float32 or float64 arrays (shapes from scalars to matrices)."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shapes = draw(st.lists(st.lists(st.integers(1, 4), max_size=2).map(tuple), min_size=1, max_size=4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return {"first": arrays[0], "rest": arrays[1:]}, {"first": grads[0], "rest": grads[1:]}


@given(param_trees(), st.sampled_from(sorted(FACTORIES)), st.integers(1, 3))
def test_update_keeps_structure_dtype_and_purity(trees, name, steps):
    """Any optimizer returns params and state of the params' structure and dtype, read-only,
    sharing no memory with grads or buffers, leaves its inputs unchanged, and counts its steps."""
    params, grads = trees
    opt = FACTORIES[name]()
    state = opt.init(params)
    for t in range(steps):
        before = [a.copy() for a in tree.leaves((params, grads, state))]
        new, new_state = opt.update(grads, state, params)
        after = tree.leaves((params, grads, state))
        assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
        tree.check_same_structure(new, params)
        for slot in new_state.slots.values():
            tree.check_same_structure(slot, params)
        assert all(a.dtype == b.dtype for a, b in zip(tree.leaves(new), tree.leaves(params), strict=True))
        assert all(not a.flags.writeable for a in tree.leaves((new, new_state)))
        others = tree.leaves((grads, state, new_state))
        assert not any(np.shares_memory(a, b) for a in tree.leaves(new) for b in others)
        assert int(new_state.count) == t + 1
        params, state = new, new_state


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_leaves_are_never_updated_or_decayed(name):
    """Running statistics (state fields) come out bit-identical, even under decay, momentum,
    Nesterov and clipping, and even when the gradient tree holds non-zero values for them."""
    net = net_with_state()
    x, y = data()
    opt = FACTORIES[name]()
    new, _ = run(opt, net, 4, x, y)
    assert np.array_equal(new.layers[1].running, net.layers[1].running)
    assert not np.array_equal(new.layers[1].b, net.layers[1].b)  # the trainable field moved
    # a (buggy) gradient with a non-zero entry for the state leaf changes nothing either
    grads = tree.map(np.ones_like, net)
    moved, _ = opt.update(grads, opt.init(net), net)
    assert np.array_equal(moved.layers[1].running, net.layers[1].running)


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("as_tree", [False, True])
def test_frozen_leaves_are_bit_identical(name, as_tree):
    """freeze(opt, mask) leaves the selected leaves exactly unchanged after many steps, never
    decayed, with their buffers still at their initial values; the others train."""
    net = net_with_state()
    x, y = data()
    if as_tree:
        mask = tree.map_with_path(lambda path, a: np.array(path.startswith("layers[0]")), net)
    else:
        mask = lambda path: path.startswith("layers[0]")  # noqa: E731
    opt = optim.freeze(FACTORIES[name](), mask)
    new, state = run(opt, net, 5, x, y)
    assert np.array_equal(new.layers[0].w, net.layers[0].w)
    assert np.array_equal(new.layers[0].b, net.layers[0].b)
    assert not np.array_equal(new.layers[3].w, net.layers[3].w)
    initial = opt.init(net)
    for slot in state.slots:
        assert np.array_equal(state.slots[slot].layers[0].w, initial.slots[slot].layers[0].w)


def test_freeze_twice_freezes_the_union():
    """Two freezes compose: leaves selected by either mask stay put."""
    p = {"a": np.ones(2), "b": np.ones(2), "c": np.ones(2)}
    opt = optim.freeze(optim.freeze(optim.sgd(1.0), lambda s: s == "['a']"), lambda s: s == "['b']")
    new, _ = opt.update(tree.map(np.ones_like, p), opt.init(p), p)
    assert np.array_equal(new["a"], p["a"]) and np.array_equal(new["b"], p["b"])
    assert np.array_equal(new["c"], np.zeros(2))


def test_adamw_mask_spares_unmasked_leaves_from_decay():
    """adamw(mask=...) decays only the selected leaves: with zero gradients, an unselected
    leaf is bit-identical and a selected one shrinks by (1 − lr·λ) per step."""
    p = {"w": np.array([1.0, -2.0]), "b": np.array([3.0])}
    zeros = tree.map(np.zeros_like, p)
    opt = optim.adamw(0.1, weight_decay=0.5, mask=lambda path: path == "['w']")
    state = opt.init(p)
    q = p
    for _ in range(3):
        q, state = opt.update(zeros, state, q)
    assert np.array_equal(q["b"], p["b"])
    np.testing.assert_allclose(q["w"], p["w"] * (1 - 0.1 * 0.5) ** 3, rtol=1e-14)


def test_state_is_a_tree_that_can_be_compared_and_walked():
    """The state's leaves have paths under count and slots, and fnn.tree.allclose compares states."""
    net = net_with_state()
    opt = optim.adam()
    state = opt.init(net)
    paths = [p for p, _ in tree.leaves_with_path(state)]
    assert paths[0] == "count"
    assert "slots['mu'].layers[0].w" in paths and "slots['nu'].layers[3].b" in paths
    assert tree.allclose(state, opt.init(net))
    assert state.count.dtype == np.int64 and state.count.shape == ()


def test_same_inputs_give_identical_outputs():
    """update is a pure function: the same inputs twice give bit-identical results."""
    net = net_with_state()
    x, y = data()
    a, sa = run(optim.adam(1e-2), net, 3, x, y)
    b, sb = run(optim.adam(1e-2), net, 3, x, y)
    assert tree.allclose(a, b, rtol=0.0) and tree.allclose(sa, sb, rtol=0.0)


def test_learning_rate_reports_the_rate_the_next_update_uses():
    """learning_rate(opt, state) before each SGD update equals (θ − θ') / g of that update."""
    p = {"w": np.array([1.0])}
    g = {"w": np.array([1.0])}
    opt = optim.sgd(optim.cosine_decay(0.5, total_steps=6, warmup_steps=2, final_lr=0.1))
    state = opt.init(p)
    seen = []
    for _ in range(8):
        reported = optim.learning_rate(opt, state)
        new, state = opt.update(g, state, p)
        seen.append(reported)
        assert float((p["w"] - new["w"])[0]) == pytest.approx(reported, rel=1e-12)
        p = new
    assert seen[:3] == pytest.approx([0.25, 0.5, 0.5])
    assert seen[-2:] == [0.1, 0.1]


def test_a_zero_learning_rate_from_a_schedule_leaves_params_unchanged():
    """After a cosine schedule reaches final_lr = 0, updates no longer move the params."""
    p = {"w": np.array([1.0, 2.0])}
    opt = optim.adam(optim.cosine_decay(0.1, total_steps=1))
    state = opt.init(p)
    p1, state = opt.update(tree.map(np.ones_like, p), state, p)
    p2, _ = opt.update(tree.map(np.ones_like, p), state, p1)
    assert np.array_equal(p2["w"], p1["w"])


def test_optimizers_are_frozen_values():
    """An optimizer cannot be changed in place; freeze and chain return new ones."""
    opt = optim.adam()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        opt.weight_decay = 1.0  # type: ignore[misc]
    frozen = optim.freeze(opt, lambda path: True)
    assert opt.frozen == () and len(frozen.frozen) == 1


def sgd_update(schedule, grads, net):
    opt = optim.sgd(schedule)
    return opt.update(grads, opt.init(net), net)


def grads_and_state():
    net = net_with_state()
    x, y = data()
    return net, fnn.grad(net, x, y, losses.mse)


def test_grads_of_another_network_raise_with_the_path():
    """Gradients whose structure differs from the params name the first differing path."""
    net, _ = grads_and_state()
    other = fnn.init([fnn.Dense(4), Shift(), fnn.Tanh(), fnn.Dense(2)], (2,), key=0, dtype=np.float64)
    opt = optim.adam()
    with pytest.raises(ValueError, match=r"adam.update: grads do not match params: .*layers\[0\]\.w: shape \(2, 3\) vs shape \(2, 4\).*fnn.grad"):
        opt.update(fnn.grad(other, *data(), losses.mse), opt.init(net), net)


def test_state_built_for_other_params_raises_with_the_fix():
    """A state from opt.init(other params) is refused, naming the path and saying to re-create it."""
    net, grads = grads_and_state()
    other = fnn.init([fnn.Dense(3), Shift(), fnn.Tanh(), fnn.Dense(5)], (2,), key=0, dtype=np.float64)
    opt = optim.sgd(0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"state.slots\['momentum'\] does not match params: .*layers\[3\]\.w.*re-create the state with opt.init\(params\)"):
        opt.update(grads, opt.init(other), net)


def test_state_of_another_optimizer_raises():
    """An Adam state given to SGD with momentum is refused with the fix."""
    net, grads = grads_and_state()
    with pytest.raises(ValueError, match=r"sgd.update: state holds buffers \['mu', 'nu'\] but this optimizer needs \['momentum'\].*opt.init\(params\)"):
        optim.sgd(0.1, momentum=0.9).update(grads, optim.adam().init(net), net)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda o, n, g, s: o.update(g, None, n), TypeError, r"adam.update: state must be the OptState from opt.init\(params\), got NoneType"),
        (lambda o, n, g, s: o.update(g, n, s), TypeError, r"state must be the OptState.*opt.update\(grads, state, params\)"),
        (lambda o, n, g, s: o.update(tree.map(lambda a: a.astype(np.float32), g), s, n), TypeError, r"adam.update: grads at layers\[0\]\.w has dtype float32 but the parameter is float64"),
        (lambda o, n, g, s: o.init({}), ValueError, r"adam.init: params has no arrays"),
        (lambda o, n, g, s: o.init({"i": np.arange(3)}), TypeError, r"adam.init: \['i'\] has dtype int64; parameters must be floating"),
        (lambda o, n, g, s: optim.freeze(o, lambda path: 1).init(n), TypeError, r"the freeze mask must return a bool for each path, got int"),
        (lambda o, n, g, s: optim.freeze(o, {"w": np.array(True)}).init(n), ValueError, r"the freeze mask tree does not match params"),
        (lambda o, n, g, s: optim.freeze(o, tree.map(np.ones_like, n)).init(n), ValueError, r"freeze mask tree must hold boolean arrays of shape \(\).*use np.array\(True\)"),
        (lambda o, n, g, s: optim.adamw(mask=lambda path: None).init(n), TypeError, r"adamw.init: the weight-decay mask must return a bool"),
        (lambda o, n, g, s: optim.freeze("adam", lambda p: True), TypeError, r"freeze: opt must be an optimizer"),
        (lambda o, n, g, s: optim.learning_rate(o, None), TypeError, r"learning_rate: state must be the OptState"),
        (lambda o, n, g, s: optim.learning_rate("adam", s), TypeError, r"learning_rate: opt must be an fnn.optim optimizer"),
        (lambda o, n, g, s: sgd_update(lambda t: -1.0, g, n), ValueError, r"sgd.update: the lr schedule returned -1.0 at step 0; a learning rate must be finite and >= 0"),
        (lambda o, n, g, s: sgd_update(lambda t: "x", g, n), TypeError, r"the lr schedule returned str at step 0"),
        (lambda o, n, g, s: optim.OptState(np.float64(1.0), {}), ValueError, r"OptState: count must be a non-negative integer scalar"),
    ],
)
def test_bad_calls_raise(call, error, match):
    """Wrong kinds, dtypes, masks and schedules raise errors that name the function and the fix."""
    net, grads = grads_and_state()
    opt = optim.adam()
    with pytest.raises(error, match=match):
        call(opt, net, grads, opt.init(net))


def test_errors_leave_inputs_unchanged():
    """A failing update mutates nothing (params, grads and state are as before)."""
    net, grads = grads_and_state()
    opt = optim.adam()
    state = opt.init(net)
    before = [a.copy() for a in tree.leaves((net, grads, state))]
    bad = tree.map(lambda a: a.astype(np.float32), grads)
    with pytest.raises(TypeError):
        opt.update(bad, state, net)
    assert all(np.array_equal(a, b) for a, b in zip(before, tree.leaves((net, grads, state)), strict=True))


@given(testing.networks(max_layers=3), st.sampled_from(sorted(FACTORIES)), st.booleans())
def test_networks_keep_their_structure_and_dtype(net, name, as_float32):
    """On generated MLPs (float64 or cast to float32), every optimizer returns a Network of the
    same structure and dtype, and its state's buffers share that structure."""
    if as_float32:
        net = tree.map(lambda a: a.astype(np.float32), net)
    grads = tree.map(lambda a: np.linspace(-1, 1, a.size, dtype=a.dtype).reshape(a.shape), net)
    opt = FACTORIES[name]()
    new, state = opt.update(grads, opt.init(net), net)
    tree.check_same_structure(new, net)
    assert isinstance(new, fnn.Network)
    for a, b in zip(tree.leaves(new), tree.leaves(net), strict=True):
        assert a.dtype == b.dtype
    for slot in state.slots.values():
        tree.check_same_structure(slot, net)
