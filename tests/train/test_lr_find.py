"""Tests of fnn.train.lr_find: it never changes what it is given, is reproducible, ramps the
rate as documented, stops on divergence, and suggests the steepest descent."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
from fnn import optim, tree
from fnn.train import lr_find
from fnn.train.lr_find import _suggest

CE = fnn.losses.sparse_softmax_cross_entropy


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def snapshot(t):
    return [(a.tobytes(), a.dtype, a.shape, a.flags.writeable) for a in tree.leaves(t)]


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**16), st.booleans(), st.sampled_from(["sgd", "adam", "rmsprop"]),
       st.integers(3, 12))
def test_lr_find_is_pure_and_reproducible(seed, dropout, opt_name, steps):
    """lr_find leaves the network (values and read-only flags) and the data exactly as they
    were, and the same arguments give the same result, bit for bit."""
    layers = [fnn.Dense(4), fnn.Tanh()] + ([fnn.layers.Dropout(0.3)] if dropout else []) + [fnn.Dense(2)]
    net = fnn.init([*layers, fnn.layers.BatchNorm()], (3,), key=seed)
    x, y = data(24, seed)
    x.flags.writeable = bool(seed % 2)
    before = snapshot((net, x, y))
    factory = getattr(optim, opt_name)
    a = lr_find(net, factory, CE, (x, y), key=seed, steps=steps, batch_size=8, max_lr=1.0)
    assert snapshot((net, x, y)) == before
    b = lr_find(net, factory, CE, (x, y), key=seed, steps=steps, batch_size=8, max_lr=1.0)
    for f in ("lrs", "losses", "smoothed"):
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes()
    assert a.suggestion == b.suggestion and a.diverged == b.diverged


def test_rates_are_the_documented_geometric_ramp():
    """lr_t = min_lr·(max_lr/min_lr)^(t/(steps−1)), the rate the optimizer really used."""
    x, y = data()
    net = fnn.init([fnn.Dense(2)], (3,), key=0)
    found = lr_find(net, optim.sgd, CE, (x, y), key=0, min_lr=1e-4, max_lr=1e-2, steps=5,
                    batch_size=16)
    np.testing.assert_allclose(found.lrs, [1e-4 * 100 ** (t / 4) for t in range(5)], rtol=1e-12)
    assert not found.diverged and len(found.losses) == 5 and not found.lrs.flags.writeable
    # the first recorded loss is the untrained network's loss on the first shuffled batch
    xb, yb = next(fnn.batches(x, y, 16, key=fnn.random.fold_in(fnn.random.fold_in(fnn.random.key(0), 0), 0)))
    assert found.losses[0] == pytest.approx(fnn.loss(net, xb, yb, CE, training=True), rel=1e-6)


def test_smoothing_is_the_debiased_moving_average():
    """smoothed_t = (β·a_{t−1} + (1−β)·L_t)/(1−β^{t+1}) of the recorded losses."""
    x, y = data()
    net = fnn.init([fnn.Dense(8), fnn.Tanh(), fnn.Dense(2)], (3,), key=1)
    found = lr_find(net, optim.adam, CE, (x, y), key=3, steps=12, batch_size=8, smoothing=0.7,
                    max_lr=0.1)
    avg, want = 0.0, []
    for t, loss in enumerate(found.losses):
        avg = 0.7 * avg + 0.3 * loss
        want.append(avg / (1 - 0.7 ** (t + 1)))
    np.testing.assert_allclose(found.smoothed, want, rtol=1e-12)


def test_divergence_stops_the_run():
    """With a huge final rate the loss blows up: the run stops early and says so."""
    x, y = data()
    net = fnn.init([fnn.Dense(8), fnn.Tanh(), fnn.Dense(2)], (3,), key=0)
    found = lr_find(net, optim.sgd, CE, (x, y), key=0, min_lr=1e-3, max_lr=1e8, steps=80,
                    batch_size=16)
    assert found.diverged and len(found.lrs) < 80
    last = found.smoothed[-1]
    assert not math.isfinite(last) or last > 4.0 * found.smoothed[:-1].min()


def test_suggestion_is_the_steepest_descent_before_the_minimum():
    """On a made-up curve (flat, a steep drop at a known rate, a minimum, a blow-up) the
    suggestion is the rate in the middle of the drop."""
    lrs = np.geomspace(1e-5, 1.0, 100)
    smoothed = np.concatenate([np.full(40, 2.0), np.linspace(2.0, 0.5, 30) ** 2 / 2,
                               np.linspace(0.125, 3.0, 30)])
    i = _suggest(lrs, smoothed)
    assert lrs[40] < i < lrs[69]
    # the steepest part of (linear)^2 is its start
    assert i == pytest.approx(lrs[45], rel=0.6)
    assert _suggest(lrs, np.full(100, np.nan)) == lrs[0]


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"net": "net"}, TypeError, r"fnn.train.lr_find: net must be an fnn.Network"),
        ({"opt_factory": 3}, TypeError, r"lr_find: opt_factory must be a function lr -> optimizer"),
        ({"opt_factory": lambda lr: 3}, TypeError, r"lr_find: opt must be an optimizer"),
        ({"loss_fn": "ce"}, TypeError, r"lr_find: loss_fn must be an fnn.losses.Loss"),
        ({"min_lr": 0.0}, ValueError, r"lr_find: min_lr must be a finite number in \(0, inf\)"),
        ({"max_lr": 1e-8}, ValueError, r"lr_find: max_lr must be a finite number in \(1e-07, inf\)"),
        ({"steps": 2}, ValueError, r"lr_find: steps must be >= 3"),
        ({"smoothing": 1.0}, ValueError, r"lr_find: smoothing must be a finite number in \[0, 1\)"),
        ({"diverge": 1.0}, ValueError, r"lr_find: diverge must be a finite number in \(1, inf\)"),
        ({"data": (np.zeros((3, 3)), np.zeros(2))}, ValueError, r"lr_find: data x has 3 examples but y has 2"),
    ],
)
def test_bad_arguments(kw, error, match):
    """Wrong kinds and out-of-range settings raise naming lr_find and the argument."""
    x, y = data()
    args = {"net": fnn.init([fnn.Dense(2)], (3,), key=0), "opt_factory": optim.sgd, "loss_fn": CE,
            "data": (x, y)}
    args.update(kw)
    with pytest.raises(error, match=match):
        lr_find(args.pop("net"), args.pop("opt_factory"), args.pop("loss_fn"), args.pop("data"),
                key=0, **args)
