"""examples/resnet_fashion.py runs at toy size and learns Fashion-MNIST."""

import os

import pytest

from tests.conftest import load_example

DATA = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
pytestmark = pytest.mark.skipif(
    not os.path.exists(DATA) and not os.environ.get("FNN_DATA"),
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)


def test_resnet_learns_at_toy_size(capsys):
    """A narrow ResNet (widths 8-16-16) on 1500 examples for 3 epochs: test accuracy far above
    chance (10%); the summary shows the nested blocks by path and per-epoch lines are printed."""
    module = load_example("resnet_fashion")
    acc = module.main(epochs=3, n_train=1500, n_test=500, widths=(8, 16, 16), lr=1e-2,
                      progress=False)
    assert acc > 0.45
    out = capsys.readouterr().out
    assert "layers[8].shortcut.layers[0]" in out and "Residual" in out
    assert "epoch 3:" in out and "test accuracy" in out


def test_resnet_has_the_promised_structure():
    """A stem, three residual blocks (the last two with projection shortcuts), global average
    pooling and a dense head, about as many parameters as the plain CNN example."""
    import fnn

    module = load_example("resnet_fashion")
    net = fnn.init(module.resnet(), (28, 28, 1), key=0)
    blocks = [layer for layer in net.layers if isinstance(layer, fnn.Residual)]
    assert len(blocks) == 3
    assert blocks[0].shortcut is None and all(b.shortcut is not None for b in blocks[1:])
    assert isinstance(net.layers[-3], fnn.GlobalAvgPool2D) and isinstance(net.layers[-1], fnn.Dense)
    cnn = fnn.init(load_example("mnist_cnn").cnn(), (28, 28, 1), key=0)
    n_resnet, n_cnn = fnn.tree.size(net), fnn.tree.size(cnn)
    assert 0.5 < n_resnet / n_cnn < 1.5, (n_resnet, n_cnn)


def test_random_flip_gradient_and_modes():
    """The example's RandomFlip (a short-form layer with a key): its pullback agrees with central
    differences in training mode; the same key flips the same images; evaluation mode is the
    identity."""
    import numpy as np

    from fnn import testing

    flip = load_example("resnet_fashion").RandomFlip()
    x = np.random.default_rng([3, 1]).normal(size=(6, 3, 4, 2))
    testing.check_layer(flip, x, key=5, training=True)
    testing.check_layer(flip, x)
    y = flip.forward(x, key=5, training=True)
    np.testing.assert_array_equal(y, flip.forward(x, key=5, training=True))
    flipped = [not np.array_equal(y[i], x[i]) for i in range(6)]
    assert any(flipped) and not all(flipped)
    assert all(np.array_equal(y[i], x[i, :, ::-1]) for i in range(6) if flipped[i])
    np.testing.assert_array_equal(flip.forward(x), x)


def test_random_shift_gradient_and_modes():
    """The example's RandomShift: its pullback (δ moved back to where each value came from)
    agrees with central differences; each image is its input moved by at most 2 pixels with
    zeros coming in; the same key gives the same shifts; evaluation mode is the identity."""
    import numpy as np

    from fnn import testing

    shift = load_example("resnet_fashion").RandomShift(2)
    x = np.random.default_rng([4, 1]).normal(size=(5, 4, 6, 2))
    testing.check_layer(shift, x, key=7, training=True)
    y = shift.forward(x, key=7, training=True)
    np.testing.assert_array_equal(y, shift.forward(x, key=7, training=True))
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    for b in range(5):
        windows = [(r, c) for r in range(5) for c in range(5)
                   if np.array_equal(padded[b, r:r + 4, c:c + 6], y[b])]
        assert windows, f"example {b} is not a shifted copy of its input"
    np.testing.assert_array_equal(shift.forward(x), x)

