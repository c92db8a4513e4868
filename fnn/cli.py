"""The ``fnn`` command: ``fnn train`` and ``fnn evaluate``.

``fnn train`` builds an MLP, trains it with `fnn.train.fit` and saves the
model (``model.npz``), the history (``history.json``) and, when matplotlib is
installed, the loss curve (``curve.png``) in ``--out`` (``runs/<dataset>`` by
default). Its default run, on the two-spirals data set, needs no download and
takes seconds. ``fnn evaluate MODEL --dataset NAME`` reports a saved model's
loss and metrics on a data set's test split.

Every failure is one line on stderr, ``fnn <command>: error: ...``, and exit
code 2 (130 when interrupted); ``--debug`` shows the traceback instead.
Everything that can be checked before training is checked before training:
the arguments, ``--data-dir``, that ``--out`` can be written to, and the data.

Usage::

    fnn train                                   # two spirals, a few seconds
    fnn train --dataset fashion-mnist --layers 256,128 --epochs 10 --threads 1
    fnn evaluate runs/fashion-mnist/model.npz --dataset fashion-mnist

Example:
    >>> net = build_mlp(2, (8, 8), 2, "tanh", seed=0)
    >>> [layer.name for layer in net.layers]
    ['Dense(units=8)', 'Tanh', 'Dense(units=8)', 'Tanh', 'Dense(units=2)']
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import attrs
import numpy as np

from fnn import datasets, io, losses, metrics, optim, parallel
from fnn._diagnose import shape_hint
from fnn.layers import ELU, GELU, Dense, Layer, LeakyReLU, ReLU, Sigmoid, Tanh
from fnn.network import Network, init, summary
from fnn.random import fold_in, key
from fnn.train import evaluate, fit

__all__ = ["main"]

Array = np.ndarray


class CommandError(Exception):
    """A failure the command reports as one line (no traceback)."""


@attrs.frozen
class Split:
    """A data set ready for an MLP: float inputs, integer labels, a test split."""

    name: str
    x_train: Array
    y_train: Array
    x_test: Array
    y_test: Array
    classes: int


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _limit(x: Array, y: Array, n: int | None) -> tuple[Array, Array]:
    """At most ``n`` examples, evenly spaced (data sets are often sorted by class)."""
    if n is None or n >= len(x):
        return x, y
    if n < 1:
        raise ValueError(f"--limit must be a positive number of examples, got {n}")
    idx = np.linspace(0, len(x) - 1, n).round().astype(np.int64)
    return x[idx], y[idx]


# Where fnn.datasets looks for the files, in its order (see fnn.datasets.fashion_mnist).
_TITLES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST"}
_SYSTEM_DIRS = {"fashion-mnist": ("/usr/share/datasets/fashion-mnist",), "mnist": ()}
_FILES = (
    "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    "t10k-labels-idx1-ubyte"
)


def _looked_in(which: str, directory: str | None) -> list[str]:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    cache = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    dirs = [directory] if directory is not None else []
    if os.environ.get("FNN_DATA"):
        dirs.append(str(Path(os.environ["FNN_DATA"]) / which))
    dirs.append(str(cache / "fnn" / which))
    return dirs + list(_SYSTEM_DIRS[which])


def _missing_dataset(which: str, directory: str | None, err: Exception) -> CommandError:
    """One line: where the files were looked for, why the download failed, how to install."""
    reason = re.search(r"<urlopen error (?:\[Errno [-\d]+\] )?([^>]*)>", str(err))
    why = reason.group(1) if reason else str(err).split(". ")[0][:160]
    install = (
        "install it with apt-get install dataset-fashion-mnist, or "
        if which == "fashion-mnist"
        else ""
    )
    places = ", ".join(_looked_in(which, directory))
    return CommandError(
        f"{_TITLES[which]} is not on this machine (looked in {places}) "
        f"and downloading it failed ({why}); {install}put the four files "
        f"({_FILES}, .gz or not) in a folder and pass --data-dir FOLDER"
    )


def _images(directory: str | None, which: str) -> Split:
    loader = datasets.fashion_mnist if which == "fashion-mnist" else datasets.mnist
    try:
        d = loader(directory)
    except OSError as err:  # not found on disk and the download failed
        raise _missing_dataset(which, directory, err) from err
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
    name = _dataset_name(name)
    split = _spirals(seed) if name == "spirals" else _images(directory, name)
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


def _dataset_name(text: str) -> str:
    """``fashion-mnist`` and ``fashion_mnist`` (any case) name the same data set."""
    name = text.strip().lower().replace("_", "-")
    if name not in DEFAULTS:
        raise argparse.ArgumentTypeError(
            f"unknown dataset {text!r}; choose from {', '.join(sorted(DEFAULTS))}"
        )
    return name


def _hidden_sizes(text: str) -> tuple[int, ...]:
    parts = [s.strip() for s in text.split(",")]
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive widths such as 64,64, got {text!r}"
        )
    return tuple(int(p) for p in parts)


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return value


def _existing_dir(text: str) -> str:
    if not Path(text).is_dir():
        what = "is a file" if Path(text).exists() else "does not exist"
        raise argparse.ArgumentTypeError(f"{text!r} {what}; give the folder holding the data files")
    return text


def build_mlp(
    d_in: int, hidden: Sequence[int], classes: int, activation: str, seed: int
) -> Network:
    """Dense layers of the given widths with an activation between them, logits out."""
    layers: list[Layer] = []
    for width in hidden:
        layers += [Dense(width, w_init="he_uniform"), ACTIVATIONS[activation]()]
    layers.append(Dense(classes))
    return init(layers, (d_in,), key=fold_in(key(seed), 1000))


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (``fnn train: error: ...``), not usage + error."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see {self.prog} --help)")


def _per_dataset(field: str) -> str:
    """``64,64 for spirals, 256,128 for fashion-mnist and mnist``: one default per value."""
    groups: dict[str, list[str]] = {}
    for name in ("spirals", "fashion-mnist", "mnist"):
        groups.setdefault(str(DEFAULTS[name][field]), []).append(name)
    return ", ".join(f"{value} for {' and '.join(names)}" for value, names in groups.items())


def _common(p: argparse.ArgumentParser, seed_help: str) -> None:
    """The flags of both commands."""
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        type=_existing_dir,
        default=None,
        help="an existing folder holding the dataset's files, searched first "
        "(default: $FNN_DATA/<dataset>, ~/.cache/fnn/<dataset>, then Debian's "
        "/usr/share/datasets/fashion-mnist)",
    )
    p.add_argument(
        "--seed", metavar="N", type=int, default=0, help=f"{seed_help} (default: %(default)s)"
    )
    p.add_argument(
        "--limit",
        metavar="N",
        type=_positive_int,
        default=None,
        help="use at most N examples of each split, evenly spaced (default: all)",
    )
    p.add_argument(
        "--threads",
        metavar="N",
        type=_positive_int,
        default=None,
        help="BLAS threads for the run (needs threadpoolctl); 1 is often fastest for "
        "small networks or on a busy machine, and the last digits of results can "
        "differ between counts (default: leave BLAS as it is)",
    )
    p.add_argument("--debug", action="store_true", help="show the traceback of a failure")


def _train_parser(sub: Any) -> None:
    t = sub.add_parser(
        "train",
        help="train an MLP classifier and save it",
        description="Train an MLP classifier with fnn.train.fit and save the model, its "
        "history and a loss curve in --out. The default run (two spirals) needs no download.",
    )
    t.add_argument(
        "--dataset",
        metavar="NAME",
        type=_dataset_name,
        default="spirals",
        help="spirals (generated), fashion-mnist or mnist; fashion_mnist works too "
        "(default: %(default)s)",
    )
    t.add_argument(
        "--layers",
        metavar="WIDTHS",
        type=_hidden_sizes,
        default=None,
        help=f"hidden widths, comma-separated (default: {_per_dataset('layers')})",
    )
    t.add_argument(
        "--activation",
        choices=sorted(ACTIVATIONS),
        default="relu",
        help="activation between the Dense layers (default: %(default)s)",
    )
    t.add_argument(
        "--optimizer",
        choices=sorted(OPTIMIZERS),
        default="adam",
        help="optimizer; momentum and nesterov use 0.9 (default: %(default)s)",
    )
    t.add_argument(
        "--lr",
        metavar="LR",
        type=_positive_float,
        default=None,
        help=f"learning rate (default: {_per_dataset('lr')})",
    )
    t.add_argument(
        "--epochs",
        metavar="N",
        type=_positive_int,
        default=None,
        help=f"passes over the training set (default: {_per_dataset('epochs')})",
    )
    t.add_argument(
        "--batch-size",
        metavar="N",
        type=_positive_int,
        default=None,
        help=f"examples per step (default: {_per_dataset('batch_size')})",
    )
    t.add_argument(
        "--val-fraction",
        metavar="F",
        type=_fraction,
        default=0.1,
        help="share of the training set held out for validation (default: %(default)s)",
    )
    t.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="folder for model.npz, history.json and curve.png, created if needed and "
        "checked before training (default: runs/<dataset>)",
    )
    t.add_argument(
        "--no-progress",
        action="store_true",
        help="print one line per epoch instead of a progress bar",
    )
    _common(t, "seed of the generated data (spirals), the split and training")


def _evaluate_parser(sub: Any) -> None:
    e = sub.add_parser(
        "evaluate",
        help="report a saved model's loss and accuracy on a data set",
        description="Report a saved model's loss and accuracy on a data set's test split.",
    )
    e.add_argument("model", help="a model .npz written by fnn train (model.npz) or fnn.save")
    e.add_argument(
        "--dataset",
        metavar="NAME",
        type=_dataset_name,
        required=True,
        help="the data set whose test split to use: spirals, fashion-mnist or mnist",
    )
    _common(e, "seed of the generated data (spirals)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fnn", description="Train and evaluate fnn networks.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    _train_parser(sub)
    _evaluate_parser(sub)
    return p


def _threads(n: int | None) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext() if n is None else parallel.threads(n)


def _out_dir(text: str | None, dataset: str) -> Path:
    """``--out``, created and shown writable now, before any training."""
    out = Path(text) if text is not None else Path("runs") / dataset
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise CommandError(
            f"cannot write to --out {str(out)!r} ({err.strerror or err}); choose another folder"
        ) from None
    return out


def _train(args: argparse.Namespace) -> int:
    defaults = DEFAULTS[args.dataset]
    hidden = args.layers or _hidden_sizes(defaults["layers"])
    epochs = defaults["epochs"] if args.epochs is None else args.epochs
    lr = defaults["lr"] if args.lr is None else args.lr
    batch_size = defaults["batch_size"] if args.batch_size is None else args.batch_size
    out = _out_dir(args.out, args.dataset)
    data = load_split(args.dataset, args.data_dir, args.seed, args.limit)
    x_train, y_train, x_val, y_val = datasets.train_val_split(
        data.x_train, data.y_train, val_fraction=args.val_fraction, key=fold_in(key(args.seed), 2)
    )
    net = build_mlp(x_train.shape[1], hidden, data.classes, args.activation, args.seed)
    opt = OPTIMIZERS[args.optimizer](lr)
    print(
        f"fnn train: {data.name}, {len(x_train)} training / {len(x_val)} validation / "
        f"{len(data.x_test)} test examples; {args.optimizer} lr={lr}, batch {batch_size}, "
        f"{_plural(epochs, 'epoch')}"
        + ("" if args.threads is None else f", {_plural(args.threads, 'BLAS thread')}")
    )
    summary(net)
    start = time.perf_counter()
    with _threads(args.threads):
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
    model_path = io.save(out / "model.npz", net)
    (out / "history.json").write_text(json.dumps(history.to_dict(), indent=1))
    print(
        f"trained in {seconds:.1f} s; test loss {test['loss']:.4f}, "
        f"test accuracy {test['accuracy']:.4f}"
    )
    print(f"saved {model_path} and {out / 'history.json'}")
    try:
        curve = history.plot(out / "curve.png")
        print(f"saved {curve}")
    except ImportError as err:
        print(f"no loss curve: {err}")
    return 0


def _file_kind(path: Path) -> str | None:
    """What ``path`` holds when it is not a model file (``None`` for a zip archive)."""
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(b"PK"):
        return None
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON file (fnn train's history.json?), not a model"
    if head.startswith(b"\x89PNG"):
        return "a PNG image (fnn train's curve.png?), not a model"
    return "not a model file"


def _model_path(text: str) -> Path:
    """The model file to load, or a one-line error saying what ``text`` is instead."""
    path = Path(text)
    if path.is_dir():
        raise CommandError(
            f"{text} is a folder; pass the model file in it, e.g. {path / 'model.npz'}"
        )
    if not path.exists():
        with_npz = path.with_name(path.name + ".npz")
        if with_npz.is_file():
            return with_npz
        raise CommandError(f"no such file {text!r}; fnn train saves runs/<dataset>/model.npz")
    kind = _file_kind(path)
    if kind is not None:
        sibling = path.parent / "model.npz"
        hint = f"; the model saved next to it is {sibling}" if sibling.is_file() else ""
        raise CommandError(
            f"{text} is {kind}: fnn evaluate takes a model .npz written by fnn train or "
            f"fnn.save{hint}"
        )
    return path


def _check_fits(net: Network, data: Split) -> None:
    """The model takes this data set's inputs and gives one output per class."""
    hint = shape_hint(net.input_shape, data.x_test.shape, "dataset")
    if hint:
        raise CommandError(hint.replace("this data set's", f"the {data.name}", 1))
    if net.output_shape != (data.classes,):
        raise CommandError(
            f"the model gives {net.output_shape} outputs per example but {data.name} has "
            f"{data.classes} classes; was it trained on another data set? Evaluate it on the "
            "one it was trained on"
        )


def _evaluate(args: argparse.Namespace) -> int:
    path = _model_path(args.model)
    net = io.load(path)
    if not isinstance(net, Network):
        raise CommandError(f"{path} holds a {type(net).__name__}, not a Network")
    data = load_split(args.dataset, args.data_dir, args.seed, args.limit)
    _check_fits(net, data)
    with _threads(args.threads):
        result = evaluate(
            net, data.x_test, data.y_test, losses.sparse_softmax_cross_entropy, (metrics.accuracy,)
        )
    print(f"fnn evaluate: {path} on {data.name} test ({len(data.x_test)} examples)")
    for name, value in result.items():
        print(f"  {name}: {value:.4f}")
    return 0


def _fail(command: str, message: object) -> int:
    text = " ".join(str(message).split())  # one line, whatever the message held
    print(f"fnn{' ' + command if command else ''}: error: {text}", file=sys.stderr)
    return 2


def _command_of(argv: Sequence[str]) -> str:
    return next((a for a in argv if a in ("train", "evaluate")), "")


@contextlib.contextmanager
def _no_argparse_exit() -> Iterator[list[int]]:
    """Turn argparse's ``--help`` exit into a return code."""
    code: list[int] = []
    try:
        yield code
    except SystemExit as done:
        code.append(done.code if isinstance(done.code, int) else 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Returns 0 on success, 2 after a failure (one line on stderr; ``--debug``
    raises instead, with the traceback), 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    args = None
    with _no_argparse_exit() as exit_code:
        try:
            args = _parser().parse_args(argv)
        except CommandError as err:
            return _fail(command, err)
    if args is None:  # --help printed
        return exit_code[0] if exit_code else 0
    try:
        return _train(args) if args.command == "train" else _evaluate(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"fnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # every failure is one line unless --debug
        if args.debug:
            raise
        known = (CommandError, ValueError, TypeError, OSError, ImportError, FloatingPointError)
        if isinstance(err, known):
            return _fail(args.command, err)
        return _fail(
            args.command,
            f"{type(err).__name__}: {err} (run again with --debug for the traceback)",
        )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
