"""Tests of fnn.optim.base: every transformation is pure (inputs unchanged, outputs and states
read-only), chains thread states, users' own tree-level transformations work in chains, and
the 0.1.0 OptState still builds."""

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn.optim as optim
from fnn import testing, tree

TRANSFORMATIONS = {
    "scale": lambda: optim.scale(-0.5),
    "lr": lambda: optim.scale_by_learning_rate(optim.cosine_decay(0.1, 3)),
    "clip": lambda: optim.clip(0.1),
    "clip_norm": lambda: optim.clip_by_global_norm(0.1),
    "decay": lambda: optim.add_decayed_weights(0.1),
    "trace": lambda: optim.trace(0.9, nesterov=True),
    "adam": lambda: optim.scale_by_adam(),
    "rms": lambda: optim.scale_by_rms(),
    "adagrad": lambda: optim.scale_by_adagrad(),
    "masked": lambda: optim.masked(optim.trace(0.5), lambda p: p.endswith("[0]")),
    "freeze": lambda: optim.chain(optim.freeze(lambda p: p.endswith("[0]")), optim.scale(2.0)),
    "multi": lambda: optim.multi_transform({"a": optim.scale(2.0), "b": optim.scale_by_adam()},
                                           lambda p: "a" if p.endswith("[0]") else "b"),
    "multi_steps": lambda: optim.multi_steps(optim.scale_by_adam(), 2),
    "ema": lambda: optim.ema(0.9),
    "plateau": lambda: optim.reduce_on_plateau(1, 0.5),
    "rmsprop_rule": lambda: optim.RMSprop(momentum=0.5),
    "chain": lambda: optim.chain(optim.clip_by_global_norm(1.0), optim.scale_by_adam(),
                                 optim.add_decayed_weights(0.1), optim.scale_by_learning_rate(0.1)),
}


@st.composite
def trees_and_grads(draw):
    """Lists of float32 or float64 arrays (scalars to matrices), sometimes read-only."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shapes = draw(st.lists(st.lists(st.integers(1, 3), max_size=2).map(tuple), min_size=1, max_size=3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
    for a in params + grads:
        a.flags.writeable = draw(st.booleans())
    return params, grads


@given(trees_and_grads(), st.sampled_from(sorted(TRANSFORMATIONS)), st.integers(1, 3))
def test_every_transformation_is_pure(trees, name, steps):
    """update never writes into the params, updates or state it is given (nor changes their
    flags), returns read-only updates and states of the params' structure and dtypes."""
    params, grads = trees
    tx = TRANSFORMATIONS[name]()
    state = tx.init(params)
    for _ in range(steps):
        given_ = (params, grads, state)
        before = [(a.tobytes(), a.flags.writeable) for a in tree.leaves(given_)]
        updates, new_state = tx.update(grads, state, params)
        assert [(a.tobytes(), a.flags.writeable) for a in tree.leaves(given_)] == before
        tree.check_same_structure(updates, params)
        assert all(u.dtype == p.dtype for u, p in zip(updates, params, strict=True))
        assert not any(a.flags.writeable for a in tree.leaves((updates, new_state)))
        state = new_state


def test_chain_threads_each_state_and_checks_its_kind():
    """chain's state is the tuple of its parts' states; a state of the wrong shape is refused."""
    tx = optim.chain(optim.trace(0.5), optim.scale_by_learning_rate(1.0))
    p = [np.zeros(1)]
    s = tx.init(p)
    assert type(s) is tuple and isinstance(s[0], optim.TraceState)
    u, s = tx.update([np.ones(1)], s, p)
    u, s = tx.update([np.ones(1)], s, p)
    assert float(u[0][0]) == -1.5 and int(s[1].count) == 2
    with pytest.raises(TypeError, match=r"chain.update: chain: state must be the tuple of 2 states"):
        tx.update([np.ones(1)], s[:1], p)


@attrs.frozen
class AddOne:
    """A user's transformation written at tree level, with a state counting calls."""

    def init(self, params):
        return {"calls": np.array(0)}

    def update(self, updates, state, params=None):
        return tree.map(lambda u: u + 1.0, updates), {"calls": np.array(int(state["calls"]) + 1)}


def test_a_users_tree_level_transformation_works_in_a_chain():
    """Any object with init/update works in chain (and then in an optimizer); it sees whole
    trees, and leaves outside the chain's active set pass through whatever it does."""
    p = {"a": np.zeros(1), "b": np.zeros(1)}
    opt = optim.chain(optim.freeze("['b']"), AddOne(), optim.sgd(0.5))
    s = opt.init(p)
    new, s = opt.update({"a": np.ones(1), "b": np.ones(1)}, s, p)
    assert float(new["a"][0]) == -0.5 * (1.0 + 1.0) and new["b"] is p["b"]
    assert int(s.inner[1]["calls"]) == 1


def test_optstate_of_0_1_0_still_builds_and_checks_its_fields():
    """OptState(count, slots) builds as in 0.1.0, with a read-only int64 count."""
    s = optim.OptState(np.int64(3), {"mu": [np.zeros(2)]})
    assert int(s.count) == 3 and s.count.dtype == np.int64 and not s.count.flags.writeable
    with pytest.raises(ValueError, match=r"OptState: count must be a non-negative integer scalar"):
        optim.OptState(-1, {})
    with pytest.raises(TypeError, match=r"OptState: slots must be a dict of buffer name to tree"):
        optim.OptState(0, [1])


@given(testing.arrays(testing.shapes(0, 2, 1, 3)))
def test_update_arrays_are_new_where_computed_and_views_where_passed(a):
    """Updates a transformation computes never alias its inputs; pass-through updates are
    read-only views of the caller's arrays (no copy), the caller's flags untouched."""
    a = a.astype(np.float64)
    computed, _ = optim.scale(2.0).update([a], optim.scale(2.0).init([a]))
    assert not np.shares_memory(computed[0], a)
    passed, _ = optim.chain().update([a], ())
    assert a.flags.writeable and not passed[0].flags.writeable
