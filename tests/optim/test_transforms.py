"""Tests of fnn.optim.transforms: scale, learning rates, clipping and weight decay, against
numbers computed by hand, alone and in chains."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn.optim as optim
from fnn import testing, tree


def norm(arrays):
    return math.sqrt(sum(float(np.vdot(a, a)) for a in arrays))


def once(tx, updates, params=None):
    """One update of tx from its initial state; returns (updates, state)."""
    like = updates if params is None else params
    return tx.update(updates, tx.init(like), params)


grad_lists = st.lists(testing.arrays(testing.shapes(1, 2, 1, 4)), min_size=1, max_size=4)


@given(grad_lists, st.floats(1e-3, 10.0))
def test_clip_bounds_the_global_norm(grads, max_norm):
    """After clipping, ‖g‖ == max_norm when it was above, and g is unchanged when below."""
    before = norm(grads)
    clipped, _ = once(optim.clip_by_global_norm(max_norm), grads)
    if before > max_norm:
        assert norm(clipped) == pytest.approx(max_norm, rel=1e-12)
        # the direction is kept: every leaf is scaled by the same factor
        for g, c in zip(grads, clipped, strict=True):
            np.testing.assert_allclose(c, g * (max_norm / before), rtol=1e-12)
    else:
        assert all(np.array_equal(c, g) for g, c in zip(grads, clipped, strict=True))


def test_clip_in_a_chain_limits_the_sgd_step():
    """chain(clip(1), sgd(1)) moves the params by exactly a unit-norm step for a large gradient."""
    p = {"a": np.zeros(2), "b": np.zeros(1)}
    g = {"a": np.array([30.0, 0.0]), "b": np.array([40.0])}
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(1.0))
    new, _ = opt.update(g, opt.init(p), p)
    np.testing.assert_allclose(new["a"], [-0.6, 0.0], rtol=1e-15)
    np.testing.assert_allclose(new["b"], [-0.8], rtol=1e-15)


def test_clip_ignores_frozen_leaves():
    """The global norm is taken over trainable leaves only: a frozen leaf's gradient does not
    shrink the others."""
    p = {"a": np.zeros(1), "frozen": np.zeros(1)}
    g = {"a": np.array([0.5]), "frozen": np.array([1000.0])}
    opt = optim.chain(optim.freeze("['frozen']"), optim.clip_by_global_norm(1.0), optim.sgd(1.0))
    new, _ = opt.update(g, opt.init(p), p)
    np.testing.assert_array_equal(new["a"], [-0.5])
    assert new["frozen"] is p["frozen"]


def test_scale_by_hand():
    """scale(s): u ← s·u, in the leaf's dtype."""
    u, _ = once(optim.scale(-0.5), {"w": np.array([2.0, -4.0], np.float32)})
    np.testing.assert_array_equal(u["w"], np.array([-1.0, 2.0], np.float32))
    assert u["w"].dtype == np.float32


def test_scale_by_learning_rate_follows_the_schedule_and_flips_the_sign():
    """u_t = −lr_t·g with lr_t = schedule(t), t the updates made before; the count advances."""
    tx = optim.scale_by_learning_rate(optim.step_decay(0.4, step_size=1, factor=0.5))
    g = {"w": np.array([1.0, -2.0])}
    state = tx.init(g)
    for t, lr in enumerate([0.4, 0.2, 0.1]):
        u, state = tx.update(g, state)
        np.testing.assert_allclose(u["w"], [-lr, 2 * lr], rtol=1e-15)
        assert int(state.count) == t + 1


def test_clip_elementwise_by_hand():
    """clip(δ) clips every entry to [−δ, δ] and leaves the others unchanged."""
    u, _ = once(optim.clip(0.5), [np.array([-2.0, -0.25, 0.0, 0.5, 3.0])])
    np.testing.assert_array_equal(u[0], [-0.5, -0.25, 0.0, 0.5, 0.5])


def test_add_decayed_weights_by_hand_with_mask():
    """add_decayed_weights(λ, mask): u + λ·θ on the selected leaves, u elsewhere."""
    p = {"w": np.array([2.0, -4.0]), "b": np.array([10.0])}
    g = {"w": np.array([0.5, 0.5]), "b": np.array([1.0])}
    u, _ = once(optim.add_decayed_weights(0.25, mask="['w']"), g, p)
    np.testing.assert_allclose(u["w"], [0.5 + 0.25 * 2.0, 0.5 - 0.25 * 4.0], rtol=1e-15)
    np.testing.assert_array_equal(u["b"], [1.0])


def test_add_decayed_weights_needs_params():
    """Without params, add_decayed_weights says what is missing."""
    with pytest.raises(ValueError, match=r"add_decayed_weights.update: add_decayed_weights needs the params"):
        once(optim.add_decayed_weights(0.1), [np.ones(1)])


def test_coupled_l2_before_sgd_by_hand():
    """chain(add_decayed_weights(c), sgd(lr)): θ − lr·(g + c·θ)."""
    p = {"w": np.array([2.0, -4.0])}
    g = {"w": np.array([0.5, 0.5])}
    opt = optim.chain(optim.add_decayed_weights(0.25), optim.sgd(0.1))
    new, _ = opt.update(g, opt.init(p), p)
    np.testing.assert_allclose(new["w"], p["w"] - 0.1 * (g["w"] + 0.25 * p["w"]), rtol=1e-15)


def test_coupled_l2_differs_from_adamw_decay():
    """Coupled L2 is rescaled by Adam (first step moves by ≈ lr); AdamW's decay is not."""
    p = {"w": np.array([10.0])}
    g = {"w": np.array([0.0])}
    coupled = optim.chain(optim.add_decayed_weights(0.1), optim.adam(0.01))
    decoupled = optim.adamw(0.01, weight_decay=0.1)
    a, _ = coupled.update(g, coupled.init(p), p)
    b, _ = decoupled.update(g, decoupled.init(p), p)
    np.testing.assert_allclose(a["w"], [10.0 - 0.01], rtol=1e-9)
    np.testing.assert_allclose(b["w"], [10.0 - 0.01 * 0.1 * 10.0], rtol=1e-12)


def test_chain_order_is_respected():
    """chain(l2, clip, opt) clips the penalised gradient; chain(clip, l2, opt) penalises the
    clipped one."""
    p = {"w": np.array([3.0])}
    g = {"w": np.array([4.0])}
    l2 = optim.add_decayed_weights(1.0)
    first = optim.chain(l2, optim.clip_by_global_norm(1.0), optim.sgd(1.0))
    second = optim.chain(optim.clip_by_global_norm(1.0), l2, optim.sgd(1.0))
    np.testing.assert_allclose(first.update(g, first.init(p), p)[0]["w"], [2.0])
    np.testing.assert_allclose(second.update(g, second.init(p), p)[0]["w"], [3.0 - 4.0])


def test_nested_chains_apply_in_order():
    """chain(a, chain(b, opt)) applies a, then b, then opt; the state nests the same way."""
    a, b = optim.clip_by_global_norm(2.0), optim.add_decayed_weights(0.5)
    opt = optim.chain(a, optim.chain(b, optim.sgd(0.1)))
    assert opt.tx.transforms[0] is a and opt.tx.transforms[1].transforms[0] is b
    p = {"w": np.array([1.0])}
    new, state = opt.update({"w": np.array([4.0])}, opt.init(p), p)
    np.testing.assert_allclose(new["w"], [1.0 - 0.1 * (2.0 + 0.5)], rtol=1e-15)
    assert len(state.inner) == 2 and len(state.inner[1]) == 2


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: optim.clip_by_global_norm(0.0), ValueError, r"clip_by_global_norm: max_norm must be a finite number in \(0, inf\)"),
        (lambda: optim.clip_by_global_norm(float("inf")), ValueError, r"max_norm must be a finite number"),
        (lambda: optim.clip_by_global_norm("1"), TypeError, r"max_norm must be a number"),
        (lambda: optim.clip(-1.0), ValueError, r"fnn.optim.clip: max_delta must be a finite number in \(0, inf\)"),
        (lambda: optim.scale(float("nan")), ValueError, r"fnn.optim.scale: factor must be a finite number"),
        (lambda: optim.scale_by_learning_rate(0.0), ValueError, r"scale_by_learning_rate: lr must be a finite number in \(0, inf\)"),
        (lambda: optim.scale_by_learning_rate("fast"), TypeError, r"scale_by_learning_rate: lr must be a number or a schedule"),
        (lambda: optim.add_decayed_weights(-1e-4), ValueError, r"add_decayed_weights: weight_decay must be a finite number in \[0, inf\)"),
        (lambda: optim.add_decayed_weights(1e-4, mask=3.5), TypeError, r"add_decayed_weights: mask must be a path prefix"),
        (lambda: optim.chain(3, optim.adam()), TypeError, r"chain: argument 0 must be a gradient transformation"),
    ],
)
def test_bad_transform_arguments_raise(make, error, match):
    """Impossible transform settings and malformed chains raise with a fix."""
    with pytest.raises(error, match=match):
        make()


def test_empty_chain_is_the_identity():
    """chain() passes the updates through (as read-only arrays) and keeps an empty tuple state."""
    g = {"w": np.array([1.0, 2.0])}
    u, state = once(optim.chain(), g)
    np.testing.assert_array_equal(u["w"], g["w"])
    assert state == () and not u["w"].flags.writeable and g["w"].flags.writeable


def test_schedule_returning_nan_names_the_transformation_and_mutates_nothing():
    """A schedule giving NaN raises ValueError naming scale_by_learning_rate and the step; the
    inputs are unchanged."""
    tx = optim.scale_by_learning_rate(lambda t: float("nan"))
    g = {"w": np.array([1.0])}
    state = tx.init(g)
    before = [a.copy() for a in tree.leaves((g, state))]
    with pytest.raises(ValueError, match=r"scale_by_learning_rate.update: scale_by_learning_rate: the lr schedule returned nan at step 0"):
        tx.update(g, state)
    assert all(np.array_equal(a, b) for a, b in zip(before, tree.leaves((g, state)), strict=True))
