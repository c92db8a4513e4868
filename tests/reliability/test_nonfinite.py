"""fit's non-finite guard, tried with honest failures.

Two ways training really goes non-finite:

- a learning rate so large that the first update throws the weights to ~1e30,
  after which the next batch's loss overflows float32;
- a poisoned example (a feature of 1.5e19 in float32, batches of one): its
  loss (x·w)² ≈ 1.8e38 is still finite, but the weight gradient 2·x·(x·w) ≈
  4e38 overflows to inf.

``fit`` must stop with a ``FloatingPointError`` naming the epoch, the batch
and the layer (or the loss), whether NumPy's floating-point errors are quiet
(``np.errstate(all="ignore")``) or raise (as in this test suite); with
``on_nonfinite="skip"`` it must skip exactly the bad batches, count them in
``History.skipped`` and return finite parameters.
"""

import contextlib

import numpy as np
import pytest

import fnn
from fnn import optim

POISON = np.float32(1.5e19)

# A float32 Dense(1) whose weight w satisfies 0.76 < |w| < 1.22: for x = 1.5e19 the
# prediction's square (the loss) is finite while the gradient 2·x²·w overflows.
POISON_NET_KEY = 5



def numpy_errors(mode):
    """``"quiet"``: NumPy's floating-point errors silenced; ``"raise"``: the test suite's
    ``errstate(all="raise")`` stays in force."""
    return np.errstate(all="ignore") if mode == "quiet" else contextlib.nullcontext()


MODES = pytest.mark.parametrize("errors", ["quiet", "raise"])


def poisoned_data(n=8, bad=(5,)):
    """Regression data y = 0.5·x with the examples at ``bad`` poisoned."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    x[list(bad)] = POISON
    return x, (0.5 * x).clip(-1, 1)


def poison_net():
    net = fnn.init([fnn.Dense(1)], (1,), key=POISON_NET_KEY)
    assert 0.76 < abs(float(net.layers[0].w[0, 0])) < 1.22
    return net


def test_poisoned_example_is_honest():
    """The construction does what it claims: finite loss, infinite weight gradient."""
    x, y = np.full((1, 1), POISON), np.zeros((1, 1), np.float32)
    with numpy_errors("quiet"):
        loss, grads = fnn.value_and_grad(poison_net(), x, y, fnn.losses.mse)
    assert np.isfinite(loss)
    assert not np.isfinite(grads.layers[0].w).all()


@MODES
def test_huge_learning_rate_stops_naming_epoch_and_batch(errors):
    """A learning rate of 1e30 makes batch 1 of epoch 0 non-finite; fit says where."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    net = fnn.init([fnn.Dense(8), fnn.Tanh(), fnn.Dense(1)], (3,), key=0)
    with numpy_errors(errors), pytest.raises(FloatingPointError) as info:
        fnn.fit(net, optim.sgd(1e30), fnn.losses.mse, (x, y), epochs=2, key=0, batch_size=4,
                progress=False)
    msg = str(info.value)
    assert msg.startswith("fnn.fit: ")
    assert "epoch 0, batch 1" in msg
    assert "the loss is inf" in msg or "layers[" in msg


@MODES
def test_poisoned_gradient_names_epoch_batch_and_layer(errors):
    """With check_finite, the batch holding the poisoned example stops fit at once, and the
    message names the epoch, that batch, the layer and the gradient (w) that overflowed."""
    x, y = poisoned_data(bad=(5,))
    shuffle_key = fnn.random.fold_in(fnn.random.fold_in(fnn.random.key(3), 0), 0)
    batch = next(i for i, (xb, _) in enumerate(fnn.batches(x, y, 1, key=shuffle_key))
                 if (xb == POISON).any())
    with numpy_errors(errors), pytest.raises(FloatingPointError) as info:
        fnn.fit(poison_net(), optim.sgd(1e-3), fnn.losses.mse, (x, y), epochs=1, key=3,
                batch_size=1, progress=False, check_finite=True)
    msg = str(info.value)
    assert msg.startswith("fnn.fit: ") and f"epoch 0, batch {batch}:" in msg
    assert "layers[0] (Dense(units=1))" in msg
    assert "backward (w)" in msg


def test_poisoned_gradient_without_check_finite_shows_in_the_next_loss():
    """Without check_finite (the default), the overflowing gradient is caught one step later,
    as documented: the next batch's loss is non-finite and the message names a layer."""
    x, y = poisoned_data(bad=(5,))
    with numpy_errors("quiet"), pytest.raises(FloatingPointError, match=r"fnn\.fit: non-finite loss at epoch 0, batch \d+"):
        fnn.fit(poison_net(), optim.sgd(1e-3), fnn.losses.mse, (x, y), epochs=1, key=3,
                batch_size=1, progress=False)


@MODES
def test_skip_skips_and_counts_poisoned_batches(errors):
    """on_nonfinite='skip' skips every batch holding a poisoned example (a feature of 1e30:
    its loss overflows), counts them per epoch in History.skipped, and returns finite
    parameters trained on the other batches."""
    x, y = poisoned_data(n=12, bad=(2, 9))
    x[[2, 9]] = np.float32(1e30)
    epochs, size = 3, 3
    expected = []
    for e in range(epochs):
        k_shuffle = fnn.random.fold_in(fnn.random.fold_in(fnn.random.key(7), e), 0)
        expected.append(sum(bool((xb == x[2]).any()) for xb, _ in fnn.batches(x, y, size, key=k_shuffle)))
    net = poison_net()
    with numpy_errors(errors):
        out, _, hist = fnn.fit(net, optim.adam(1e-2), fnn.losses.mse, (x, y), epochs=epochs,
                               key=7, batch_size=size, progress=False, on_nonfinite="skip",
                               train_metrics=False)
    assert hist.skipped == tuple(expected)
    assert all(s >= 1 for s in hist.skipped)
    assert all(np.isfinite(leaf).all() for leaf in fnn.tree.leaves(out))
    assert all(np.isfinite(v) for v in hist.loss)
    assert not fnn.tree.allclose(out, net)  # the clean batches did train


def test_skip_with_every_batch_bad_leaves_the_network_unchanged():
    """When every batch is bad, 'skip' makes no update at all: the parameters come back
    bit for bit and the epoch's loss is NaN."""
    x, y = poisoned_data(n=4, bad=(0, 1, 2, 3))
    net = poison_net()
    with numpy_errors("quiet"):
        out, _, hist = fnn.fit(net, optim.sgd(0.1), fnn.losses.mse, (x, y), epochs=1, key=0,
                               batch_size=1, progress=False, on_nonfinite="skip",
                               train_metrics=False)
    assert hist.skipped == (4,)
    assert np.isnan(hist.loss[0])
    for a, b in zip(fnn.tree.leaves(net), fnn.tree.leaves(out), strict=True):
        assert a.tobytes() == b.tobytes()


def _overflow_that_recovers(pred, y):
    """An mse whose computation overflows on the way (e^800 = inf, then 1/inf = 0) but
    whose value and gradient are finite: under np.errstate(over='raise') NumPy raises."""
    vanishing = 1.0 / np.exp(np.float64(800.0))
    diff = pred - y
    return float((diff * diff).mean() + vanishing), diff * (2 / diff.size)


def test_numpy_error_on_finite_results_is_not_reported_as_a_nan_loss():
    """The case of issue 16: when NumPy's errstate raises although every result is finite,
    fit says NumPy raised, which error, where, and that the loss and gradients are finite,
    instead of claiming 'the loss is nan'."""
    x, y = poisoned_data(bad=())
    loss = fnn.losses.Loss("recovering_mse", _overflow_that_recovers)
    with np.errstate(all="raise"), pytest.raises(FloatingPointError) as info:
        fnn.fit(poison_net(), optim.sgd(1e-2), loss, (x, y), epochs=1, key=0, batch_size=4,
                progress=False)
    msg = str(info.value)
    assert msg.startswith("fnn.fit: NumPy raised FloatingPointError (overflow encountered in exp)")
    assert "at epoch 0, batch 0" in msg and "np.errstate" in msg
    assert "every activation and gradient are finite" in msg
    assert "the loss is nan" not in msg
    with np.errstate(over="ignore"):  # relaxing the category, as the message says, trains
        fnn.fit(poison_net(), optim.sgd(1e-2), loss, (x, y), epochs=1, key=0, batch_size=4,
                progress=False)


def test_numpy_error_on_a_real_overflow_names_numpy_and_the_layer():
    """When NumPy's errstate raises on an overflow that does make a value non-finite, fit says
    NumPy raised and which layer (or the loss) first holds the non-finite value."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    net = fnn.init([fnn.Dense(8), fnn.Tanh(), fnn.Dense(1)], (3,), key=0)
    with np.errstate(all="raise"), pytest.raises(FloatingPointError) as info:
        fnn.fit(net, optim.sgd(1e30), fnn.losses.mse, (x, y), epochs=2, key=0, batch_size=4,
                progress=False)
    msg = str(info.value)
    assert msg.startswith("fnn.fit: NumPy raised FloatingPointError (overflow encountered in ")
    assert "epoch 0, batch 1" in msg and "the loss is nan" not in msg
    assert "the loss is inf" in msg or "layers[" in msg
