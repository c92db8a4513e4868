"""examples/mnist_mlp.py and examples/custom_loop.py run at toy size and learn Fashion-MNIST."""

import os

import numpy as np
import pytest

import fnn
import fnn.optim
import fnn.train
from fnn import datasets, tree
from tests.conftest import load_example

DATA = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
pytestmark = pytest.mark.skipif(
    not os.path.exists(DATA) and not os.environ.get("FNN_DATA"),
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(scope="module")
def data():
    """Fashion-MNIST flattened to (n, 784) float32, loaded once for this module."""
    return load_example("mnist_mlp").load()


def test_mnist_mlp_learns_at_toy_size(tmp_path, capsys, data):
    """784-32-16-10 on 3000 examples for 3 epochs: test accuracy far above chance (10%)."""
    acc = load_example("mnist_mlp").main(
        ("784-32-16-10",), epochs=3, n_train=3000, n_test=1000, out_dir=str(tmp_path),
        progress=False, data=data,
    )
    assert acc["784-32-16-10"] > 0.65
    assert (tmp_path / "mnist_mlp_784-32-16-10.png").stat().st_size > 0
    assert "test accuracy" in capsys.readouterr().out


def test_custom_loop_equals_fit(capsys, data):
    """The hand-written loop learns, and gives bit for bit the network fit gives."""
    net, acc = load_example("custom_loop").main(epochs=3, n_train=3000, n_test=500, data=data)
    assert acc > 0.65
    x, y, *_ = datasets.train_val_split(data[0][:3000], data[1][:3000], val_fraction=0.1, key=0)
    key_init, key = fnn.random.split(fnn.random.key(0))
    layers = [fnn.Dense(32), fnn.ReLU(), fnn.Dense(16), fnn.ReLU(), fnn.Dense(10)]
    start = fnn.init(layers, (784,), key=key_init)
    ref, _, _ = fnn.train.fit(start, fnn.optim.adam(1e-3), fnn.losses.sparse_softmax_cross_entropy,
                              (x, y), epochs=3, key=key, batch_size=128, progress=False)
    for a, b in zip(tree.leaves(net), tree.leaves(ref), strict=True):
        np.testing.assert_array_equal(a, b)
    assert "test accuracy" in capsys.readouterr().out
