"""Tests of fnn.optim.wrappers: gradient accumulation (by hand, and the property that k
micro-batches equal one big batch for every optimizer), the parameter EMA, reduce_on_plateau."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
import fnn.optim as optim
from fnn import losses, tree

OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.3),
    "sgd_momentum": lambda: optim.sgd(0.1, momentum=0.9),
    "sgd_nesterov": lambda: optim.sgd(optim.step_decay(0.1, 1, 0.5), momentum=0.9, nesterov=True),
    "adam": lambda: optim.adam(optim.cosine_decay(1e-2, total_steps=4, warmup_steps=1)),
    "adamw": lambda: optim.adamw(1e-2, weight_decay=0.1, mask=lambda p: p.endswith(".w")),
    "rmsprop": lambda: optim.rmsprop(1e-2, momentum=0.5),
    "adagrad": lambda: optim.adagrad(0.1),
    "clipped_sgd": lambda: optim.chain(optim.clip_by_global_norm(0.5), optim.sgd(0.2)),
}


def test_multi_steps_by_hand():
    """multi_steps(sgd(lr, μ), 3): two calls leave the params, the third steps with the mean
    of the three gradients through the momentum buffer; the cycle then restarts."""
    lr, mu = 0.5, 0.9
    opt = optim.multi_steps(optim.sgd(lr, momentum=mu), 3)
    p = {"w": np.array([1.0])}
    s = opt.init(p)
    seen = []
    for g in [1.0, 2.0, 6.0, 3.0, 3.0, 3.0]:
        p, s = opt.update({"w": np.array([g])}, s, p)
        seen.append(float(p["w"][0]))
    b1 = 3.0  # mean of 1, 2, 6
    b2 = mu * b1 + 3.0
    assert seen == pytest.approx([1.0, 1.0, 1.0 - lr * b1, 1.0 - lr * b1, 1.0 - lr * b1,
                                  1.0 - lr * b1 - lr * b2], rel=1e-15)
    assert int(s.inner.mini_step) == 0 and int(s.count) == 6
    assert float(s.slots["momentum"]["w"][0]) == pytest.approx(b2, rel=1e-15)


def test_multi_steps_intermediate_params_are_bit_identical():
    """Between the k-th calls the params keep their exact bits (the update is -0.0)."""
    p = {"w": np.array([-0.0, 1.0, np.pi])}
    opt = optim.multi_steps(optim.adam(0.1), 4)
    s = opt.init(p)
    q = p
    for _ in range(3):
        q, s = opt.update({"w": np.array([1.0, -1.0, 2.0])}, s, q)
    assert q["w"].tobytes() == p["w"].tobytes()


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(sorted(OPTIMIZERS)), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_k_micro_batches_equal_one_big_batch(name, k, b, seed):
    """For every optimizer, multi_steps(opt, k) fed k micro-batches of size b (mean losses)
    reaches, cycle after cycle, the params of opt fed the k·b batch at once, to float64
    round-off."""
    rng = np.random.default_rng(seed)
    net = fnn.init([fnn.Dense(3), fnn.Tanh(), fnn.Dense(2)], (2,), key=int(seed % 1000),
                   dtype=np.float64)
    big, acc = OPTIMIZERS[name](), optim.multi_steps(OPTIMIZERS[name](), k)
    a, sa = net, big.init(net)
    m, sm = net, acc.init(net)
    for _ in range(2):  # two cycles: buffers, counts and schedules must carry over
        x = rng.normal(size=(k * b, 2))
        y = rng.normal(size=(k * b, 2))
        a, sa = big.update(fnn.grad(a, x, y, losses.mse), sa, a)
        for i in range(k):
            xs, ys = x[i * b:(i + 1) * b], y[i * b:(i + 1) * b]
            m, sm = acc.update(fnn.grad(m, xs, ys, losses.mse), sm, m)
        for u, v in zip(tree.leaves(a), tree.leaves(m), strict=True):
            np.testing.assert_allclose(v, u, rtol=1e-9, atol=1e-12)
    assert optim.learning_rate(acc, sm) == optim.learning_rate(big, sa)


@pytest.mark.parametrize(
    ("every_k", "error", "match"),
    [
        (0, ValueError, r"fnn.optim.multi_steps: every_k must be an int >= 1, got 0"),
        (-2, ValueError, r"multi_steps: every_k must be an int >= 1"),
        (2.0, TypeError, r"multi_steps: every_k must be an int, got float"),
        (True, TypeError, r"multi_steps: every_k must be an int, got bool"),
    ],
)
def test_multi_steps_refuses_bad_k(every_k, error, match):
    """k < 1 or a k that is not an int is refused, naming multi_steps."""
    with pytest.raises(error, match=match):
        optim.multi_steps(optim.sgd(0.1), every_k)


def test_ema_by_hand():
    """chain(sgd(1), ema(δ)): ē ← δ·ē + (1−δ)·θ' from ē = θ₀; the params are plain SGD."""
    opt = optim.chain(optim.sgd(1.0), optim.ema(0.5))
    p = {"w": np.array([0.0])}
    s = opt.init(p)
    expected_e, theta = 0.0, 0.0
    for g in [-2.0, -2.0, 4.0]:
        p, s = opt.update({"w": np.array([g])}, s, p)
        theta -= g
        expected_e = 0.5 * expected_e + 0.5 * theta
        assert float(p["w"][0]) == theta
        assert float(optim.ema_params(s)["w"][0]) == pytest.approx(expected_e, rel=1e-15)


def test_ema_is_a_whole_network_with_current_state_leaves():
    """ema_params gives a Network whose state leaves (running statistics) are the params' own
    and whose trainable leaves lag behind the trained ones."""
    net = fnn.init([fnn.Dense(3), fnn.layers.BatchNorm(), fnn.Dense(2)], (2,), key=0, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(8, 2))
    y = np.random.default_rng(1).normal(size=(8, 2))
    opt = optim.chain(optim.adam(1e-2), optim.ema(0.9))
    s = opt.init(net)
    for _ in range(3):
        _, g, net_state = fnn.value_and_grad(net, x, y, losses.mse, with_state=True)
        net, s = opt.update(g, s, net_state)
    avg = optim.ema_params(s)
    assert isinstance(avg, fnn.Network)
    assert np.array_equal(avg.layers[1].running_mean, net.layers[1].running_mean)
    assert not np.array_equal(avg.layers[0].w, net.layers[0].w)
    assert fnn.forward(avg, x).shape == (8, 2)


def test_ema_errors():
    """ema needs params; ema_params needs an EmaState; decay must be in [0, 1)."""
    with pytest.raises(ValueError, match=r"ema.update: ema needs the params"):
        optim.ema(0.5).update([np.ones(1)], optim.ema(0.5).init([np.ones(1)]))
    with pytest.raises(ValueError, match=r"ema_params: the state \(OptimizerState\) holds no EmaState"):
        optim.ema_params(optim.sgd(0.1).init([np.ones(1)]))
    with pytest.raises(ValueError, match=r"fnn.optim.ema: decay must be a finite number in \[0, 1\)"):
        optim.ema(1.0)


def plateau_scales(values, **kw):
    opt = optim.chain(optim.sgd(1.0), optim.reduce_on_plateau(**kw))
    s = opt.init([np.zeros(1)])
    out = []
    for v in values:
        s = optim.observe(opt, s, {"val_loss": v, "val_accuracy": -v})
        out.append(optim.learning_rate(opt, s))
    return out


def test_reduce_on_plateau_by_hand():
    """patience 2, factor 0.5: two epochs without beating the best halve the scale; a new
    best resets the count; the scale is the learning-rate factor."""
    values = [1.0, 0.9, 0.95, 0.92, 0.8, 0.85, 0.85, 0.85, 0.85]
    want = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125]
    assert plateau_scales(values, patience=2, factor=0.5) == want


def test_reduce_on_plateau_cooldown_min_delta_min_scale_and_mode():
    """cooldown skips counting after a cut; min_delta requires real improvement; min_scale
    floors the scale; mode='max' watches a metric that should grow."""
    values = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert plateau_scales(values, patience=1, factor=0.1, cooldown=2) == pytest.approx(
        [1.0, 0.1, 0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1], rel=1e-15)
    assert plateau_scales([1.0, 0.999, 0.998], patience=1, factor=0.5, min_delta=0.01) == [1.0, 0.5, 0.25]
    assert plateau_scales([1.0] * 4, patience=0, factor=0.5, min_scale=0.2) == [1.0, 0.5, 0.25, 0.2]
    assert plateau_scales([0.8, 0.9, 1.0], patience=1, factor=0.5, monitor="val_accuracy",
                          mode="max") == [1.0, 0.5, 0.25]


def test_reduce_on_plateau_scales_the_updates():
    """After a cut, the SGD step is lr·scale·g."""
    opt = optim.chain(optim.sgd(1.0), optim.reduce_on_plateau(patience=0, factor=0.25))
    p = {"w": np.zeros(1)}
    s = optim.observe(opt, optim.observe(opt, opt.init(p), {"val_loss": 1.0}), {"val_loss": 1.0})
    new, _ = opt.update({"w": np.array([2.0])}, s, p)
    assert float(new["w"][0]) == -0.5


def test_reduce_on_plateau_nan_is_no_improvement_and_missing_monitor_is_an_error():
    """A NaN metric never counts as an improvement; a monitor absent from the logs is a
    ValueError naming reduce_on_plateau and the names it got."""
    assert plateau_scales([1.0, math.nan], patience=0, factor=0.5) == [1.0, 0.5]
    opt = optim.chain(optim.sgd(1.0), optim.reduce_on_plateau(1, 0.5))
    with pytest.raises(ValueError, match=r"reduce_on_plateau: monitors 'val_loss', which the logs do not hold; they hold \['loss'\]"):
        optim.observe(opt, opt.init([np.zeros(1)]), {"loss": 1.0})


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"patience": -1, "factor": 0.5}, ValueError, r"reduce_on_plateau: patience must be an int >= 0"),
        ({"patience": 1, "factor": 1.0}, ValueError, r"reduce_on_plateau: factor must be a finite number in \(0, 1\)"),
        ({"patience": 1, "factor": 0.5, "mode": "auto"}, ValueError, r"reduce_on_plateau: mode must be 'min' or 'max'"),
        ({"patience": 1, "factor": 0.5, "monitor": ""}, TypeError, r"reduce_on_plateau: monitor must be a metric name"),
        ({"patience": 1, "factor": 0.5, "cooldown": 1.5}, TypeError, r"reduce_on_plateau: cooldown must be an int"),
    ],
)
def test_reduce_on_plateau_bad_arguments(kw, error, match):
    """Impossible settings are refused at construction."""
    with pytest.raises(error, match=match):
        optim.reduce_on_plateau(**kw)


def test_observe_without_a_plateau_returns_the_same_state():
    """Optimizers that observe nothing return their state unchanged (the same value)."""
    opt = optim.adam()
    s = opt.init([np.zeros(1)])
    assert tree.allclose(optim.observe(opt, s, {"val_loss": 1.0}), s, rtol=0.0)
    assert opt.tx.monitors() == ()
