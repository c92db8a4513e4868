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

The tutorials page quotes 0.8685 for its 784-32-16-10 run; the last digits of
such a number depend on the BLAS thread count (see ``fnn.threads``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import fnn
from fnn import datasets, metrics, optim
from fnn.train import EarlyStopping, fit

ARCHS = {"784-32-16-10": (32, 16), "784-256-128-10": (256, 128)}


DATASETS = ("fashion_mnist", "mnist")


def dataset_name(name: str) -> str:
    """``fashion-mnist`` or ``fashion_mnist`` (as the ``fnn`` command spells it, or Python)."""
    canonical = name.strip().lower().replace("-", "_")
    if canonical not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose fashion-mnist or mnist")
    return canonical


def load(dataset: str = "fashion_mnist") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): x of shape (n, 784) float32 in [0, 1], y int64."""
    d = getattr(datasets, dataset_name(dataset))()

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
    threads: int | None = None,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """Train each architecture and return ``{arch: test accuracy}``.

    ``out_dir`` is created first, before any data is read, so a bad folder
    fails at once (``OSError``) rather than after training. ``n_train`` /
    ``n_test`` take the first examples only (toy runs in tests); ``threads``
    goes to ``fit`` (``None``: BLAS as it is); ``data`` is what :func:`load`
    returns (loaded when ``None``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
            progress=progress, threads=threads,
        )
        seconds = time.perf_counter() - t0
        pred = fnn.forward(net, x_test)
        results[arch] = metrics.accuracy(pred, y_test)
        png = history.plot(out / f"mnist_mlp_{arch}.png")
        print(
            f"{arch}: test accuracy {results[arch]:.4f} (best epoch {history.best_epoch}, "
            f"val accuracy {history['val_accuracy'][history.best_epoch or 0]:.4f}), "
            f"{len(history.epochs)} epochs in {seconds:.1f}s; curves in {png}"
        )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--arch", choices=list(ARCHS), nargs="*", default=list(ARCHS),
                        help="the networks to train")
    parser.add_argument("--epochs", type=int, default=10, help="at most this many epochs")
    parser.add_argument("--batch-size", type=int, default=128, help="examples per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    parser.add_argument("--train", type=int, default=None,
                        help="use the first N training examples (default: all)")
    parser.add_argument("--dataset", type=lambda s: s.replace("-", "_"), choices=DATASETS,
                        default="fashion_mnist", help="fashion_mnist (or fashion-mnist) or mnist")
    parser.add_argument("--out-dir", default=".", help="folder for the curves (created)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads (needs threadpoolctl; default: leave BLAS alone)")
    args = parser.parse_args()
    try:
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)  # before any work
    except OSError as err:
        parser.error(f"--out-dir {args.out_dir}: cannot create the folder ({err.strerror})")
    main(args.arch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
         n_train=args.train, dataset=args.dataset, out_dir=args.out_dir, threads=args.threads)
