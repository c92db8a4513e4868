"""A learning-rate x width grid on Fashion-MNIST, run as a sweep on a local Dask cluster.

Each configuration trains a 784-<width>-10 MLP with Adam (batch 128) on the
first ``--train`` Fashion-MNIST training images and reports its accuracy on a
held-out validation split. The grid runs twice: one configuration after the
other in this process, then as `fnn.distributed.sweep` on a
``fnn.distributed.local_cluster`` of ``--workers`` single-threaded worker processes. The script
prints the table of validation accuracies, both wall times and whether the two
runs gave the same bits (they do: configuration ``i`` gets the key
``fold_in(key, i)`` wherever it runs, and both sides use one BLAS thread).

    python examples/sweep_fashion.py                      # 4 x 2 grid, 2 workers
    python examples/sweep_fashion.py --train 20000 --epochs 5 --workers 4
    python examples/sweep_fashion.py --scheduler tcp://HOST:8786   # an existing cluster
    python examples/sweep_fashion.py --toy                # synthetic data, seconds

Needs the dask extra (``pip install "fnn[dask]"``) and the dataset (Debian's
``dataset-fashion-mnist``, or downloaded by ``fnn.datasets.fashion_mnist``).
The driver loads the images once and scatters them to every worker
(``client.scatter(..., broadcast=True)``); each configuration carries the
futures, which Dask replaces by the worker's copy when the run starts, so the
data crosses the network once per worker rather than once per configuration.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import fnn
from fnn import datasets, distributed, metrics, optim
from fnn.random import Key, fold_in

LRS = (1e-3, 3e-3, 1e-2, 3e-2)
WIDTHS = (32, 128)


def load(n_train: int, toy: bool = False) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_val, y_val): flattened float32 pixels in [0, 1], int64 labels.

    The first ``n_train`` training images, 10% of them held out for validation
    with a fixed key. ``toy`` gives ten synthetic Gaussian classes instead (for
    tests and a quick look).
    """
    if toy:
        rng = np.random.default_rng(0)
        centres = rng.normal(size=(10, 784)).astype(np.float32)
        y = rng.integers(0, 10, n_train)
        x = centres[y] + rng.normal(scale=6.0, size=(n_train, 784)).astype(np.float32)
    else:
        d = datasets.fashion_mnist()
        x = datasets.images_to_float(d.x_train[:n_train])
        y = d.y_train[:n_train].astype(np.int64)
    return datasets.train_val_split(x, y, val_fraction=0.1, key=0)


def train(config: dict[str, Any], key: Key) -> float:
    """Train one configuration; return its validation accuracy after the last epoch."""
    x, y, x_val, y_val = config["data"]
    net = fnn.init([fnn.Dense(config["width"]), fnn.ReLU(), fnn.Dense(10)], (784,),
                   key=fold_in(key, 0))
    net, _, _ = fnn.fit(net, optim.adam(config["lr"]), fnn.losses.sparse_softmax_cross_entropy,
                        (x, y), epochs=config["epochs"], key=fold_in(key, 1), batch_size=128,
                        progress=False)
    return metrics.accuracy(fnn.forward(net, x_val), y_val)


def grid(lrs: Sequence[float], widths: Sequence[int], **common: Any) -> list[dict[str, Any]]:
    """Every (lr, width) pair, as configs sharing ``common`` settings."""
    return [{"lr": lr, "width": w, **common} for lr in lrs for w in widths]


def table(configs: Sequence[dict[str, Any]], accuracies: Sequence[float]) -> str:
    """Validation accuracy by learning rate (rows) and width (columns)."""
    lrs = sorted({c["lr"] for c in configs})
    widths = sorted({c["width"] for c in configs})
    acc = {(c["lr"], c["width"]): a for c, a in zip(configs, accuracies, strict=True)}
    lines = ["lr \\ width " + "".join(f"{w:>9}" for w in widths)]
    lines += [f"{lr:<11g}" + "".join(f"{acc[lr, w]:>9.4f}" for w in widths) for lr in lrs]
    return "\n".join(lines)


def main(
    *,
    lrs: Sequence[float] = LRS,
    widths: Sequence[int] = WIDTHS,
    n_train: int = 10_000,
    epochs: int = 3,
    workers: int = 2,
    toy: bool = False,
    scheduler: str | None = None,
    client: Any = None,
    sequential: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the grid sequentially and as a sweep; print and return the results.

    ``client`` uses an existing Dask client; otherwise ``scheduler`` (an
    address) is connected to, or a ``LocalCluster`` of ``workers`` processes
    is started and closed again.
    """
    from distributed import Client

    data = load(n_train, toy)
    configs = grid(lrs, widths, epochs=epochs)
    out: dict[str, Any] = {"configs": configs}
    if sequential:
        t0 = time.perf_counter()
        with fnn.threads(1):
            out["sequential"] = [train({**c, "data": data}, fold_in(fnn.random.key(seed), i))
                                 for i, c in enumerate(configs)]
        out["sequential_seconds"] = time.perf_counter() - t0
        print(f"sequential: {len(configs)} configs in {out['sequential_seconds']:.1f}s")
    own = None
    if client is None:
        own = Client(scheduler) if scheduler else Client(distributed.local_cluster(workers))
    try:
        active = client or own
        n_workers = len(active.nthreads())
        t0 = time.perf_counter()
        shared = active.scatter(data, broadcast=True)  # a tuple of futures, one per array
        runs = [{**c, "data": shared} for c in configs]
        trials = distributed.sweep(active, runs, train, key=seed)
        out["sweep_seconds"] = time.perf_counter() - t0
    finally:
        if own is not None:
            cluster = own.cluster
            own.close()
            if cluster is not None:
                cluster.close()
    out["sweep"] = [t.value for t in trials]
    print(f"sweep on {n_workers} workers: {len(configs)} configs in {out['sweep_seconds']:.1f}s")
    print("\nvalidation accuracy\n" + table(configs, out["sweep"]))
    if sequential:
        out["identical"] = out["sweep"] == out["sequential"]
        speedup = out["sequential_seconds"] / out["sweep_seconds"]
        print(f"\nwall time: sequential {out['sequential_seconds']:.1f}s, sweep "
              f"{out['sweep_seconds']:.1f}s on {n_workers} workers: {speedup:.2f}x; "
              f"same results bit for bit: {out['identical']}")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lrs", type=float, nargs="+", default=list(LRS))
    parser.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    parser.add_argument("--train", type=int, default=10_000, help="training images to use")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="local worker processes")
    parser.add_argument("--scheduler", default=None, help="address of an existing scheduler")
    parser.add_argument("--toy", action="store_true", help="synthetic data, a quick run")
    parser.add_argument("--no-sequential", action="store_true", help="skip the sequential run")
    args = parser.parse_args()
    main(lrs=args.lrs, widths=args.widths, n_train=args.train, epochs=args.epochs,
         workers=args.workers, toy=args.toy, scheduler=args.scheduler,
         sequential=not args.no_sequential)
