"""A small CNN on Fashion-MNIST: two conv + max-pool blocks, dropout and a dense head.

    conv 3x3 (32, same) - ReLU - max-pool 2 - conv 3x3 (64, same) - ReLU - max-pool 2
    - flatten - dropout 0.3 - dense 128 - ReLU - dropout 0.3 - dense 10 (logits)

Images are ``(batch, 28, 28, 1)`` float32 in [0, 1]. 10% of the training set is
held out (with a fixed key) for validation; Adam (lr 1e-3, batch 128), early
stopping on the validation loss (patience 3, best epoch restored); the test set
is used once, at the end. Dropout is active only in training mode: ``fit``
gives each step its own key, evaluation runs without one.

Measured (seed 0, one BLAS thread, 2-core machine shared with other jobs):
validation accuracy 88.4% after epoch 1, 91.5% after 4, 93.5% after 15; test
accuracy 92.67% (best epoch 14 restored); 90-300 s per epoch depending on load.

Epoch time (issue 15's convolution kernels), from the median training step
times 422 steps, one thread, on the 2-core machine while six other jobs ran
(load 7-8): before, 100-116 ms CPU and 250-274 ms wall per step (42-49 s CPU,
105-116 s wall per epoch); after, 82-101 ms CPU and 206-219 ms wall (35-43 s
CPU, 87-92 s wall). With Winograd and shifted products as well, on a quiet
machine (``python benchmarks/cnn.py --compare --example 30``): 76.3 ms per step,
32 s per epoch, against 88.2 ms and 37 s with im2col only, measured in the
same run. Rerun with ``python benchmarks/cnn.py --no-bench --example 40``;
``--threads 2`` trains with two threads (``fnn.threads(2, blas=1)``).

With fnn recycling its large buffers (no page faults per step, against about
2,600 before), the median training step in a process of its own, before and
after, paired runs on a 2-core AMD EPYC that other virtual machines slowed:
122, 113 and 127 ms before against 111, 87 and 119 ms after with one thread
(medians 122 and 111 ms: 51 s against 47 s per epoch of 422 steps); 94 and
94 ms against 89 and 86 with two. Its dropout layers now run in the step in
parts of the batch too (each part draws its rows of the batch's mask): with two
threads, median step 87.6 and 92.2 ms in parts against 92.5 and 99.6 layer by
layer, in two runs that alternated the two step by step (one thread: 120.7 and
117.7 ms, a slow phase of the machine).

    python examples/mnist_cnn.py                         # full size: 92.7% test accuracy
    python examples/mnist_cnn.py --epochs 2 --train 5000 # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

import fnn
from fnn import datasets, metrics, optim
from fnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from fnn.train import EarlyStopping, fit


def load(dataset: str = "fashion_mnist") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): x of shape (n, 28, 28, 1) float32 in [0, 1]."""
    d = getattr(datasets, dataset)()

    def images(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), 28, 28, 1).astype(np.float32) / np.float32(255)

    return (
        images(d.x_train),
        d.y_train.astype(np.int64),
        images(d.x_test),
        d.y_test.astype(np.int64),
    )


def cnn(filters: tuple[int, int] = (32, 64), units: int = 128, drop_prob: float = 0.3) -> list:
    """The layers: two conv/ReLU/max-pool blocks, then dropout and a dense head."""
    f1, f2 = filters
    return [
        Conv2D(f1, 3, padding="same", w_init="he_normal"),
        ReLU(),
        MaxPool2D(2),
        Conv2D(f2, 3, padding="same", w_init="he_normal"),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dropout(drop_prob),
        Dense(units, w_init="he_normal"),
        ReLU(),
        Dropout(drop_prob),
        Dense(10),
    ]


def main(
    *,
    epochs: int = 15,
    n_train: int | None = None,
    n_test: int | None = None,
    filters: tuple[int, int] = (32, 64),
    units: int = 128,
    batch_size: int = 128,
    lr: float = 1e-3,
    dataset: str = "fashion_mnist",
    seed: int = 0,
    progress: bool = True,
    threads: int | None = None,
) -> float:
    """Train the CNN and return its test accuracy.

    ``n_train`` / ``n_test`` take the first examples only, and ``filters`` /
    ``units`` shrink the network (toy runs in tests). ``threads`` runs training
    inside ``fnn.threads(threads, blas=1)`` (fnn's convolution and pooling
    threads, single-threaded BLAS); ``None`` leaves the thread settings as
    they are.
    """
    x, y, x_test, y_test = load(dataset)
    x, y = x[:n_train], y[:n_train]
    x_test, y_test = x_test[:n_test], y_test[:n_test]
    x_tr, y_tr, x_val, y_val = datasets.train_val_split(x, y, val_fraction=0.1, key=seed)
    key_init, key_fit = fnn.random.split(fnn.random.key(seed))
    net = fnn.init(cnn(filters, units), (28, 28, 1), key=key_init)
    fnn.summary(net)
    t0 = time.perf_counter()
    # fnn's conv, pooling threads for the block only; BLAS single-threaded between them
    limit = fnn.threads(threads, blas=1) if threads is not None else contextlib.nullcontext()
    with limit:
        net, _, history = fit(
            net,
            optim.adam(lr),
            fnn.losses.sparse_softmax_cross_entropy,
            (x_tr, y_tr),
            epochs=epochs,
            key=key_fit,
            batch_size=batch_size,
            validation=(x_val, y_val),
            metrics=[metrics.accuracy],
            early_stopping=EarlyStopping("val_loss", patience=3),
            progress=progress,
            train_metrics=False,
        )
    seconds = time.perf_counter() - t0
    for i, loss in enumerate(history.loss if not progress else ()):  # fit printed them
        print(
            f"epoch {i + 1}: loss {loss:.4f}, val_loss {history['val_loss'][i]:.4f}, "
            f"val_accuracy {history['val_accuracy'][i]:.4f}"
        )
    accuracy = metrics.accuracy(fnn.forward(net, x_test), y_test)
    print(
        f"test accuracy {accuracy:.4f} (best epoch {history.best_epoch}), "
        f"{len(history.epochs)} epochs in {seconds:.0f}s"
    )
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--train", type=int, default=None, help="use the first N training examples")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dataset", choices=["fashion_mnist", "mnist"], default="fashion_mnist")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None, help="train inside fnn.threads(N) (e.g. 1 or 2)"
    )
    args = parser.parse_args()
    main(
        epochs=args.epochs,
        n_train=args.train,
        batch_size=args.batch_size,
        lr=args.lr,
        dataset=args.dataset,
        seed=args.seed,
        threads=args.threads,
    )
