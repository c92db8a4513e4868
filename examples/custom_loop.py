"""The training of examples/mnist_mlp.py written by hand: fit is nothing magic.

A network, an optimizer state and a key go in; each step computes the loss and
the gradient with ``fnn.value_and_grad`` and asks the optimizer for the next
network and state. With the same keys as ``fnn.train.fit`` (epoch key
``fold_in(key, epoch)`` split into a shuffling key and a dropout key), the
result is the same network, bit for bit.

    python examples/custom_loop.py
    python examples/custom_loop.py --epochs 2 --train 10000
"""

from __future__ import annotations

import argparse

import numpy as np

import fnn
from fnn import datasets, metrics, optim
from fnn.random import fold_in, split
from fnn.train import batches


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST as (x_train, y_train, x_test, y_test), x flattened to [0, 1] float32."""
    d = datasets.fashion_mnist()
    x, x_test = (a.reshape(len(a), 784).astype(np.float32) / np.float32(255)
                 for a in (d.x_train, d.x_test))
    return x, d.y_train.astype(np.int64), x_test, d.y_test.astype(np.int64)


def main(
    *,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[fnn.Network, float]:
    """Train 784-32-16-10 with Adam by hand; return the network and its test accuracy.

    ``n_train`` / ``n_test`` take the first examples only; ``data`` is what
    :func:`load` returns (loaded when ``None``).
    """
    x, y, x_test, y_test = load() if data is None else data
    x, y, x_test, y_test = x[:n_train], y[:n_train], x_test[:n_test], y_test[:n_test]
    x, y, x_val, y_val = datasets.train_val_split(x, y, val_fraction=0.1, key=seed)
    loss_fn = fnn.losses.sparse_softmax_cross_entropy

    key_init, key = split(fnn.random.key(seed))
    layers = [fnn.Dense(32), fnn.ReLU(), fnn.Dense(16), fnn.ReLU(), fnn.Dense(10)]
    net = fnn.init(layers, (784,), key=key_init)
    opt = optim.adam(lr)
    state = opt.init(net)

    # ---- the training loop ----
    for epoch in range(epochs):
        shuffle_key, dropout_key = split(fold_in(key, epoch))
        total = 0.0
        for step, (xb, yb) in enumerate(batches(x, y, batch_size, key=shuffle_key)):
            loss, grads, net = fnn.value_and_grad(
                net, xb, yb, loss_fn, key=fold_in(dropout_key, step), with_state=True
            )
            net, state = opt.update(grads, state, net)
            total += loss * len(xb)
        val_pred = fnn.forward(net, x_val)  # evaluation mode: training=False
        print(
            f"epoch {epoch + 1}/{epochs}  loss {total / len(x):.4f}  "
            f"val_loss {loss_fn(val_pred, y_val):.4f}  "
            f"val_accuracy {metrics.accuracy(val_pred, y_val):.4f}"
        )
    # ---- end of the loop ----

    test_accuracy = metrics.accuracy(fnn.forward(net, x_test), y_test)
    print(f"test accuracy {test_accuracy:.4f}")
    return net, test_accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train", type=int, default=None, help="use the first N training examples")
    args = parser.parse_args()
    main(epochs=args.epochs, n_train=args.train)
