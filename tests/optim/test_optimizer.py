"""Tests of fnn.optim.optimizer: every optimizer's purity, structure and dtype, state and frozen
leaves, learning rates, apply_updates, observe, migrate, and errors."""

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
        optim.clip_by_global_norm(0.5), optim.add_decayed_weights(0.1), optim.sgd(0.1, momentum=0.9)
    ),
    "accumulated_adam": lambda: optim.multi_steps(optim.adam(1e-2), 2),
    "adam_ema_plateau": lambda: optim.chain(optim.adam(1e-2), optim.ema(0.9),
                                            optim.reduce_on_plateau(2, 0.5)),
    "per_layer": lambda: optim.multi_transform(
        {"first": optim.adam(1e-2), "rest": optim.sgd(0.1, momentum=0.5)},
        lambda path: "first" if path.startswith(("layers[0]", "['first']")) else "rest"),
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
        assert isinstance(new_state, optim.OptimizerState)
        params, state = new, new_state


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_leaves_are_never_updated_or_decayed(name):
    """Running statistics (state fields) come out bit-identical, even under decay, momentum,
    Nesterov and clipping, and even when the gradient tree holds non-zero values for them."""
    net = net_with_state()
    x, y = data()
    opt = FACTORIES[name]()
    new, _ = run(opt, net, 4, x, y)
    assert new.layers[1].running is net.layers[1].running
    assert not np.array_equal(new.layers[1].b, net.layers[1].b)  # the trainable field moved
    # a (buggy) gradient with a non-zero entry for the state leaf changes nothing either
    grads = tree.map(np.ones_like, net)
    moved, _ = opt.update(grads, opt.init(net), net)
    assert moved.layers[1].running is net.layers[1].running


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("as_tree", [False, True])
def test_frozen_leaves_are_bit_identical(name, as_tree):
    """chain(freeze(mask), opt) leaves the selected leaves exactly unchanged (the same arrays)
    after many steps, never decayed, with their buffers still at their initial values; the
    others train."""
    net = net_with_state()
    x, y = data()
    if as_tree:
        mask = tree.map_with_path(lambda path, a: np.array(path.startswith("layers[0]")), net)
    else:
        mask = lambda path: path.startswith("layers[0]")  # noqa: E731
    opt = optim.chain(optim.freeze(mask), FACTORIES[name]())
    new, state = run(opt, net, 5, x, y)
    assert new.layers[0].w is net.layers[0].w and new.layers[0].b is net.layers[0].b
    assert not np.array_equal(new.layers[3].w, net.layers[3].w)
    initial = opt.init(net)
    for slot in state.slots:
        assert np.array_equal(state.slots[slot].layers[0].w, initial.slots[slot].layers[0].w)


def test_freeze_twice_freezes_the_union():
    """Two freezes compose: leaves selected by either mask stay put."""
    p = {"a": np.ones(2), "b": np.ones(2), "c": np.ones(2)}
    opt = optim.chain(optim.freeze("['a']"), optim.freeze(lambda s: s == "['b']"), optim.sgd(1.0))
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
    """The state's leaves have paths under count and the inner states, slots views the buffers,
    and fnn.tree.allclose compares states."""
    net = net_with_state()
    opt = optim.adam()
    state = opt.init(net)
    paths = [p for p, _ in tree.leaves_with_path(state)]
    assert paths[0] == "count"
    assert "inner[0].mu.layers[0].w" in paths and "inner[0].nu.layers[3].b" in paths
    assert "inner[1].count" in paths and "inner[0].count" in paths
    assert state.slots["mu"] is state.inner[0].mu
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
    """An optimizer and its transformations cannot be changed in place; chain returns a new one."""
    opt = optim.adam()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        opt.tx = None  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        opt.tx.transforms[0].b1 = 0.5  # type: ignore[misc]
    frozen = optim.chain(optim.freeze(lambda path: True), opt)
    assert len(opt.tx.transforms) == 2 and len(frozen.tx.transforms) == 2
    assert frozen.tx.transforms[1] is opt.tx


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
    with pytest.raises(ValueError, match=r"sgd.update: trace: state.momentum does not match params: .*layers\[3\]\.w.*re-create the state with opt.init\(params\)"):
        opt.update(grads, opt.init(other), net)


def test_state_of_another_optimizer_raises():
    """An Adam state given to SGD with momentum is refused, naming the transformation."""
    net, grads = grads_and_state()
    with pytest.raises(TypeError, match=r"sgd.update: trace: state must be the TraceState from init\(params\), got ScaleByAdamState"):
        optim.sgd(0.1, momentum=0.9).update(grads, optim.adam().init(net), net)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda o, n, g, s: o.update(g, None, n), TypeError, r"adam.update: state must be the OptimizerState from opt.init\(params\), got NoneType"),
        (lambda o, n, g, s: o.update(g, n, s), TypeError, r"state must be the OptimizerState.*opt.update\(grads, state, params\)"),
        (lambda o, n, g, s: o.update(tree.map(lambda a: a.astype(np.float32), g), s, n), TypeError, r"adam.update: grads at layers\[0\]\.w has dtype float32 but the parameter is float64"),
        (lambda o, n, g, s: o.init({}), ValueError, r"adam.init: params has no arrays"),
        (lambda o, n, g, s: o.init({"i": np.arange(3)}), TypeError, r"adam.init: \['i'\] has dtype int64; parameters must be floating"),
        (lambda o, n, g, s: optim.chain(optim.freeze(lambda path: 1), o).init(n), TypeError, r"adam.init: freeze: the mask must return a bool for each path, got int"),
        (lambda o, n, g, s: optim.chain(optim.freeze({"w": np.array(True)}), o).init(n), ValueError, r"freeze: the mask tree does not match params"),
        (lambda o, n, g, s: optim.chain(optim.freeze(tree.map(np.ones_like, n)), o).init(n), ValueError, r"freeze: the mask tree must hold boolean arrays of shape \(\).*use np.array\(True\)"),
        (lambda o, n, g, s: optim.chain(optim.freeze("layers[9]"), o).init(n), ValueError, r"adam.init: freeze: the mask 'layers\[9\]' names no parameter path; the paths are layers\[0\]\.w"),
        (lambda o, n, g, s: optim.chain(optim.freeze(lambda p: False), o).init(n), ValueError, r"freeze: the mask selects no parameter"),
        (lambda o, n, g, s: optim.adamw(mask=lambda path: None).init(n), TypeError, r"adamw.init: add_decayed_weights: the mask must return a bool"),
        (lambda o, n, g, s: optim.adamw(mask="layers[0].v").init(n), ValueError, r"adamw.init: add_decayed_weights: the mask 'layers\[0\]\.v' names no parameter path"),
        (lambda o, n, g, s: optim.freeze(3), TypeError, r"freeze: mask must be a path prefix"),
        (lambda o, n, g, s: optim.freeze(("layers[0]", 3)), TypeError, r"freeze: a mask given as a collection must hold path prefixes"),
        (lambda o, n, g, s: optim.learning_rate(o, None), TypeError, r"learning_rate: state must be the OptimizerState"),
        (lambda o, n, g, s: optim.learning_rate("adam", s), TypeError, r"learning_rate: opt must be an fnn.optim optimizer"),
        (lambda o, n, g, s: optim.learning_rate(optim.Optimizer(optim.scale(1.0)), optim.Optimizer(optim.scale(1.0)).init(n)), ValueError, r"learning_rate: chain has no learning rate|learning_rate: scale has no learning rate"),
        (lambda o, n, g, s: sgd_update(lambda t: -1.0, g, n), ValueError, r"sgd.update: scale_by_learning_rate: the lr schedule returned -1.0 at step 0; a learning rate must be finite and >= 0"),
        (lambda o, n, g, s: sgd_update(lambda t: float("nan"), g, n), ValueError, r"sgd.update: scale_by_learning_rate: the lr schedule returned nan at step 0"),
        (lambda o, n, g, s: sgd_update(lambda t: "x", g, n), TypeError, r"the lr schedule returned str at step 0"),
        (lambda o, n, g, s: sgd_update(lambda t: 10**400, g, n), ValueError, r"the lr schedule returned 1000.*\.\.\. at step 0; a learning rate must be finite"),
        (lambda o, n, g, s: optim.OptState(np.float64(1.0), {}), ValueError, r"OptState: count must be a non-negative integer scalar"),
        (lambda o, n, g, s: optim.OptimizerState(-1, None), ValueError, r"OptimizerState: count must be a non-negative integer scalar"),
        (lambda o, n, g, s: optim.chain(o, 3), TypeError, r"chain: argument 1 must be a gradient transformation"),
        (lambda o, n, g, s: optim.Optimizer("adam"), TypeError, r"Optimizer: must be a gradient transformation"),
        (lambda o, n, g, s: optim.apply_updates(n, tree.map(lambda a: a[..., :1], g)), ValueError, r"apply_updates: updates do not match params: .*layers\[0\]\.w: shape \(2, 3\) vs shape \(2, 1\)"),
        (lambda o, n, g, s: optim.apply_updates(n, tree.map(lambda a: a.astype(np.float32), g)), TypeError, r"apply_updates: updates at layers\[0\]\.w has dtype float32"),
        (lambda o, n, g, s: optim.observe(o, s, [1.0]), TypeError, r"observe: logs must be a mapping"),
        (lambda o, n, g, s: optim.migrate(s, o, n), TypeError, r"migrate: state must be a 0.1.0 fnn.optim.OptState"),
        (lambda o, n, g, s: optim.migrate(optim.OptState(1, {"momentum": n}), o, n), ValueError, r"migrate: the state holds buffers \['momentum'\] but adam keeps \['mu', 'nu'\]"),
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


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_optax_style_loop_equals_optimizer_update(name):
    """tx.update then apply_updates gives the same params, bit for bit, as opt.update, and the
    same inner state; the updates of state leaves are -0.0 and leave those leaves unchanged."""
    net = net_with_state()
    x, y = data()
    opt = FACTORIES[name]()
    tx = opt.tx
    a, sa = net, opt.init(net)
    b, sb = net, tx.init(net)
    for _ in range(3):
        a, sa = opt.update(fnn.grad(a, x, y, losses.mse), sa, a)
        updates, sb = tx.update(fnn.grad(b, x, y, losses.mse), sb, b)
        running = updates.layers[1].running
        assert not running.any() and np.signbit(running).all()
        b = optim.apply_updates(b, updates)
    assert tree.allclose(a, b, rtol=0.0) and tree.allclose(sa.inner, sb, rtol=0.0)
    assert b.layers[1].running is net.layers[1].running


def test_apply_updates_by_hand():
    """apply_updates(θ, u) = θ + u leaf by leaf, read-only, inputs unchanged."""
    p = {"w": np.array([1.0, -2.0]), "b": np.array(0.5)}
    u = {"w": np.array([0.25, 0.5]), "b": np.array(-1.0)}
    out = optim.apply_updates(p, u)
    np.testing.assert_array_equal(out["w"], [1.25, -1.5])
    assert float(out["b"]) == -0.5 and out["b"].shape == ()
    assert not out["w"].flags.writeable and p["w"].flags.writeable
    np.testing.assert_array_equal(p["w"], [1.0, -2.0])


def test_negative_zero_updates_leave_every_float_bit_identical():
    """Adding -0.0 is the identity on every float, -0.0 and NaN included; +0.0 is not."""
    p = np.array([-0.0, 0.0, 1.5, -np.inf, np.nan])
    out = optim.apply_updates({"p": p}, {"p": np.full(5, -0.0)})["p"]
    assert out.tobytes() == p.tobytes()
    assert optim.apply_updates({"p": p}, {"p": np.zeros(5)})["p"].tobytes() != p.tobytes()


def test_bare_transformation_becomes_an_optimizer():
    """Optimizer(tx) applies tx's updates; a chain of an optimizer stays an optimizer."""
    p = {"w": np.array([1.0])}
    g = {"w": np.array([2.0])}
    opt = optim.Optimizer(optim.chain(optim.scale(0.5), optim.scale_by_learning_rate(0.1)))
    new, state = opt.update(g, opt.init(p), p)
    assert float(new["w"][0]) == pytest.approx(1.0 - 0.1 * 0.5 * 2.0, rel=1e-15)
    assert int(state.count) == 1 and state.slots == {}
    assert isinstance(optim.chain(optim.scale(1.0), optim.sgd(0.1)), optim.Optimizer)
    assert isinstance(optim.chain(optim.scale(1.0), optim.trace(0.5)), optim.Chain)
    adam = optim.adam()
    assert optim.Optimizer(adam).tx is adam.tx  # an Optimizer given as tx is unwrapped


def test_learning_rate_multiplies_schedule_and_plateau_scale():
    """learning_rate = schedule(count) × the plateau scale, each checked by hand."""
    p = {"w": np.zeros(1)}
    opt = optim.chain(optim.sgd(optim.step_decay(1.0, step_size=2, factor=0.5)),
                      optim.reduce_on_plateau(patience=0, factor=0.1))
    s = opt.init(p)
    assert optim.learning_rate(opt, s) == 1.0
    for _ in range(2):
        _, s = opt.update({"w": np.ones(1)}, s, p)
    assert optim.learning_rate(opt, s) == 0.5
    s = optim.observe(opt, s, {"val_loss": 3.0})  # first value: an improvement
    s = optim.observe(opt, s, {"val_loss": 3.0})  # no improvement, patience 0: ×0.1
    assert optim.learning_rate(opt, s) == pytest.approx(0.05, rel=1e-15)
    new, _ = opt.update({"w": np.ones(1)}, s, p)
    assert float(new["w"][0]) == pytest.approx(-0.05, rel=1e-15)


def test_slots_name_every_buffer_and_number_repeats():
    """OptimizerState.slots lists every buffer of the inner states; a repeated name gets _2."""
    p = {"w": np.zeros(2)}
    s = optim.rmsprop(momentum=0.5).init(p)
    assert sorted(s.slots) == ["momentum", "nu"]
    s2 = optim.Optimizer(optim.chain(optim.trace(0.5), optim.trace(0.9))).init(p)
    assert list(s2.slots) == ["momentum", "momentum_2"]


@pytest.mark.parametrize(
    ("make", "old_slots"),
    [
        (lambda: optim.adam(0.01, b1=0.8, b2=0.95, eps=1e-3), ("mu", "nu")),
        (lambda: optim.sgd(optim.cosine_decay(0.1, 10), momentum=0.9, nesterov=True), ("momentum",)),
        (lambda: optim.rmsprop(0.01, momentum=0.5), ("nu", "momentum")),
        (lambda: optim.adagrad(0.1), ("sum_sq",)),
        (lambda: optim.sgd(0.1), ()),
    ],
)
def test_migrated_state_continues_exactly_like_a_fresh_run(make, old_slots):
    """A 0.1.0-style OptState built from the buffers and count of a run after 3 updates,
    passed straight to update, gives the same next params and state as the run itself."""
    net = net_with_state()
    x, y = data()
    opt = make()
    p, s = run(opt, net, 3, x, y)
    old = optim.OptState(np.int64(3), {name: s.slots[name] for name in old_slots})
    g = fnn.grad(p, x, y, losses.mse)
    want_p, want_s = opt.update(g, s, p)
    got_p, got_s = opt.update(g, old, p)
    assert tree.allclose(got_p, want_p, rtol=0.0) and tree.allclose(got_s, want_s, rtol=0.0)
    assert optim.learning_rate(opt, optim.migrate(old, opt, p)) == optim.learning_rate(opt, s)
