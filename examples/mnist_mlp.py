"""The tutorials' MNIST MLP (784-32-16-10) and a wider 784-256-128-10, trained with fnn.fit.

Data: Fashion-MNIST (or MNIST with ``--dataset mnist``), pixels scaled to
[0, 1] and flattened to 784 features. 10% of the training set is held out
(with a fixed key) for validation; the test set is touched once, at the end.
Adam (lr 1e-3, batch 128) for up to 10 epochs, early stopping on the validation
loss with patience 3, restoring the best epoch. Writes the loss/accuracy curves
of each network to ``<out_dir>/mnist_mlp_<arch>.png``.

    python examples/mnist_mlp.py                 # both networks, full size
    python examples/mnist_mlp.py --arch 784-32-16-10 --epochs 3 --train 10000
    python examples/mnist_mlp.py --threads 1      # one BLAS thread (needs threadpoolctl)
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import fnn
from fnn import datasets, metrics, optim
from fnn.train import EarlyStopping, fit

ARCHS = {"784-32-16-10": (32, 16), "784-256-128-10": (256, 128)}


def load(dataset: str = "fashion_mnist") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): x of shape (n, 784) float32 in [0, 1], y int64."""
    d = getattr(datasets, dataset)()

    def flat(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1).astype(np.float32) / np.float32(255)

    return flat(d.x_train), d.y_train.astype(np.int64), flat(d.x_test), d.y_test.astype(np.int64)


def mlp(hidden: Sequence[int]) -> list[fnn.Layer]:
    """Dense-ReLU blocks of the given widths, then a 10-way Dense output (logits)."""
    layers: list[fnn.Layer] = []
    for units in hidden:
        layers += [fnn.Dense(units), fnn.ReLU()]
    return [*layers, fnn.Dense(10)]


def main(
    archs: Sequence[str] = tuple(ARCHS),
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    n_train: int | None = None,
    n_test: int | None = None,
    dataset: str = "fashion_mnist",
    out_dir: str = ".",
    seed: int = 0,
    progress: bool = True,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """Train each architecture and return ``{arch: test accuracy}``.

    ``n_train`` / ``n_test`` take the first examples only (toy runs in tests);
    ``data`` is what :func:`load` returns (loaded when ``None``).
    """
    x, y, x_test, y_test = load(dataset) if data is None else data
    x, y = x[:n_train], y[:n_train]
    x_test, y_test = x_test[:n_test], y_test[:n_test]
    x_tr, y_tr, x_val, y_val = datasets.train_val_split(x, y, val_fraction=0.1, key=seed)
    key_init, key_fit = fnn.random.split(fnn.random.key(seed))
    results = {}
    for arch in archs:
        net = fnn.init(mlp(ARCHS[arch]), (784,), key=key_init)
        t0 = time.perf_counter()
        net, _, history = fit(
            net, optim.adam(lr), fnn.losses.sparse_softmax_cross_entropy, (x_tr, y_tr),
            epochs=epochs, key=key_fit, batch_size=batch_size, validation=(x_val, y_val),
            metrics=[metrics.accuracy], early_stopping=EarlyStopping("val_loss", patience=3),
            progress=progress,
        )
        seconds = time.perf_counter() - t0
        pred = fnn.forward(net, x_test)
        results[arch] = metrics.accuracy(pred, y_test)
        png = history.plot(str(Path(out_dir) / f"mnist_mlp_{arch}.png"))
        print(
            f"{arch}: test accuracy {results[arch]:.4f} (best epoch {history.best_epoch}, "
            f"val accuracy {history['val_accuracy'][history.best_epoch or 0]:.4f}), "
            f"{len(history.epochs)} epochs in {seconds:.1f}s; curves in {png}"
        )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=list(ARCHS), nargs="*", default=list(ARCHS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train", type=int, default=None, help="use the first N training examples")
    parser.add_argument("--dataset", choices=["fashion_mnist", "mnist"], default="fashion_mnist")
    parser.add_argument("--out-dir", default=".")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (threadpoolctl)")
    args = parser.parse_args()
    limit = contextlib.nullcontext()
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(args.threads)
    with limit:
        main(args.arch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
             n_train=args.train, dataset=args.dataset, out_dir=args.out_dir)
