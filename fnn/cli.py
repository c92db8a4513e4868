"""The ``fnn`` command: ``fnn train`` and ``fnn evaluate``.

``fnn train`` builds an MLP, trains it with `fnn.train.fit` and saves the
model (``model.npz``), the history (``history.json``) and, when matplotlib is
installed, the loss curve (``curve.png``) in ``--out`` (``runs/<dataset>`` by
default). Its default run, on the two-spirals data set, needs no download and
takes seconds. ``fnn evaluate MODEL --dataset NAME`` reports a saved model's
loss and metrics on a data set's test split.

Usage::

    fnn train                                   # two spirals, a few seconds
    fnn train --dataset fashion-mnist --layers 256,128 --epochs 10
    fnn evaluate runs/fashion-mnist/model.npz --dataset fashion-mnist

Example:
    >>> net = build_mlp(2, (8, 8), 2, "tanh", seed=0)
    >>> [layer.name for layer in net.layers]
    ['Dense(units=8)', 'Tanh', 'Dense(units=8)', 'Tanh', 'Dense(units=2)']
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from fnn import datasets, io, losses, metrics, optim
from fnn.layers import ELU, GELU, Dense, Layer, LeakyReLU, ReLU, Sigmoid, Tanh
from fnn.network import Network, init, summary
from fnn.random import fold_in, key
from fnn.train import evaluate, fit

__all__ = ["main"]

Array = np.ndarray


@attrs.frozen
class Split:
    """A data set ready for an MLP: float inputs, integer labels, a test split."""

    name: str
    x_train: Array
    y_train: Array
    x_test: Array
    y_test: Array
    classes: int


def _limit(x: Array, y: Array, n: int | None) -> tuple[Array, Array]:
    """At most ``n`` examples, evenly spaced (data sets are often sorted by class)."""
    if n is None or n >= len(x):
        return x, y
    if n < 1:
        raise ValueError(f"--limit must be a positive number of examples, got {n}")
    idx = np.linspace(0, len(x) - 1, n).round().astype(np.int64)
    return x[idx], y[idx]


def _images(directory: str | None, which: str) -> Split:
    loader = datasets.fashion_mnist if which == "fashion-mnist" else datasets.mnist
    d = loader(directory)
    return Split(
        which,
        datasets.images_to_float(d.x_train, layout="flat"),
        d.y_train.astype(np.int64),
        datasets.images_to_float(d.x_test, layout="flat"),
        d.y_test.astype(np.int64),
        10,
    )


def _spirals(seed: int) -> Split:
    k = key(seed)
    x_train, y_train = datasets.two_spirals(fold_in(k, 0), n_per_class=500, noise=0.05)
    x_test, y_test = datasets.two_spirals(fold_in(k, 1), n_per_class=250, noise=0.05)
    return Split("spirals", x_train, y_train, x_test, y_test, 2)


def load_split(name: str, directory: str | None, seed: int, limit: int | None) -> Split:
    """Load the named data set as flat float32 inputs and int64 labels."""
    if name == "spirals":
        split = _spirals(seed)
    elif name in ("fashion-mnist", "mnist"):
        split = _images(directory, name)
    else:  # argparse restricts the choices; this guards programmatic use
        raise ValueError(f"fnn: unknown dataset {name!r}; choose spirals, fashion-mnist or mnist")
    x_train, y_train = _limit(split.x_train, split.y_train, limit)
    x_test, y_test = _limit(split.x_test, split.y_test, limit)
    return attrs.evolve(split, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


ACTIVATIONS: dict[str, Callable[[], Layer]] = {
    "relu": ReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "gelu": GELU,
    "elu": ELU,
    "leaky_relu": LeakyReLU,
}

OPTIMIZERS: dict[str, Callable[[float], Any]] = {
    "sgd": lambda lr: optim.sgd(lr),
    "momentum": lambda lr: optim.sgd(lr, momentum=0.9),
    "nesterov": lambda lr: optim.sgd(lr, momentum=0.9, nesterov=True),
    "adam": lambda lr: optim.adam(lr),
    "adamw": lambda lr: optim.adamw(lr),
    "rmsprop": lambda lr: optim.rmsprop(lr),
    "adagrad": lambda lr: optim.adagrad(lr),
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "spirals": {"layers": "64,64", "epochs": 40, "lr": 0.01, "batch_size": 32},
    "fashion-mnist": {"layers": "256,128", "epochs": 10, "lr": 1e-3, "batch_size": 128},
    "mnist": {"layers": "256,128", "epochs": 10, "lr": 1e-3, "batch_size": 128},
}


def _hidden_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--layers takes comma-separated positive ints such as 64,64; got {text!r}"
        ) from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"--layers sizes must be positive, got {text!r}")
    return sizes


def build_mlp(
    d_in: int, hidden: Sequence[int], classes: int, activation: str, seed: int
) -> Network:
    """Dense layers of the given widths with an activation between them, logits out."""
    layers: list[Layer] = []
    for width in hidden:
        layers += [Dense(width, w_init="he_uniform"), ACTIVATIONS[activation]()]
    layers.append(Dense(classes))
    return init(layers, (d_in,), key=fold_in(key(seed), 1000))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fnn", description="Train and evaluate fnn networks.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train an MLP classifier and save it")
    t.add_argument("--dataset", choices=sorted(DEFAULTS), default="spirals")
    t.add_argument("--layers", type=_hidden_sizes, default=None, help="hidden widths, e.g. 64,64")
    t.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    t.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    t.add_argument("--lr", type=float, default=None, help="learning rate")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-fraction", type=float, default=0.1)
    t.add_argument("--limit", type=int, default=None, help="use only the first N examples")
    t.add_argument("--data-dir", default=None, help="directory holding the dataset files")
    t.add_argument("--out", default=None, help="output directory (default runs/<dataset>)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    e = sub.add_parser("evaluate", help="report a saved model's metrics on a data set")
    e.add_argument("model", help="a model.npz written by fnn train or fnn.save")
    e.add_argument("--dataset", choices=sorted(DEFAULTS), required=True)
    e.add_argument("--seed", type=int, default=0, help="seed of generated data sets")
    e.add_argument("--limit", type=int, default=None)
    e.add_argument("--data-dir", default=None)
    return p


def _train(args: argparse.Namespace) -> int:
    defaults = DEFAULTS[args.dataset]
    hidden = args.layers or _hidden_sizes(defaults["layers"])
    epochs = defaults["epochs"] if args.epochs is None else args.epochs
    lr = defaults["lr"] if args.lr is None else args.lr
    batch_size = defaults["batch_size"] if args.batch_size is None else args.batch_size
    out = Path(args.out or Path("runs") / args.dataset)
    data = load_split(args.dataset, args.data_dir, args.seed, args.limit)
    x_train, y_train, x_val, y_val = datasets.train_val_split(
        data.x_train, data.y_train, val_fraction=args.val_fraction, key=fold_in(key(args.seed), 2)
    )
    net = build_mlp(x_train.shape[1], hidden, data.classes, args.activation, args.seed)
    opt = OPTIMIZERS[args.optimizer](lr)
    print(
        f"fnn train: {data.name}, {len(x_train)} training / {len(x_val)} validation / "
        f"{len(data.x_test)} test examples; {args.optimizer} lr={lr}, batch {batch_size}, "
        f"{epochs} epochs"
    )
    summary(net)
    start = time.perf_counter()
    net, _, history = fit(
        net,
        opt,
        losses.sparse_softmax_cross_entropy,
        (x_train, y_train),
        epochs=epochs,
        key=fold_in(key(args.seed), 3),
        batch_size=batch_size,
        validation=(x_val, y_val),
        metrics=(metrics.accuracy,),
        progress=not args.no_progress,
    )
    seconds = time.perf_counter() - start
    test = evaluate(
        net, data.x_test, data.y_test, losses.sparse_softmax_cross_entropy, (metrics.accuracy,)
    )
    out.mkdir(parents=True, exist_ok=True)
    model_path = io.save(out / "model.npz", net)
    (out / "history.json").write_text(json.dumps(history.to_dict(), indent=1))
    print(
        f"trained in {seconds:.1f} s; test loss {test['loss']:.4f}, "
        f"test accuracy {test['accuracy']:.4f}"
    )
    print(f"saved {model_path} and {out / 'history.json'}")
    try:
        curve = history.plot(str(out / "curve.png"))
        print(f"saved {curve}")
    except ImportError as err:
        print(f"no loss curve: {err}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    net = io.load(args.model)
    if not isinstance(net, Network):
        print(
            f"fnn evaluate: {args.model} holds a {type(net).__name__}, not a Network",
            file=sys.stderr,
        )
        return 2
    data = load_split(args.dataset, args.data_dir, args.seed, args.limit)
    result = evaluate(
        net, data.x_test, data.y_test, losses.sparse_softmax_cross_entropy, (metrics.accuracy,)
    )
    print(f"fnn evaluate: {args.model} on {data.name} test ({len(data.x_test)} examples)")
    for name, value in result.items():
        print(f"  {name}: {value:.4f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        return _evaluate(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"fnn {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
