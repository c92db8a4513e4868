"""Tests of fnn.optim.transforms: global-norm clipping and coupled L2, alone and in a chain."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn.optim as optim
from fnn import testing


def norm(arrays):
    return math.sqrt(sum(float(np.vdot(a, a)) for a in arrays))


grad_lists = st.lists(testing.arrays(testing.shapes(1, 2, 1, 4)), min_size=1, max_size=4)


@given(grad_lists, st.floats(1e-3, 10.0))
def test_clip_bounds_the_global_norm(grads, max_norm):
    """After clipping, ‖g‖ == max_norm when it was above, and g is unchanged when below."""
    before = norm(grads)
    clipped = optim.clip_by_global_norm(max_norm)(grads, [np.zeros_like(g) for g in grads])
    if before > max_norm:
        assert norm(clipped) == pytest.approx(max_norm, rel=1e-12)
        # the direction is kept: every leaf is scaled by the same factor
        for g, c in zip(grads, clipped, strict=True):
            np.testing.assert_allclose(c, g * (max_norm / before), rtol=1e-12)
    else:
        assert all(c is g for g, c in zip(grads, clipped, strict=True))


def test_clip_in_a_chain_limits_the_sgd_step():
    """chain(clip(1), sgd(1)) moves the params by exactly a unit-norm step for a large gradient."""
    p = {"a": np.zeros(2), "b": np.zeros(1)}
    g = {"a": np.array([30.0, 0.0]), "b": np.array([40.0])}
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(1.0))
    new, _ = opt.update(g, opt.init(p), p)
    np.testing.assert_allclose(new["a"], [-0.6, 0.0], rtol=1e-15)
    np.testing.assert_allclose(new["b"], [-0.8], rtol=1e-15)


def test_clip_ignores_frozen_leaves():
    """The global norm is taken over trainable leaves only: a frozen leaf's gradient does not shrink the others."""
    p = {"a": np.zeros(1), "frozen": np.zeros(1)}
    g = {"a": np.array([0.5]), "frozen": np.array([1000.0])}
    opt = optim.freeze(optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(1.0)), lambda path: "frozen" in path)
    new, _ = opt.update(g, opt.init(p), p)
    np.testing.assert_array_equal(new["a"], [-0.5])
    assert np.array_equal(new["frozen"], p["frozen"])


def test_l2_penalty_adds_coeff_times_params():
    """l2_penalty(c) turns g into g + c·θ before the rule (coupled decay)."""
    p = {"w": np.array([2.0, -4.0])}
    g = {"w": np.array([0.5, 0.5])}
    opt = optim.chain(optim.l2_penalty(0.25), optim.sgd(0.1))
    new, _ = opt.update(g, opt.init(p), p)
    np.testing.assert_allclose(new["w"], p["w"] - 0.1 * (g["w"] + 0.25 * p["w"]), rtol=1e-15)


def test_l2_penalty_differs_from_adamw_decay():
    """Coupled L2 is rescaled by Adam (first step moves by ≈ lr); AdamW's decay is not."""
    p = {"w": np.array([10.0])}
    g = {"w": np.array([0.0])}
    coupled = optim.chain(optim.l2_penalty(0.1), optim.adam(0.01))
    decoupled = optim.adamw(0.01, weight_decay=0.1)
    a, _ = coupled.update(g, coupled.init(p), p)
    b, _ = decoupled.update(g, decoupled.init(p), p)
    np.testing.assert_allclose(a["w"], [10.0 - 0.01], rtol=1e-9)
    np.testing.assert_allclose(b["w"], [10.0 - 0.01 * 0.1 * 10.0], rtol=1e-12)


def test_chain_order_is_respected():
    """chain(l2, clip, opt) clips the penalised gradient; chain(clip, l2, opt) penalises the clipped one."""
    p = {"w": np.array([3.0])}
    g = {"w": np.array([4.0])}
    first = optim.chain(optim.l2_penalty(1.0), optim.clip_by_global_norm(1.0), optim.sgd(1.0))
    second = optim.chain(optim.clip_by_global_norm(1.0), optim.l2_penalty(1.0), optim.sgd(1.0))
    np.testing.assert_allclose(first.update(g, first.init(p), p)[0]["w"], [2.0])
    np.testing.assert_allclose(second.update(g, second.init(p), p)[0]["w"], [3.0 - 4.0])


def test_nested_chains_flatten_in_order():
    """chain(a, chain(b, opt)) applies a then b."""
    a, b = optim.clip_by_global_norm(2.0), optim.l2_penalty(0.5)
    opt = optim.chain(a, optim.chain(b, optim.sgd(0.1)))
    assert opt.transforms == (a, b)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: optim.clip_by_global_norm(0.0), ValueError, r"clip_by_global_norm: max_norm must be a finite number in \(0, inf\)"),
        (lambda: optim.clip_by_global_norm(float("inf")), ValueError, r"max_norm must be a finite number"),
        (lambda: optim.clip_by_global_norm("1"), TypeError, r"max_norm must be a number"),
        (lambda: optim.l2_penalty(-1e-4), ValueError, r"l2_penalty: coeff must be a finite number in \[0, inf\)"),
        (lambda: optim.chain(), TypeError, r"chain: the last argument must be an optimizer.*got nothing"),
        (lambda: optim.chain(optim.clip_by_global_norm(1.0)), TypeError, r"chain: the last argument must be an optimizer"),
        (lambda: optim.chain(optim.sgd(0.1), optim.adam()), TypeError, r"chain: argument 0 must be a gradient transform.*only the last argument is an optimizer"),
        (lambda: optim.chain(3, optim.adam()), TypeError, r"argument 0 must be a gradient transform"),
    ],
)
def test_bad_transform_arguments_raise(make, error, match):
    """Impossible transform settings and malformed chains raise with a fix."""
    with pytest.raises(error, match=match):
        make()
