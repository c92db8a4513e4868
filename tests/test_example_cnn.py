"""examples/mnist_cnn.py runs at toy size and learns Fashion-MNIST."""

import os

import pytest

from tests.conftest import load_example

DATA = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
pytestmark = pytest.mark.skipif(
    not os.path.exists(DATA) and not os.environ.get("FNN_DATA"),
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)


def test_mnist_cnn_learns_at_toy_size(capsys):
    """A narrow CNN on 1500 examples for 2 epochs: test accuracy far above chance (10%),
    with per-epoch progress printed."""
    acc = load_example("mnist_cnn").main(
        epochs=2, n_train=1500, n_test=500, filters=(8, 16), units=32, progress=False
    )
    assert acc > 0.45
    out = capsys.readouterr().out
    assert "epoch 2:" in out and "test accuracy" in out
