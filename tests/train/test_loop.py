"""Tests of fnn.train.loop: fit is pure, resumable bit for bit, stops and restores correctly."""

import math

import attrs
import numpy as np
import pytest

import fnn
from fnn import metrics, optim, tree
from fnn.layers._base import Layer, state_field
from fnn.train import STOP, EarlyStopping, fit

CE = fnn.losses.sparse_softmax_cross_entropy


def optimizer(lr=0.1, momentum=0.9):
    return optim.sgd(lr, momentum=momentum)


def toy_classification(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * x[:, 1]) > 0).astype(np.int64)
    return x, y


@attrs.frozen(eq=False)
class NoisyScale(Layer):
    """Test layer: multiplies by a random ±10% factor per element in training (needs keys)."""

    stochastic = True

    def vjp(self, x, *, key=None, training=False, need_dx=True):
        if not training:
            return x.copy(), lambda dy: (self, dy)
        m = fnn.random.uniform(key, x.shape, 0.9, 1.1, x.dtype)
        return x * m, lambda dy: (self, dy * m)


@attrs.frozen(eq=False)
class RunningMean(Layer):
    """Test layer: identity that keeps a running mean of its input as state."""

    stateful = True
    mean: np.ndarray | None = state_field()

    def init(self, key, in_shape, dtype):
        return attrs.evolve(self, mean=np.zeros(in_shape, dtype)), in_shape

    def vjp(self, x, *, key=None, training=False, need_dx=True):
        return x.copy(), lambda dy: (self.zero_grad_like(), dy)

    def vjp_with_state(self, x, *, key=None, training=False, need_dx=True):
        y, pb = self.vjp(x)
        new_mean = 0.5 * self.mean + 0.5 * x.mean(axis=0)
        return y, pb, attrs.evolve(self, mean=new_mean)


def small_net(dtype=np.float32):
    layers = [fnn.Dense(8), NoisyScale(), fnn.Tanh(), RunningMean(), fnn.Dense(2)]
    return fnn.init(layers, (3,), key=0, dtype=dtype)


def run(net, epochs, opt_state=None, start_epoch=0, **kw):
    x, y = toy_classification()
    kw.setdefault("batch_size", 16)
    return fit(net, optimizer(), CE, (x, y), epochs=epochs, key=7, opt_state=opt_state,
               start_epoch=start_epoch, progress=False, **kw)


def assert_trees_identical(a, b):
    tree.check_same_structure(a, b)
    for u, v in zip(tree.leaves(a), tree.leaves(b), strict=True):
        np.testing.assert_array_equal(u, v)


def test_fit_is_pure():
    """fit changes neither the network, the data nor the optimizer state it was given."""
    x, y = toy_classification()
    net = small_net()
    opt = optimizer()
    state = opt.init(net)
    before = [a.copy() for a in tree.leaves(net)]
    state_before = [a.copy() for a in tree.leaves(state)]
    x0, y0 = x.copy(), y.copy()
    new, _, _ = fit(net, opt, CE, (x, y), epochs=2, key=0, opt_state=state,
                            batch_size=16, progress=False)
    for a, b in zip(before, tree.leaves(net), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(state_before, tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    assert all(not a.flags.writeable for a in tree.leaves(new))
    assert not np.array_equal(new.layers[0].w, net.layers[0].w)


def test_stateful_layers_keep_their_new_statistics():
    """A stateful layer's running statistics are carried through training, not reset."""
    new, _, _ = run(small_net(), 1)
    assert np.abs(new.layers[3].mean).sum() > 0


def test_resume_is_bit_identical():
    """Training 2 + 3 epochs (resuming with the returned values) equals 5 epochs at once."""
    net = small_net()
    full_net, full_state, full_hist = run(net, 5)
    net2, state2, h2 = run(net, 2)
    net5, state5, h3 = run(net2, 3, opt_state=state2, start_epoch=2)
    assert_trees_identical(full_net, net5)
    assert_trees_identical(full_state, state5)
    joined = h2 + h3
    assert joined.epochs == full_hist.epochs == (0, 1, 2, 3, 4)
    assert joined.loss == full_hist.loss


def test_same_key_same_result_different_key_different_result():
    """The run's key decides shuffling and dropout: same key, same bits."""
    x, y = toy_classification()
    kw = dict(epochs=1, batch_size=16, progress=False)
    a = fit(small_net(), optimizer(), CE, (x, y), key=1, **kw)[0]
    b = fit(small_net(), optimizer(), CE, (x, y), key=1, **kw)[0]
    c = fit(small_net(), optimizer(), CE, (x, y), key=2, **kw)[0]
    assert_trees_identical(a, b)
    assert not np.array_equal(a.layers[0].w, c.layers[0].w)


def test_history_content():
    """The history logs train loss and metrics, validation loss and metrics, per epoch."""
    x, y = toy_classification()
    xv, yv = toy_classification(40, seed=1)
    net, _, hist = fit(small_net(), optimizer(), CE, (x, y), epochs=3, key=0, batch_size=16,
                       validation=(xv, yv), metrics=[metrics.accuracy], progress=False)
    assert hist.epochs == (0, 1, 2)
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(hist.logs)
    assert all(len(v) == 3 for v in hist.logs.values())
    pred = fnn.forward(net, xv)
    assert hist["val_accuracy"][-1] == metrics.accuracy(pred, yv)
    assert hist["val_loss"][-1] == CE(pred, yv)
    assert hist.loss[-1] < hist.loss[0]
    assert hist["val_accuracy"][-1] > 0.75
    assert hist.best_epoch is None and hist.stop_reason is None


def test_learning_rate_per_epoch():
    """History.lr is the rate of each epoch's first update, as fnn.optim.learning_rate says."""
    x, y = toy_classification()  # 96 examples, batch 32: 3 updates per epoch
    schedule = optim.step_decay(0.1, step_size=3, factor=0.5)
    _, state, hist = fit(small_net(), optim.sgd(schedule), CE, (x, y), epochs=3, key=0,
                         batch_size=32, progress=False)
    assert hist.lr == pytest.approx((0.1, 0.05, 0.025), rel=1e-12)
    assert optim.learning_rate(optim.sgd(schedule), state) == pytest.approx(0.0125)


def test_zero_epochs_returns_the_inputs():
    """epochs=0 returns the same network, a fresh state and an empty history."""
    net = small_net()
    new, _, hist = run(net, 0)
    assert new is net and hist.epochs == ()


@pytest.mark.parametrize("mode", ["min", "max"])
def test_restore_best_returns_exactly_the_best_epoch(mode):
    """restore_best returns the network and state of the best epoch, identical to stopping there."""
    xv, yv = toy_classification(40, seed=1)
    rule = EarlyStopping("val_loss", mode=mode, patience=2)
    net, state, hist = run(small_net(), 12, validation=(xv, yv), early_stopping=rule)
    values = np.array(hist["val_loss"])
    best = int(np.argmin(values) if mode == "min" else np.argmax(values))
    assert hist.best_epoch == hist.restored_epoch == best
    ref_net, ref_state, _ = run(small_net(), best + 1, validation=(xv, yv))
    assert_trees_identical(net, ref_net)
    assert_trees_identical(state, ref_state)
    if mode == "max":  # the val loss falls, so epoch 0 is "best" and patience ends the run
        assert hist.epochs == (0, 1, 2) and hist.stop_reason == "early_stopping"


def test_early_stopping_on_accuracy_uses_max_mode():
    """Monitoring an accuracy picks mode max automatically; without restore the last net is kept."""
    xv, yv = toy_classification(40, seed=1)
    rule = EarlyStopping("val_accuracy", patience=1, restore_best=False)
    net, _, hist = run(small_net(), 6, validation=(xv, yv), metrics=[metrics.accuracy],
                       early_stopping=rule)
    acc = hist["val_accuracy"]
    assert acc[hist.best_epoch] == max(acc)
    assert hist.restored_epoch is None
    np.testing.assert_array_equal(fnn.forward(net, xv).argmax(1) == yv,
                                  fnn.forward(net, xv).argmax(1) == yv)


def test_callback_stops_and_sees_each_epoch():
    """A callback returning STOP ends training after that epoch; it saw every epoch in order."""
    seen = []

    def stop_at_two(record):
        seen.append((record.epoch, record.logs["loss"], len(record.history.epochs)))
        return STOP if record.epoch == 2 else None

    _, _, hist = run(small_net(), 10, callbacks=[stop_at_two])
    assert [s[0] for s in seen] == [0, 1, 2] and [s[2] for s in seen] == [1, 2, 3]
    assert hist.epochs == (0, 1, 2) and hist.stop_reason == "callback"
    assert [s[1] for s in seen] == list(hist.loss)


def test_callback_with_wrong_return_value():
    """A callback returning anything but None or STOP is a TypeError naming it."""

    def says_yes(record):
        return True

    with pytest.raises(TypeError, match="callback 'says_yes' returned True"):
        run(small_net(), 1, callbacks=[says_yes])


def test_progress_lines(capsys):
    """progress=True off a terminal prints one plain line per epoch."""
    x, y = toy_classification()
    fit(small_net(), optimizer(), CE, (x, y), epochs=2, key=0, batch_size=32)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2  loss ")


def test_nonfinite_loss_names_epoch_batch_and_layer():
    """A NaN/inf raises FloatingPointError naming the epoch, the batch and the layer."""
    net = small_net()
    huge = np.full_like(net.layers[4].w, 3e38)
    bad = attrs.evolve(net, layers=(*net.layers[:4], attrs.evolve(net.layers[4], w=huge)))
    with np.errstate(all="ignore"):  # NumPy's default: overflow gives inf quietly
        with pytest.raises(FloatingPointError,
                           match=r"epoch 0, batch 0: .*layers\[4\] \(Dense\(units=2\)\)"):
            run(bad, 1)


def test_nonfinite_batches_can_be_skipped():
    """on_nonfinite='skip' skips a batch whose loss is not finite and counts it."""
    x, y = toy_classification()
    x = x.copy()
    x[5] = 3e38  # overflows to inf in the first layer wherever it lands
    net = small_net()
    w = np.array(net.layers[0].w)
    w[:, 0] = 1.0  # unit 0 of x[5] is 3 · 3e38 = inf; other rows stay finite
    net = attrs.evolve(net, layers=(attrs.evolve(net.layers[0], w=w), *net.layers[1:]))
    with np.errstate(all="ignore"):
        net, _, hist = fit(net, optimizer(), CE, (x, y), epochs=2, key=0,
                           batch_size=16, progress=False, on_nonfinite="skip")
    assert hist.skipped == (1, 1)
    assert all(np.isfinite(a).all() for a in tree.leaves(net))


def test_check_finite_every_step():
    """check_finite=True also names the layer, through value_and_grad's own check."""
    net = small_net()
    huge = np.full_like(net.layers[4].w, 3e38)
    bad = attrs.evolve(net, layers=(*net.layers[:4], attrs.evolve(net.layers[4], w=huge)))
    with np.errstate(all="ignore"):
        with pytest.raises(FloatingPointError, match=r"epoch 0, batch 0: .*layers\[4\]"):
            run(bad, 1, check_finite=True)


def test_bad_arguments():
    """Bad arguments raise before any training, naming fnn.fit and the fix."""
    x, y = toy_classification()
    net, opt = small_net(), optimizer()
    with pytest.raises(ValueError, match=r"fnn\.fit: epochs must be >= 0, got -1"):
        fit(net, opt, CE, (x, y), epochs=-1, key=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        fit(net, opt, CE, (x, y), epochs=1, key=0, batch_size=0)
    with pytest.raises(ValueError, match="x has 96 examples but y has 95"):
        fit(net, opt, CE, (x, y[:-1]), epochs=1, key=0)
    with pytest.raises(ValueError, match=r"monitors 'val_accuracy', which this run does not log"):
        fit(net, opt, CE, (x, y), epochs=1, key=0, early_stopping=EarlyStopping("val_accuracy"))
    with pytest.raises(TypeError, match="opt must be an optimizer"):
        fit(net, 0.1, CE, (x, y), epochs=1, key=0)
    with pytest.raises(TypeError, match=r"loss_fn must be an fnn\.losses\.Loss"):
        fit(net, opt, metrics.mse, (x, y), epochs=1, key=0)
    with pytest.raises(TypeError, match="data must be a pair"):
        fit(net, opt, CE, x, epochs=1, key=0)
    with pytest.raises(ValueError, match="on_nonfinite must be 'raise' or 'skip'"):
        fit(net, opt, CE, (x, y), epochs=1, key=0, on_nonfinite="ignore")
    with pytest.raises(ValueError, match="lr"):
        fit(net, optim.sgd(-0.1), CE, (x, y), epochs=1, key=0)
    with pytest.raises(TypeError, match="early_stopping must be"):
        fit(net, opt, CE, (x, y), epochs=1, key=0, early_stopping="val_loss")


def test_fit_accepts_a_bare_gradient_transformation():
    """fit with chain(scale_by_adam, scale_by_learning_rate) (a transformation, no optimizer
    around it) trains exactly as fit with adam, and logs its learning rate."""
    x, y = toy_classification()
    tx = optim.chain(optim.scale_by_adam(), optim.scale_by_learning_rate(1e-2))
    kw = dict(epochs=2, key=3, batch_size=16, progress=False)
    a, sa, ha = fit(small_net(), tx, CE, (x, y), **kw)
    b, sb, hb = fit(small_net(), optim.adam(1e-2), CE, (x, y), **kw)
    assert_trees_identical(a, b)
    assert_trees_identical(sa.inner, sb.inner)
    assert ha.lr == hb.lr == (1e-2, 1e-2)


def plateau_opt():
    return optim.chain(optim.sgd(0.5), optim.reduce_on_plateau(patience=0, factor=0.5,
                                                                monitor="loss", min_delta=0.05))


def test_fit_feeds_reduce_on_plateau_the_epoch_metrics():
    """After each epoch fit gives the logs to reduce_on_plateau: the next epoch's lr is halved
    exactly after the epochs whose monitored loss did not improve by min_delta (patience 0)."""
    x, y = toy_classification()
    _, _, hist = fit(small_net(), plateau_opt(), CE, (x, y), epochs=8, key=0, batch_size=16,
                     progress=False)
    lr, best = 0.5, math.inf
    for e in range(8):
        assert hist.lr[e] == pytest.approx(lr, rel=1e-15)
        if hist.loss[e] < best - 0.05:
            best = hist.loss[e]
        else:
            lr *= 0.5
    assert min(hist.lr) < 0.5  # the run did plateau at least once


def test_resume_with_reduce_on_plateau_is_bit_identical():
    """The plateau's best value, wait count and scale live in the optimizer state, so 3 + 4
    epochs resumed equal 7 at once."""
    x, y = toy_classification()
    kw = dict(key=0, batch_size=16, progress=False)
    full_net, full_state, full_hist = fit(small_net(), plateau_opt(), CE, (x, y), epochs=7, **kw)
    net, state, _ = fit(small_net(), plateau_opt(), CE, (x, y), epochs=3, **kw)
    net, state, hist = fit(net, plateau_opt(), CE, (x, y), epochs=4, opt_state=state,
                           start_epoch=3, **kw)
    assert_trees_identical(net, full_net)
    assert_trees_identical(state, full_state)
    assert hist.lr == full_hist.lr[3:]


def test_plateau_monitor_must_be_logged_before_training():
    """A reduce_on_plateau watching val_loss without validation data is refused before any
    work, naming the metric and what the run logs."""
    x, y = toy_classification()
    opt = optim.chain(optim.sgd(0.1), optim.reduce_on_plateau(2, 0.5))
    with pytest.raises(ValueError, match=r"fnn.fit: the optimizer's reduce_on_plateau monitors 'val_loss', which this run does not log; it logs \['loss'\]"):
        fit(small_net(), opt, CE, (x, y), epochs=1, key=0, progress=False)


def test_fit_resumes_from_a_0_1_0_opt_state():
    """A 0.1.0 OptState (count and buffers by name) passed as opt_state resumes exactly like
    the state fit returned."""
    net = small_net()
    net2, state2, _ = run(net, 2)
    old = optim.OptState(state2.count, dict(state2.slots))
    a = run(net2, 2, opt_state=state2, start_epoch=2)
    b = run(net2, 2, opt_state=old, start_epoch=2)
    assert_trees_identical(a[0], b[0])
    assert_trees_identical(a[1], b[1])


def test_nan_in_the_data_is_found_in_the_first_epoch():
    """fit scans every batch of x for NaN/inf in its first epoch (each example is in one
    batch), then skips the scan (x cannot change); a NaN is refused with ValueError and the
    caller's network and data are unchanged."""
    x, y = toy_classification()
    x = x.copy()
    x[37, 1] = np.nan
    net = small_net()
    before = [a.copy() for a in tree.leaves(net)]
    with pytest.raises(ValueError, match=r"x contains NaN or inf"):
        fit(net, optimizer(), CE, (x, y), epochs=3, key=0, batch_size=16, progress=False)
    assert np.isnan(x[37, 1]) and all(np.array_equal(a, b) for a, b in zip(before, tree.leaves(net), strict=True))


def test_later_epochs_skip_the_scan_of_x(monkeypatch):
    """Only the first epoch of a fit call asks value_and_grad to scan x."""
    import fnn.train.loop as loop

    seen = []
    real = loop.value_and_grad

    def spy(*args, **kw):
        seen.append(kw["check_values"])
        return real(*args, **kw)

    monkeypatch.setattr(loop, "value_and_grad", spy)
    run(small_net(), 3, batch_size=48)  # 96 examples: 2 steps per epoch
    assert seen == [True, True, False, False, False, False]
