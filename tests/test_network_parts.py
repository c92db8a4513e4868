"""A training step in parts of the batch on fnn's threads (fnn.value_and_grad in fnn.threads).

A network whose layers each compute every example on its own (``Layer.per_example``) and
that holds a convolution runs its forward and backward passes per part of the batch, one
part per thread, and takes the loss once on the whole prediction. These tests check that
this is the same step (to float rounding), that the path is taken only where it may be,
and that errors are the ones of a step in one piece.
"""

from unittest import mock

import attrs
import numpy as np
import pytest

import fnn
from fnn import network
from fnn.layers import (
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
    Tanh,
)
from fnn.layers._base import runs_per_example

CE = fnn.losses.sparse_softmax_cross_entropy


def cnn(dtype=np.float64, extra=()):
    layers = [Conv2D(4, 3), ReLU(), MaxPool2D(2), *extra, Flatten(), Dense(3)]
    return fnn.init(layers, (8, 8, 2), key=1, dtype=dtype)


def residual_cnn(dtype=np.float64):
    block = fnn.Residual([Conv2D(2, 3, padding="same"), Tanh()])
    return fnn.init([block, Conv2D(3, 3), Flatten(), Dense(3)], (6, 6, 2), key=2, dtype=dtype)


def data(shape, n=10, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype(dtype), rng.integers(0, 3, n)


@pytest.fixture
def parts_spy():
    """A spy on the parts path; ``spy.results`` holds what each call returned."""
    real = network._value_and_grad_in_parts
    results = []

    def record(*args, **kwargs):
        results.append(real(*args, **kwargs))
        return results[-1]

    with mock.patch.object(network, "_value_and_grad_in_parts", side_effect=record) as spy:
        spy.results = results
        yield spy


def assert_same_step(one, parts, rtol):
    (v1, g1), (v2, g2) = one, parts
    assert v2 == pytest.approx(v1, rel=rtol)
    for a, b in zip(fnn.tree.leaves(g1), fnn.tree.leaves(g2), strict=True):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max())


@pytest.mark.parametrize("make", [cnn, residual_cnn])
@pytest.mark.parametrize("n", [2, 3, 10])
def test_the_step_in_parts_is_the_step_in_one_piece(make, n, parts_spy):
    """With two threads the loss and every gradient equal one thread's to float64 rounding,
    for odd and tiny batches and through a Residual container, and the parts path ran."""
    net = make()
    x, y = data(net.input_shape, n)
    with fnn.threads(1):
        one = fnn.value_and_grad(net, x, y, CE)
    assert not parts_spy.called
    with fnn.threads(2):
        parts = fnn.value_and_grad(net, x, y, CE)
    assert parts_spy.call_count == 1 and parts_spy.results[0] is not None
    assert_same_step(one, parts, 1e-12)


def test_float32_and_with_state(parts_spy):
    """float32 steps agree to float32 rounding; with_state returns the network unchanged
    (a per-example network has no state to update)."""
    net = cnn(np.float32)
    x, y = data(net.input_shape, 16, np.float32)
    one = fnn.value_and_grad(net, x, y, CE)
    with fnn.threads(2):
        value, grads, new = fnn.value_and_grad(net, x, y, CE, with_state=True)
    assert parts_spy.called and new is net
    assert_same_step(one, (value, grads), 2e-6)


def test_a_loss_that_is_not_a_mean_gives_the_same_step(parts_spy):
    """The loss is taken once on the whole prediction, so any loss works in parts, a sum
    over the batch as well as a mean."""

    def total_squared(pred, y):
        diff = pred - y
        return float((diff * diff).sum()), 2 * diff

    loss = fnn.losses.Loss("total_squared", total_squared)
    net = cnn()
    x, _ = data(net.input_shape, 7)
    y = np.random.default_rng(3).normal(size=(7, 3))
    one = fnn.value_and_grad(net, x, y, loss)
    with fnn.threads(2):
        parts = fnn.value_and_grad(net, x, y, loss)
    assert parts_spy.called
    assert_same_step(one, parts, 1e-12)


def test_batch_norm_in_training_keeps_the_step_in_one_piece(parts_spy):
    """A network with a layer that is not per-example (batch norm in training mixes the
    examples of a batch) is computed layer by layer."""
    net = cnn(extra=(BatchNorm(),))
    x, y = data(net.input_shape, 8)
    with fnn.threads(2):
        fnn.value_and_grad(net, x, y, CE, key=0)
    assert not parts_spy.called


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [3, 9, 16])
def test_dropout_in_parts_draws_the_whole_batchs_mask(dtype, n, parts_spy):
    """With dropout (odd and even rows of 7x3x... values, float32 draws two per step of
    the random stream) the step in parts takes each part's rows of the whole batch's mask:
    the prediction, so the loss, is the one-thread step's, and the gradients agree to
    rounding. Drawing a part's mask from the start of the stream would change both."""
    net = fnn.init(
        [Conv2D(3, 3), ReLU(), Dropout(0.4), Flatten(), Dense(3)], (7, 5, 1), key=4, dtype=dtype
    )
    x, y = data(net.input_shape, n, dtype)
    with fnn.threads(1):
        one = fnn.value_and_grad(net, x, y, CE, key=11)
    with fnn.threads(2):
        parts = fnn.value_and_grad(net, x, y, CE, key=11)
    assert parts_spy.call_count == 1 and parts_spy.results[0] is not None
    rtol = 2e-6 if dtype == np.float32 else 1e-12
    assert_same_step(one, parts, rtol)
    with fnn.threads(2):  # another key: another mask, so the comparison above can fail
        other = fnn.value_and_grad(net, x, y, CE, key=12)
    assert other[0] != pytest.approx(one[0], rel=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_dropout_mask_drawn_in_parts_equals_the_whole_batchs(dtype):
    """Dropout's mask for rows [a, b) of a batch, drawn with fnn.random.part_of_batch(a),
    equals rows [a, b) of the mask drawn for the whole batch, bit for bit, at every offset
    (odd row sizes included); without the offset the rows would differ."""
    layer = Dropout(0.5)
    x = np.ones((6, 3, 5), dtype)  # rows of 15 values: odd offsets in the stream
    whole = layer.forward(x, key=7, training=True)
    for a in range(6):
        for b in range(a + 1, 7):
            with fnn.random.part_of_batch(a):
                part = layer.forward(x[a:b], key=7, training=True)
            assert part.tobytes() == whole[a:b].tobytes()
    assert layer.forward(x[3:], key=7, training=True).tobytes() != whole[3:].tobytes()
    assert fnn.random.rows_before() == 0


def test_a_dropout_subclass_must_say_again_that_it_is_per_example():
    """A subclass of Dropout may draw its mask otherwise: it is not per-example unless it
    says so itself."""

    @attrs.frozen(eq=False)
    class RowDropout(Dropout):  # one draw per example: not what the skip assumes
        def _scaled_mask(self, x, key):
            return super()._scaled_mask(x[:, :1], key) * np.ones_like(x)

    @attrs.frozen(eq=False)
    class Said(Dropout):
        per_example = True

    assert runs_per_example(Dropout(0.5)) and not runs_per_example(RowDropout(0.5))
    assert runs_per_example(Said(0.5))
    assert not runs_per_example(fnn.Sequential([Conv2D(2, 3), RowDropout(0.5)]))


def test_skipping_in_the_random_stream_is_checked():
    """skip_is_exact holds for this NumPy, and its check fails for a skip that is off by
    one draw (so a NumPy that drew differently would keep dropout out of the parts)."""
    assert fnn.random.skip_is_exact()
    assert runs_per_example(Dropout(0.5))
    real = fnn.random.skip_uniform
    fnn.random.skip_is_exact.cache_clear()
    try:
        with mock.patch.object(
            fnn.random, "skip_uniform", lambda g, count, dtype: real(g, count + 1, dtype)
        ):
            assert not fnn.random.skip_is_exact()
            assert not runs_per_example(Dropout(0.5))
    finally:
        fnn.random.skip_is_exact.cache_clear()
    assert fnn.random.skip_is_exact()


def test_a_network_without_a_convolution_keeps_the_step_in_one_piece(parts_spy):
    """Dense networks' steps are too short to share: no parts."""
    net = fnn.init([Dense(4), ReLU(), Dense(3)], (5,), key=0)
    x, y = data((5,), 8)
    with fnn.threads(2):
        fnn.value_and_grad(net, x, y, CE)
    assert not parts_spy.called


def test_a_subclass_must_say_again_that_it_is_per_example():
    """A subclass of a per-example layer may change the math: it counts only if it sets
    per_example itself; containers answer for what they hold."""

    @attrs.frozen(eq=False)
    class Centred(ReLU):  # subtracts the batch mean: not per-example
        def _f(self, x):
            return np.maximum(x - x.mean(axis=0), 0)

    @attrs.frozen(eq=False)
    class Shifted(ReLU):
        per_example = True

    assert runs_per_example(ReLU()) and not runs_per_example(Centred())
    assert runs_per_example(Shifted())
    assert runs_per_example(fnn.Sequential([Conv2D(2, 3), ReLU()]))
    assert not runs_per_example(fnn.Parallel([Dense(2), Centred()]))
    assert not runs_per_example(fnn.Residual([Dense(2), BatchNorm()]))


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("x_shape", ValueError),
        ("labels", ValueError),
        ("x_nan", ValueError),
    ],
)
def test_errors_are_those_of_the_step_in_one_piece(bad, error):
    """Bad input raises the same error, with the same message, with two threads as with
    one (shapes in messages are the whole batch's, not a part's)."""
    net = cnn()
    x, y = data(net.input_shape, 6)
    if bad == "x_shape":
        x = x[:, :7]
    elif bad == "labels":
        y = y.copy()
        y[4] = 3
    else:
        x = x.copy()
        x[5, 0, 0, 0] = np.nan
    with pytest.raises(error) as one:
        fnn.value_and_grad(net, x, y, CE)
    with fnn.threads(2), pytest.raises(error) as parts:
        fnn.value_and_grad(net, x, y, CE)
    assert str(parts.value) == str(one.value)


def test_a_wrong_gradient_shape_is_named_as_in_one_piece():
    """A user layer whose pullback returns a gradient of the wrong shape is caught and
    named by its path with two threads too (the step is then computed in one piece)."""

    @attrs.frozen(eq=False)
    class BadScale(fnn.layers.Layer):
        per_example = True
        s: np.ndarray | None = fnn.layers.param_field()

        def init(self, key, in_shape, dtype):
            return attrs.evolve(self, s=np.ones(in_shape[-1:], dtype)), in_shape

        def apply(self, x):
            return x * self.s

        def backward(self, x, y, dy):
            return {"s": (dy * x).sum(axis=0)}, dy * self.s  # wrong: keeps spatial axes

    net = fnn.init([Conv2D(2, 3), BadScale(), Flatten(), Dense(3)], (6, 6, 1), key=0)
    x, y = data((6, 6, 1), 6)
    with pytest.raises(ValueError) as one:
        fnn.value_and_grad(net, x, y, CE)
    with fnn.threads(2), pytest.raises(ValueError) as parts:
        fnn.value_and_grad(net, x, y, CE)
    assert "layers[1]" in str(one.value) and str(parts.value) == str(one.value)
