"""Tests of fnn.train.evaluation: evaluate equals the loss and metrics of one forward pass."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fnn
from fnn import metrics
from fnn.train import evaluate


@given(st.integers(1, 30), st.integers(1, 40))
def test_independent_of_batch_size(n, batch_size):
    """Chunked evaluation gives the loss and accuracy of a single forward pass."""
    net = fnn.init([fnn.Dense(4), fnn.Tanh(), fnn.Dense(3)], (2,), key=0, dtype=np.float64)
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=(n, 2)), rng.integers(0, 3, n)
    logs = evaluate(net, x, y, fnn.losses.sparse_softmax_cross_entropy, [metrics.accuracy],
                    batch_size=batch_size)
    pred = fnn.forward(net, x)
    assert logs["loss"] == pytest.approx(
        fnn.losses.sparse_softmax_cross_entropy(pred, y), rel=1e-12
    )
    assert logs["accuracy"] == metrics.accuracy(pred, y)


def test_named_metric_objects():
    """A Metric wrapper is logged under its own name."""
    net = fnn.init([fnn.Dense(3)], (2,), key=0)
    x, y = np.ones((4, 2), np.float32), np.array([0, 1, 2, 0])
    top2 = metrics.Metric("top2", lambda p, t: metrics.top_k_accuracy(p, t, 2))
    logs = evaluate(net, x, y, fnn.losses.sparse_softmax_cross_entropy, [top2])
    assert set(logs) == {"loss", "top2"}


def test_errors():
    """Lambdas without a Metric name, mismatched lengths and bad batch sizes are refused."""
    net = fnn.init([fnn.Dense(2)], (2,), key=0)
    x, y = np.ones((4, 2), np.float32), np.array([0, 1, 0, 1])
    loss = fnn.losses.sparse_softmax_cross_entropy
    with pytest.raises(TypeError, match=r"wrap lambdas as fnn\.metrics\.Metric"):
        evaluate(net, x, y, loss, [lambda p, t: 0.0])
    with pytest.raises(ValueError, match="x has 4 examples but y has 2"):
        evaluate(net, x, y[:2], loss)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        evaluate(net, x, y, loss, batch_size=0)
