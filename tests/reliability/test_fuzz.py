"""Fuzz every public callable of fnn with valid and broken arguments.

The table ``ENTRIES`` has one row per public callable (functions, classes'
constructors, loss objects, and for every layer its constructor, ``init``,
``forward``, ``vjp`` and the pullback). Each row draws a valid call; the fuzz
test then either makes that call or replaces one argument by a broken value
(wrong shape, rank or dtype, NaN/inf, an empty array, a ``(n, 0)`` array, a
masked array, float16, float64 beyond float32's range, a Python list, ``None``,
a value of the wrong kind, ints and floats beyond float range, a subnormal).
Valid arrays come in every layout a caller may hold them in (issue 16):
read-only, negative strides, non-native byte order, an ndarray subclass,
``np.matrix``. Each call runs under NumPy's default floating-point settings or
under ``np.errstate(all="raise")`` (underflow included), both with warnings as
errors. The promises checked:

- a valid call succeeds, in every layout and under both settings;
- a broken call either succeeds or raises ``ValueError``/``TypeError`` whose
  message names the function (or the layer or loss it belongs to); any other
  exception (``IndexError``, ``AttributeError``, a NumPy floating-point error,
  ``RecursionError``, ``OverflowError``, a RuntimeWarning, ...) is a bug;
  ``MemoryError`` is allowed only for a huge int the caller passed;
- no argument is changed, on the success and the error path alike, including
  the read-only flags of the caller's arrays.

``test_every_public_name_has_an_entry`` fails when a public name is added
without a row here.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import importlib
import inspect
import itertools
import re
import tempfile
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fnn
from fnn import datasets, initializers, io, losses, metrics, optim, testing, train, tree
from fnn import random as frandom
from fnn.layers import (
    ELU,
    GELU,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Identity,
    Layer,
    LayerNorm,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Reshape,
    Sigmoid,
    Softmax,
    Tanh,
)

PUBLIC_MODULES = (
    "fnn",
    "fnn.tree",
    "fnn.random",
    "fnn.losses",
    "fnn.optim",
    "fnn.train",
    "fnn.metrics",
    "fnn.io",
    "fnn.datasets",
    "fnn.testing",
    "fnn.layers",
    "fnn.initializers",
    "fnn.parallel",
    "fnn.distributed",
)

LAYER_MEMBERS = ("init", "forward", "vjp", "pullback")

# Public names that are not callables with arguments to fuzz, and why.
EXEMPT: dict[str, str] = {
    "fnn.__version__": "a string constant",
    "fnn.io.FORMAT_VERSION": "an int constant",
    "fnn.train.STOP": "an enum member (a constant)",
    "fnn.train.Signal": "an enum of one member; fit checks what callbacks return",
    "fnn.random.KeyLike": "a type alias",
    "fnn.initializers.Initializer": "a type alias",
    "fnn.optim.Schedule": "a type alias",
    "fnn.optim.Mask": "a type alias",
    "fnn.train.OptimizerLike": "a typing.Protocol (no constructor to call)",
    "fnn.layers.Layer": "the abstract base; its protocol is fuzzed through every concrete layer",
    "fnn.testing.GradientCheckError": "an exception class",
}

# Callables whose bad-argument errors are ValueError/TypeError (checked) but whose message
# does not always name them yet (not checked); each is a known gap for the owner to close.
MESSAGE_GAPS: dict[str, str] = {
    **{f"fnn.layers.{cls.__name__}.init": "Layer.init leaves key/in_shape/dtype checks to fnn.init; "
       "called directly, a bad in_shape gives Python's own message ('object of type int has no len()')"
       for cls in (Dense, Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, LayerNorm, BatchNorm, Reshape,
                   Flatten, Identity, ReLU, LeakyReLU, ELU, Tanh, Sigmoid, GELU, Softmax, Dropout)},
    "fnn.optim.exponential_decay": "staircase is checked by attrs.validators.instance_of (message is a tuple)",
    "fnn.tree.scale": "s=1j gives float()'s message",
    "fnn.datasets.mnist": "directory=3 gives pathlib's message",
    "fnn.datasets.fashion_mnist": "directory=3 gives pathlib's message",
    "fnn.datasets.two_spirals": "noise=None gives a comparison error",
    "fnn.datasets.xor": "dtype='nonsense' gives NumPy's message",
    "fnn.datasets.one_hot": "dtype='nonsense' gives NumPy's message",
    "fnn.datasets.train_val_split": "val_fraction=None gives a comparison error",
    "fnn.datasets.Dataset": "class_names=None gives \"'NoneType' object is not iterable\"",
    "fnn.datasets.download": "max_bytes=None gives a comparison error",
    "fnn.datasets.read_idx": "path=3 gives pathlib's message",
    "fnn.datasets.write_idx": "path=3 gives pathlib's message",
    "fnn.datasets.images_to_float": "dtype='nonsense' gives NumPy's message",
    "fnn.datasets.linear_regression": "some bad numbers give comparison errors",
    "fnn.testing.check_layer": "n_directions/eps of the wrong kind give Python's messages",
    "fnn.testing.check_network": "n_directions/eps of the wrong kind give Python's messages",
    "fnn.testing.check_loss": "n_directions/eps of the wrong kind give Python's messages",
    "fnn.testing.check_vjp": "f/vjp that are not callable give \"'NoneType' object is not callable\"",
}

Draw = Callable[..., Any]


@attrs.frozen
class Call:
    """One valid call: every argument by name, those not to break, extra values to watch."""

    kwargs: dict[str, Any]
    fixed: frozenset[str] = frozenset()
    watch: tuple[Any, ...] = ()


@attrs.frozen
class Entry:
    """One public callable: how to call it, how to draw a valid call, who its errors name."""

    name: str
    target: object
    member: str | None
    run: Callable[..., Any]
    build: Callable[[Draw, Any], Call]
    who: str
    extra_errors: tuple[type[BaseException], ...] = ()
    post: Callable[[dict[str, Any], Any], None] | None = None  # checks a success's result
    rejects_nonfinite: bool = False  # NaN/inf in an array argument must be refused


ENTRIES: list[Entry] = []


def entry(
    name: str,
    target: object,
    run: Callable[..., Any],
    who: str,
    *,
    member: str | None = None,
    extra_errors: tuple[type[BaseException], ...] = (),
    rejects_nonfinite: bool = False,
) -> Callable[[Callable[[Draw, Any], Call]], Callable[[Draw, Any], Call]]:
    """Decorator: register ``build(draw, env) -> Call`` as the table row for ``name``."""

    def add(build: Callable[[Draw, Any], Call]) -> Callable[[Draw, Any], Call]:
        ENTRIES.append(Entry(name, target, member, run, build, who, extra_errors,
                             rejects_nonfinite=rejects_nonfinite))
        return build

    return add


# ---------------------------------------------------------------------------
# Drawing valid values.


class Sub(np.ndarray):
    """A do-nothing ndarray subclass: fnn views subclasses as plain arrays (the policy)."""


def _matrix(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.asmatrix(a)


# Valid layouts of the same values: every entry point must accept each of them and give
# the plain array's result (issue 16): read-only, negative strides, non-native byte order,
# an ndarray subclass, np.matrix (2-d only).
LAYOUTS = ("plain", "readonly", "reversed", "swapped", "subclass", "matrix")


def layout(draw: Draw, a: np.ndarray, subclasses: bool = True) -> np.ndarray:
    """``a`` in a layout drawn from LAYOUTS: the same values, held another way. Without
    ``subclasses`` (tree leaves: the policy covers entry points' array arguments, not the
    leaves of trees), ndarray subclasses are not drawn."""
    kinds = LAYOUTS if a.ndim == 2 else LAYOUTS[:-1]
    kind = draw(st.sampled_from(kinds if subclasses else kinds[:4]))
    if kind == "readonly":
        a.flags.writeable = False
    elif kind == "reversed" and a.ndim:  # a negative-stride view of reversed data
        a = np.flip(np.flip(a, axis=0).copy(), axis=0)
    elif kind == "swapped":
        a = a.astype(a.dtype.newbyteorder("S"))
    elif kind == "subclass":
        a = a.view(Sub)
    elif kind == "matrix":
        a = _matrix(a)
    return a


def farr(draw: Draw, shape: tuple[int, ...], dtype: Any = np.float32, low: float = -2.0,
         high: float = 2.0, subclasses: bool = True) -> np.ndarray:
    """A float array of ``shape`` in a drawn layout (read-only, reversed, ...), as callers'
    arrays may be."""
    seed = draw(st.integers(0, 2**32 - 1))
    a = np.random.default_rng(seed).uniform(low, high, shape).astype(dtype)
    return layout(draw, a, subclasses)


def labels(draw: Draw, n: int, classes: int) -> np.ndarray:
    seed = draw(st.integers(0, 2**32 - 1))
    a = np.random.default_rng(seed).integers(0, classes, n).astype(np.int64)
    return layout(draw, a)


def dim(draw: Draw, lo: int = 1, hi: int = 4) -> int:
    return draw(st.integers(lo, hi))


def a_key(draw: Draw) -> Any:
    return draw(st.one_of(st.integers(0, 2**20), st.integers(0, 2**20).map(frandom.key)))


def a_dtype(draw: Draw) -> Any:
    return draw(st.sampled_from([np.float32, np.float64]))


def small_net(draw: Draw, d_in: int | None = None, d_out: int | None = None) -> fnn.Network:
    d_in = dim(draw) if d_in is None else d_in
    d_out = dim(draw) if d_out is None else d_out
    layers = [Dense(dim(draw)), Tanh(), Dense(d_out)]
    return fnn.init(layers, (d_in,), key=a_key(draw), dtype=a_dtype(draw))


def net_data(draw: Draw) -> tuple[fnn.Network, np.ndarray, np.ndarray]:
    """A small regression network with a batch for it (mse targets)."""
    net = small_net(draw)
    b = dim(draw, 1, 5)
    x = farr(draw, (b, *net.input_shape), net.dtype)
    y = farr(draw, (b, net.layers[-1].units), net.dtype)
    return net, x, y


# ---------------------------------------------------------------------------
# Breaking values: chosen by the kind of the valid value.


class _Weird:
    """An object of no kind fnn knows."""


def _masked(a: np.ndarray) -> np.ndarray:
    """``a`` as a masked array whose masked entry holds a value no check would accept."""
    data = np.array(a)  # plain, writeable, native
    bad = {"f": np.inf, "i": -1}.get(data.dtype.kind)
    if data.dtype.kind == "u":
        bad = np.iinfo(data.dtype).max
    if data.size and bad is not None:
        data.flat[0] = bad
    mask = np.zeros(data.shape, bool)
    mask.flat[:1] = True
    return np.ma.array(data, mask=mask)


def _broken_arrays(a: np.ndarray) -> list[Any]:
    a = np.array(a)  # the breaking values below are built from a plain copy
    out: list[Any] = [None, a.tolist(), a[None], np.asarray(1.0), a.astype(object),
                      a.astype(np.complex128), a.astype(bool), a[:0], _masked(a)]
    if a.ndim >= 2:
        out.append(a[..., :0])  # (n, 0): no values per example
    if a.ndim >= 1:
        out.append(a.reshape(-1) if a.ndim > 1 else a.reshape(1, -1, 1))
        out.append(a.T if a.ndim > 1 else a[:, None])
        if a.shape[-1] > 0:
            out.append(np.concatenate([a, a[..., :1]], axis=-1))
    if a.dtype.kind == "f":
        out.append(a.astype(np.int64))
        out.append(a.astype(np.float64 if a.dtype == np.float32 else np.float32))
        out.append(a.astype(np.float16))
        if a.size and a.dtype == np.float32:  # float64 beyond float32's range
            b = a.astype(np.float64)
            b.flat[a.size // 2] = 1e300
            out.append(b)
        for bad in (np.nan, np.inf, -np.inf, np.finfo(a.dtype).max):
            if a.size:
                b = a.copy()
                b.flat[a.size // 2] = bad
                out.append(b)
    elif a.dtype.kind in "iu":
        out.append(a.astype(np.float32))
        if a.size:
            info = np.iinfo(a.dtype)
            for bad in (info.min if info.min < 0 else info.max, info.max):
                b = a.copy()
                b.flat[0] = bad
                out.append(b)
    return out


# Python ints beyond float64 (10**400), beyond int64 (2**63) and a huge negative one.
HUGE_INTS = (10**400, -(10**400), 2**63, 2**64 + 1)


def broken_values(value: Any, env: Any) -> list[Any]:
    """Values that break an argument whose valid value is ``value``."""
    weird = [None, _Weird(), "nonsense"]
    if isinstance(value, np.ndarray):
        return _broken_arrays(value)
    if isinstance(value, bool):
        return [None, "yes", 2]
    if isinstance(value, int | np.integer):
        # Only a hugely negative int here: a huge positive count (epochs, n_directions) is an
        # honest request for unbounded work, not something an entry point can refuse.
        return [None, -1, 0, 2.5, True, "3", np.int64(-2), float("nan"), -(10**400)]
    if isinstance(value, float):
        return [None, float("nan"), float("inf"), -1.0, 0.0, "0.1", True, 1e300, 1j, -1e308,
                5e-324, np.float16(0.5), *HUGE_INTS]
    if isinstance(value, Path):
        return [None, 3, env.dir / "missing" / "f.npz", env.dir]
    if isinstance(value, str):
        return [None, 3, "", "no-such-name"]
    if isinstance(value, tuple | list):
        out = [*weird, 3, (), (-1,), (2.5,), ("a",), (0,), [[1, 2]]]
        if len(value) > 0:
            out += [value[:-1], (*value, *value[-1:])]
        return out
    if isinstance(value, frandom.Key):
        return [None, -1, "k", 2.5, True]
    if isinstance(value, type | np.dtype):
        return [None, "nonsense", np.int64, object, np.complex128, "int32"]
    if isinstance(value, dict):
        return [None, 3, {"a": None}, {1: _Weird()}, []]
    if isinstance(value, fnn.Network):
        return [*weird, 3, Dense(2), losses.mse]
    if isinstance(value, losses.Loss):
        return [*weird, 3, metrics.accuracy, fnn.Dense(2)]
    if isinstance(value, Layer):
        return [*weird, 3, losses.mse]
    if callable(value):
        return [*weird, 3]
    return [*weird, 3, 2.5]


# ---------------------------------------------------------------------------
# Snapshots: nothing a caller passes may change.


def snapshot(v: Any, depth: int = 0) -> Any:
    if depth > 50:
        return "..."
    if isinstance(v, np.ndarray):
        data = repr(v.tolist()) if v.dtype.hasobject else v.tobytes()
        return ("array", v.dtype.str, v.shape, bool(v.flags.writeable), data)
    if isinstance(v, list | tuple):
        return (type(v).__name__, tuple(snapshot(i, depth + 1) for i in v))
    if isinstance(v, dict):
        return ("dict", tuple((repr(k), snapshot(i, depth + 1)) for k, i in v.items()))
    if attrs.has(type(v)):
        return (type(v).__name__,
                tuple((f.name, snapshot(getattr(v, f.name), depth + 1)) for f in attrs.fields(type(v))))
    if v is None or isinstance(v, int | float | complex | str | Path | np.generic | enum.Enum):
        return repr(v)
    return ("object", type(v).__name__, id(v))


# ---------------------------------------------------------------------------
# The environment: files the file functions read.


@attrs.define
class Env:
    dir: Path
    counter: int = 0

    def fresh(self, suffix: str) -> Path:
        self.counter += 1
        return self.dir / f"f{self.counter}{suffix}"


@pytest.fixture(scope="module")
def env():
    with tempfile.TemporaryDirectory() as d:
        e = Env(Path(d))
        (e.dir / "blob.bin").write_bytes(b"fnn fuzz payload")
        datasets.write_idx(e.dir / "a.idx", np.arange(6, dtype=np.uint8).reshape(2, 3))
        fnn.save(e.dir / "tree.npz", {"w": np.arange(3.0), "n": 1})
        for ds in ("mnist", "fashion"):
            sub = e.dir / ds
            sub.mkdir()
            rng = np.random.default_rng(0)
            for part, n in (("train", 4), ("t10k", 2)):
                datasets.write_idx(sub / f"{part}-images-idx3-ubyte",
                                   rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
                datasets.write_idx(sub / f"{part}-labels-idx1-ubyte",
                                   rng.integers(0, 10, n).astype(np.uint8))
        yield e


# ---------------------------------------------------------------------------
# Layers: constructor, init, forward, vjp and pullback of each.


@attrs.frozen
class LayerSpec:
    cls: type
    config: Callable[[Draw], dict[str, Any]]
    in_shape: Callable[[Draw], tuple[int, ...]]
    min_batch: int = 1


def _image(draw: Draw, lo: int = 2) -> tuple[int, int, int]:
    return (dim(draw, lo, 5), dim(draw, lo, 5), dim(draw, 1, 3))


def _any_rank(draw: Draw) -> tuple[int, ...]:
    return tuple(dim(draw) for _ in range(draw(st.integers(1, 3))))


def _reshape_config(draw: Draw) -> dict[str, Any]:
    return {"shape": draw(st.sampled_from([(6,), (2, 3), (3, 2), (1, 6)]))}


LAYER_SPECS = [
    LayerSpec(Dense, lambda d: {"units": dim(d), "use_bias": d(st.booleans())}, lambda d: (dim(d),)),
    LayerSpec(Identity, lambda d: {}, _any_rank),
    LayerSpec(ReLU, lambda d: {}, _any_rank),
    LayerSpec(LeakyReLU, lambda d: {"negative_slope": d(st.floats(0, 0.5))}, _any_rank),
    LayerSpec(ELU, lambda d: {"alpha": d(st.floats(0.1, 2))}, _any_rank),
    LayerSpec(Tanh, lambda d: {}, _any_rank),
    LayerSpec(Sigmoid, lambda d: {}, _any_rank),
    LayerSpec(GELU, lambda d: {}, _any_rank),
    LayerSpec(Softmax, lambda d: {}, _any_rank),
    LayerSpec(Flatten, lambda d: {}, _any_rank),
    LayerSpec(Reshape, _reshape_config, lambda d: (2, 3)),
    LayerSpec(Dropout, lambda d: {"drop_prob": d(st.floats(0, 0.9))}, _any_rank),
    LayerSpec(Conv2D, lambda d: {"filters": dim(d, 1, 3), "kernel_size": d(st.sampled_from([1, 2, (2, 1)])),
                                 "padding": d(st.sampled_from(["valid", "same"]))}, _image),
    LayerSpec(MaxPool2D, lambda d: {"pool_size": d(st.sampled_from([1, 2, (2, 1)]))}, _image),
    LayerSpec(AvgPool2D, lambda d: {"pool_size": d(st.sampled_from([1, 2, (1, 2)]))}, _image),
    LayerSpec(GlobalAvgPool2D, lambda d: {}, _image),
    LayerSpec(LayerNorm, lambda d: {}, _any_rank),
    LayerSpec(BatchNorm, lambda d: {"momentum": d(st.floats(0, 0.99))},
              lambda d: d(st.sampled_from([(dim(d),), _image(d)])), min_batch=2),
]


def _built(draw: Draw, spec: LayerSpec) -> tuple[Layer, tuple[int, ...], Any]:
    dtype = a_dtype(draw)
    layer, _ = spec.cls(**spec.config(draw)).init(a_key(draw), spec.in_shape(draw), np.dtype(dtype))
    return layer, spec.in_shape, dtype


def _layer_call(draw: Draw, spec: LayerSpec) -> dict[str, Any]:
    dtype = np.dtype(a_dtype(draw))
    in_shape = spec.in_shape(draw)
    layer, _ = spec.cls(**spec.config(draw)).init(a_key(draw), in_shape, dtype)
    batch = dim(draw, spec.min_batch, 4)
    x = farr(draw, (batch, *in_shape), dtype)
    return {"layer": layer, "x": x, "key": a_key(draw), "training": draw(st.booleans())}


def _add_layer_entries(spec: LayerSpec) -> None:
    cls = spec.cls
    base = f"fnn.layers.{cls.__name__}"
    who = rf"\b{cls.__name__}\b"

    def ctor(draw: Draw, env: Env) -> Call:
        return Call(spec.config(draw))

    def init_call(draw: Draw, env: Env) -> Call:
        kw = {"layer": cls(**spec.config(draw)), "key": a_key(draw), "in_shape": spec.in_shape(draw),
              "dtype": np.dtype(a_dtype(draw))}
        return Call(kw, fixed=frozenset({"layer"}))

    def forward_call(draw: Draw, env: Env) -> Call:
        return Call(_layer_call(draw, spec), fixed=frozenset({"layer"}))

    def vjp_call(draw: Draw, env: Env) -> Call:
        kw = _layer_call(draw, spec)
        kw["need_dx"] = draw(st.booleans())
        return Call(kw, fixed=frozenset({"layer"}))

    def pullback_call(draw: Draw, env: Env) -> Call:
        kw = _layer_call(draw, spec)
        y, pb = kw["layer"].vjp(kw["x"], key=kw["key"], training=kw["training"])
        dy = farr(draw, y.shape, y.dtype)
        return Call({"pullback": pb, "dy": dy}, fixed=frozenset({"pullback"}), watch=(kw, y))

    def same_dtype(kwargs: dict[str, Any], result: Any) -> None:
        """dtype in = dtype out, and floating: no layer upcasts, downcasts or goes complex."""
        if "dy" in kwargs:  # pullback -> (dlayer, dx)
            y, dtype = result[1], kwargs["dy"].dtype
        else:  # forward -> y; vjp -> (y, pullback)
            y, dtype = (result[0] if isinstance(result, tuple) else result), kwargs["x"].dtype
        assert y is None or (isinstance(y, np.ndarray) and y.dtype == dtype.newbyteorder("=")
                             and dtype.kind == "f"), (
            f"{base}: returned {getattr(y, 'dtype', type(y))} for a {dtype} input"
        )

    ENTRIES.append(Entry(base, cls, None, cls, ctor, who))
    ENTRIES.append(Entry(f"{base}.init", cls, "init",
                         lambda layer, key, in_shape, dtype: layer.init(key, in_shape, dtype),
                         init_call, who))
    ENTRIES.append(Entry(f"{base}.forward", cls, "forward",
                         lambda layer, x, key, training: layer.forward(x, key=key, training=training),
                         forward_call, who, post=same_dtype))
    ENTRIES.append(Entry(f"{base}.vjp", cls, "vjp",
                         lambda layer, x, key, training, need_dx: layer.vjp(
                             x, key=key, training=training, need_dx=need_dx),
                         vjp_call, who, post=same_dtype))
    ENTRIES.append(Entry(f"{base}.pullback", cls, "pullback",
                         lambda pullback, dy: pullback(dy), pullback_call, who,
                         post=same_dtype))


for _spec in LAYER_SPECS:
    _add_layer_entries(_spec)


@entry("fnn.layers.param_field", fnn.layers.param_field, fnn.layers.param_field, "param_field")
def _(draw, env):
    return Call({})


@entry("fnn.layers.state_field", fnn.layers.state_field, fnn.layers.state_field, "state_field")
def _(draw, env):
    return Call({})


# ---------------------------------------------------------------------------
# fnn: networks and the pure functions over them.


@entry("fnn.init", fnn.init, fnn.init, r"fnn\.init|Network:")
def _(draw, env):
    return Call({"layers": [Dense(dim(draw)), ReLU(), Dense(dim(draw))], "input_shape": (dim(draw),),
                 "key": a_key(draw), "dtype": a_dtype(draw)})


@entry("fnn.Network", fnn.Network, fnn.Network, r"Network")
def _(draw, env):
    net = small_net(draw)
    return Call({"layers": net.layers, "input_shape": net.input_shape, "dtype": net.dtype})


def _net_fn(name: str, fn: Callable[..., Any], with_y: bool, with_loss: bool,
            extra: Callable[[Draw], dict[str, Any]] = lambda d: {}) -> None:
    # Errors found by a delegate name it: grad -> value_and_grad, a bad target -> the loss.
    @entry(name, fn, fn, rf"{re.escape(name)}\b|fnn\.value_and_grad|\bmse:",
           extra_errors=(FloatingPointError,) if name == "fnn.value_and_grad" else (),
           rejects_nonfinite=True)
    def _(draw, env):
        net, x, y = net_data(draw)
        kw: dict[str, Any] = {"net": net, "x": x}
        if with_y:
            kw["y"] = y
        if with_loss:
            kw["loss_fn"] = losses.mse
        kw |= extra(draw)
        return Call(kw)


_train_kw = lambda d: {"key": a_key(d), "training": d(st.booleans())}  # noqa: E731
_net_fn("fnn.forward", fnn.forward, False, False, _train_kw)
_net_fn("fnn.activations", fnn.activations, False, False, _train_kw)
_net_fn("fnn.loss", fnn.loss, True, True, _train_kw)
_net_fn("fnn.grad", fnn.grad, True, True, _train_kw)
# check_finite=True promises a FloatingPointError naming the layer (or the loss) on NaN/inf.
_net_fn("fnn.value_and_grad", fnn.value_and_grad, True, True,
        lambda d: {"key": a_key(d), "check_finite": d(st.booleans()), "with_state": d(st.booleans())})


@entry("fnn.sgd_step", fnn.sgd_step, fnn.sgd_step, r"fnn\.sgd_step")
def _(draw, env):
    net, x, y = net_data(draw)
    return Call({"net": net, "grads": fnn.grad(net, x, y, losses.mse), "lr": draw(st.floats(1e-4, 1))})


@entry("fnn.threads", fnn.threads, fnn.threads, r"fnn\.threads")
def _(draw, env):
    return Call({"n": draw(st.integers(1, 2))})


@entry("fnn.parallel.num_threads", fnn.parallel.num_threads, fnn.parallel.num_threads,
       r"fnn\.parallel")
def _(draw, env):
    return Call({})


@entry("fnn.parallel.threads_set", fnn.parallel.threads_set, fnn.parallel.threads_set,
       r"fnn\.parallel")
def _(draw, env):
    return Call({})


@entry("fnn.release_buffers", fnn.release_buffers, fnn.release_buffers, r"fnn\.release_buffers")
def _(draw, env):
    return Call({})


@entry("fnn.summary", fnn.summary, fnn.summary, r"fnn\.summary")
def _(draw, env):
    return Call({"net": small_net(draw), "quiet": True})


# Issue 13 (a new user's first hour): fit's threads argument, on a row of its own so that
# only it is broken (None leaves BLAS alone; n runs the call inside fnn.threads(n)).
@entry("fnn.train.fit(threads=)", train.fit, train.fit, r"fnn\.fit")
def _(draw, env):
    net = small_net(draw, d_out=3)
    n = dim(draw, 1, 6)
    x, y = farr(draw, (n, *net.input_shape), net.dtype), labels(draw, n, 3)
    kwargs = {"net": net, "opt": optim.sgd(0.1), "loss_fn": losses.sparse_softmax_cross_entropy,
              "data": (x, y), "epochs": 1, "key": 0, "progress": False,
              "threads": draw(st.sampled_from([None, 1, 2]))}
    return Call(kwargs, fixed=frozenset(set(kwargs) - {"threads"}))


# issue 15 (convolution speed): fnn.parallel's batch-chunk helpers


@entry("fnn.parallel.split", fnn.parallel.split, fnn.parallel.split, r"fnn\.parallel\.split")
def _(draw, env):
    return Call({"n_items": draw(st.integers(0, 300)), "item_bytes": draw(st.integers(0, 1 << 24))})


@entry("fnn.parallel.map", fnn.parallel.map, fnn.parallel.map, r"fnn\.parallel\.map")
def _(draw, env):
    return Call({"fn": repr, "items": draw(st.lists(st.integers(-5, 5), max_size=4))})


# Issue 12 (speed and one walker): flatten's error for cyclic and too deeply nested trees.
EXEMPT["fnn.tree.NestingError"] = "an exception class (raised by flatten; tested in tests/test_tree.py)"


# ---------------------------------------------------------------------------
# issue 11 (sequence models, part 2): fnn.datasets.words, Words and CharVocab with its methods

_WORDS = st.lists(st.text(alphabet="abcxyz", min_size=1, max_size=6), min_size=1, max_size=6)


@entry("fnn.datasets.words", datasets.words, datasets.words, r"fnn\.datasets\.words",
       extra_errors=(OSError,))
def _(draw, env):
    path = env.fresh(".txt")
    path.write_text("\n".join([*draw(_WORDS), "Bob's", "UPPER", "co-op"]))
    return Call({"path": path, "val_fraction": draw(st.floats(0.0, 0.4)),
                 "test_fraction": draw(st.floats(0.0, 0.4)), "max_bytes": 1 << 16})


entry("fnn.datasets.Words", datasets.Words, datasets.Words, r"fnn\.datasets\.Words")(
    lambda draw, env: Call({"train": draw(_WORDS), "validation": tuple(draw(_WORDS)), "test": []}))
entry("fnn.datasets.CharVocab", datasets.CharVocab, datasets.CharVocab, r"fnn\.datasets\.CharVocab")(
    lambda draw, env: Call({"letters": draw(st.sampled_from(["abcxyz", "zyxcba", "abcdefxyz"])),
                            "boundary": draw(st.sampled_from([".", "#"]))}))
entry("fnn.datasets.CharVocab.from_words", datasets.CharVocab,
      lambda words, boundary: datasets.CharVocab.from_words(words, boundary),
      r"fnn\.datasets\.CharVocab", member="from_words")(
    lambda draw, env: Call({"words": draw(_WORDS), "boundary": "."}))
entry("fnn.datasets.CharVocab.encode", datasets.CharVocab,
      lambda word: datasets.CharVocab("abcxyz").encode(word),
      r"fnn\.datasets\.CharVocab\.encode", member="encode")(
    lambda draw, env: Call({"word": draw(_WORDS)[0]}))
entry("fnn.datasets.CharVocab.decode", datasets.CharVocab,
      lambda ids: datasets.CharVocab("abcxyz").decode(ids),
      r"fnn\.datasets\.CharVocab\.decode", member="decode")(
    lambda draw, env: Call({"ids": np.array(draw(st.lists(st.integers(0, 6), max_size=8)),
                                            np.int64)}))
entry("fnn.datasets.CharVocab.sequences", datasets.CharVocab,
      lambda words, length: datasets.CharVocab("abcxyz").sequences(words, length),
      r"fnn\.datasets\.CharVocab\.sequences", member="sequences")(
    lambda draw, env: Call({"words": draw(_WORDS), "length": draw(st.integers(7, 9))}))
entry("fnn.datasets.CharVocab.windows", datasets.CharVocab,
      lambda words, context: datasets.CharVocab("abcxyz").windows(words, context),
      r"fnn\.datasets\.CharVocab\.(windows|sequences)", member="windows")(
    lambda draw, env: Call({"words": draw(_WORDS), "context": draw(st.integers(1, 4))}))


# ---------------------------------------------------------------------------
# fnn.tree


def a_tree(draw: Draw) -> Any:
    kind = draw(st.sampled_from(["dict", "tuple", "net"]))
    if kind == "net":
        return small_net(draw, d_in=2, d_out=2)
    shape = (dim(draw), dim(draw))
    if kind == "dict":
        return {"a": farr(draw, shape, np.float64, subclasses=False),
                "b": [farr(draw, (2,), np.float64, subclasses=False), 3]}
    return (farr(draw, shape, np.float64, subclasses=False), None, "label")


def like(draw: Draw, t: Any) -> Any:
    """A tree of the same structure as ``t`` with other values."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return tree.map(lambda a: rng.uniform(-1, 1, a.shape).astype(a.dtype), t)


def _tree_fn(name: str, fn: Callable[..., Any], build: Callable[[Draw, Any], dict[str, Any]]) -> None:
    # Structure mismatches are reported by the shared check, naming the first differing path.
    entry(f"fnn.tree.{name}", fn, fn, rf"fnn\.tree\.{name}\b|tree structures differ at")(
        lambda draw, env: Call(build(draw, a_tree(draw))))


_tree_fn("add", tree.add, lambda d, t: {"a": t, "b": like(d, t)})
_tree_fn("sub", tree.sub, lambda d, t: {"a": t, "b": like(d, t)})
_tree_fn("vdot", tree.vdot, lambda d, t: {"a": t, "b": like(d, t)})
_tree_fn("allclose", tree.allclose, lambda d, t: {"a": t, "b": like(d, t), "rtol": 1e-7, "atol": 0.0})
_tree_fn("check_same_structure", tree.check_same_structure, lambda d, t: {"a": t, "b": like(d, t)})
_tree_fn("leaves", tree.leaves, lambda d, t: {"tree": t})
_tree_fn("leaves_with_path", tree.leaves_with_path, lambda d, t: {"tree": t})
_tree_fn("norm", tree.norm, lambda d, t: {"tree": t})
_tree_fn("size", tree.size, lambda d, t: {"tree": t})
_tree_fn("state_paths", tree.state_paths, lambda d, t: {"tree": t})
_tree_fn("state_mask", tree.state_mask, lambda d, t: {"tree": t})
_tree_fn("zeros_like", tree.zeros_like, lambda d, t: {"tree": t})
_tree_fn("scale", tree.scale, lambda d, t: {"tree": t, "s": d(st.floats(-2, 2))})
_tree_fn("map", tree.map, lambda d, t: {"f": np.negative, "tree": t})
_tree_fn("map_with_path", tree.map_with_path, lambda d, t: {"f": lambda p, a: a * 2, "tree": t})
entry("fnn.tree.readonly", tree.readonly, tree.readonly, r"fnn\.tree\.readonly|readonly")(
    lambda draw, env: Call({"a": farr(draw, (dim(draw),))}))


# ---------------------------------------------------------------------------
# fnn.random and fnn.initializers


entry("fnn.random.Key", frandom.Key, frandom.Key, r"fnn\.random\.Key")(
    lambda draw, env: Call({"seed": dim(draw, 0, 99), "path": (dim(draw, 0, 3),)}))
entry("fnn.random.key", frandom.key, frandom.key, r"fnn\.random\.key")(
    lambda draw, env: Call({"seed": dim(draw, 0, 99)}))
entry("fnn.random.as_key", frandom.as_key, frandom.as_key, r"who_called")(
    lambda draw, env: Call({"k": a_key(draw), "who": "who_called"}))
entry("fnn.random.fold_in", frandom.fold_in, frandom.fold_in, r"fnn\.random\.fold_in")(
    lambda draw, env: Call({"k": a_key(draw), "data": dim(draw, 0, 99)}))
entry("fnn.random.split", frandom.split, frandom.split, r"fnn\.random\.split")(
    lambda draw, env: Call({"k": a_key(draw), "num": dim(draw)}))
entry("fnn.random.generator", frandom.generator, frandom.generator, r"fnn\.random\.generator")(
    lambda draw, env: Call({"k": a_key(draw)}))
entry("fnn.random.normal", frandom.normal, frandom.normal, r"fnn\.random\.normal")(
    lambda draw, env: Call({"k": a_key(draw), "shape": (dim(draw), dim(draw)), "dtype": a_dtype(draw)}))
entry("fnn.random.uniform", frandom.uniform, frandom.uniform, r"fnn\.random\.uniform")(
    lambda draw, env: Call({"k": a_key(draw), "shape": (dim(draw),), "low": -1.0, "high": 1.0,
                            "dtype": a_dtype(draw)}))

for _name in ("glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal", "zeros"):
    _fn = getattr(initializers, _name)
    entry(f"fnn.initializers.{_name}", _fn, _fn, rf"fnn\.initializers\.{_name}\b")(
        lambda draw, env: Call({"key": a_key(draw), "shape": (dim(draw), dim(draw)),
                                "dtype": np.dtype(a_dtype(draw))}))
entry("fnn.initializers.resolve", initializers.resolve, initializers.resolve, r"fnn\.initializers")(
    lambda draw, env: Call({"init": draw(st.sampled_from(["he_normal", "zeros", initializers.he_uniform]))}))


# ---------------------------------------------------------------------------
# fnn.losses


def _loss_data(draw: Draw, loss: losses.Loss) -> dict[str, Any]:
    b, c = dim(draw, 1, 5), dim(draw, 2, 4)
    dtype = a_dtype(draw)
    if loss is losses.binary_cross_entropy:
        return {"pred": farr(draw, (b, c), dtype, 0.05, 0.95), "y": farr(draw, (b, c), dtype, 0, 1)}
    if loss is losses.softmax_cross_entropy:
        return {"pred": farr(draw, (b, c), dtype), "y": np.eye(c, dtype=dtype)[labels(draw, b, c)]}
    if loss is losses.sparse_softmax_cross_entropy:
        return {"pred": farr(draw, (b, c), dtype), "y": labels(draw, b, c)}
    return {"pred": farr(draw, (b, c), dtype), "y": farr(draw, (b, c), dtype, 0, 1)}


for _name in ("mse", "binary_cross_entropy", "binary_cross_entropy_with_logits",
              "softmax_cross_entropy", "sparse_softmax_cross_entropy"):
    _loss = getattr(losses, _name)
    entry(f"fnn.losses.{_name}", _loss, _loss, rf"\b{_name}\b")(
        lambda draw, env, _loss=_loss: Call(_loss_data(draw, _loss)))
    entry(f"fnn.losses.{_name}.value_and_grad", _loss, _loss.value_and_grad, rf"\b{_name}\b",
          member="value_and_grad")(lambda draw, env, _loss=_loss: Call(_loss_data(draw, _loss)))

entry("fnn.losses.Loss", losses.Loss, losses.Loss, r"Loss")(
    lambda draw, env: Call({"name": "my_loss", "fn": losses.mse.fn}))


# ---------------------------------------------------------------------------
# fnn.metrics


def _pred_labels(draw: Draw) -> tuple[np.ndarray, np.ndarray]:
    b, c = dim(draw, 1, 6), dim(draw, 2, 4)
    return farr(draw, (b, c)), labels(draw, b, c)


def _pair(draw: Draw) -> dict[str, Any]:
    shape = (dim(draw, 2, 6), dim(draw))
    return {"pred": farr(draw, shape), "y": farr(draw, shape)}


entry("fnn.metrics.accuracy", metrics.accuracy, metrics.accuracy, r"fnn\.metrics\.accuracy|\baccuracy")(
    lambda draw, env: Call(dict(zip(("pred", "labels"), _pred_labels(draw), strict=True))))
entry("fnn.metrics.top_k_accuracy", metrics.top_k_accuracy, metrics.top_k_accuracy, r"top_k_accuracy")(
    lambda draw, env: Call({**dict(zip(("logits", "labels"), _pred_labels(draw), strict=True)), "k": 1}))


@entry("fnn.metrics.confusion_matrix", metrics.confusion_matrix, metrics.confusion_matrix,
       r"confusion_matrix")
def _(draw, env):
    n, c = dim(draw, 1, 6), dim(draw, 1, 4)
    return Call({"labels": labels(draw, n, c), "predicted": labels(draw, n, c), "num_classes": c})


for _name in ("mse", "mae", "r2_score"):
    _fn = getattr(metrics, _name)
    entry(f"fnn.metrics.{_name}", _fn, _fn, rf"\b{_name}\b")(lambda draw, env: Call(_pair(draw)))
entry("fnn.metrics.higher_is_better", metrics.higher_is_better, metrics.higher_is_better,
      r"higher_is_better")(lambda draw, env: Call({"metric": draw(st.sampled_from(
          [metrics.accuracy, metrics.mse, metrics.r2_score]))}))
entry("fnn.metrics.Metric", metrics.Metric, metrics.Metric, r"Metric")(
    lambda draw, env: Call({"name": "my_metric", "fn": metrics.mae, "higher_is_better": False}))


# ---------------------------------------------------------------------------
# fnn.optim


def _lr(draw: Draw) -> Any:
    return draw(st.one_of(st.floats(1e-4, 0.5), st.just(optim.step_decay(0.1, 2))))


for _name, _extra in (
    ("sgd", lambda d: {"momentum": d(st.floats(0.1, 0.9)), "nesterov": d(st.booleans())}),
    ("adam", lambda d: {"b1": 0.9, "b2": 0.999, "eps": 1e-8}),
    ("adamw", lambda d: {"weight_decay": d(st.floats(0, 0.1))}),
    ("rmsprop", lambda d: {"decay": 0.9, "momentum": d(st.floats(0, 0.9))}),
    ("adagrad", lambda d: {"eps": 1e-10}),
):
    _fn = getattr(optim, _name)
    entry(f"fnn.optim.{_name}", _fn, _fn, rf"fnn\.optim\.{_name}|\b{_name}\b")(
        lambda draw, env, _extra=_extra: Call({"lr": _lr(draw), **_extra(draw)}))


def an_optimizer(draw: Draw) -> optim.Optimizer:
    return draw(st.sampled_from([optim.sgd(0.1, momentum=0.9), optim.adam(1e-2), optim.adamw(1e-2),
                                 optim.chain(optim.clip_by_global_norm(1.0), optim.rmsprop(1e-2))]))


entry("fnn.optim.Optimizer.init", optim.Optimizer, lambda opt, params: opt.init(params),
      r"fnn\.optim|sgd|adam|rmsprop|Optimizer", member="init")(
    lambda draw, env: Call({"opt": an_optimizer(draw), "params": small_net(draw)}, fixed=frozenset({"opt"})))


@entry("fnn.optim.Optimizer.update", optim.Optimizer,
       lambda opt, grads, state, params: opt.update(grads, state, params),
       r"fnn\.optim|sgd|adam|rmsprop|Optimizer", member="update")
def _(draw, env):
    opt = an_optimizer(draw)
    net, x, y = net_data(draw)
    return Call({"opt": opt, "grads": fnn.grad(net, x, y, losses.mse), "state": opt.init(net),
                 "params": net}, fixed=frozenset({"opt"}))


@entry("fnn.optim.Optimizer", optim.Optimizer, optim.Optimizer, r"Optimizer")
def _(draw, env):
    tx = optim.chain(optim.scale_by_adam(), optim.scale_by_learning_rate(draw(st.floats(1e-3, 1))))
    return Call({"tx": tx, "name": "mine"})


entry("fnn.optim.OptState", optim.OptState, optim.OptState, r"OptState")(
    lambda draw, env: Call({"count": np.int64(dim(draw, 0, 5)),
                            "slots": {"mu": [farr(draw, (2,), subclasses=False)]}}))


@entry("fnn.optim.learning_rate", optim.learning_rate, optim.learning_rate, r"learning_rate")
def _(draw, env):
    opt = an_optimizer(draw)
    return Call({"opt": opt, "state": opt.init(small_net(draw))})


entry("fnn.optim.chain", optim.chain, lambda parts: optim.chain(*parts), r"fnn\.optim\.chain|chain")(
    lambda draw, env: Call({"parts": [optim.clip_by_global_norm(1.0), optim.add_decayed_weights(1e-3),
                                      optim.sgd(0.1)]}))
entry("fnn.optim.freeze", optim.freeze, optim.freeze, r"freeze")(
    lambda draw, env: Call({"mask": draw(st.sampled_from(
        [lambda path: path.startswith("layers[0]"), "layers[0]", ("layers[0].b", "layers[2]")]))}))
entry("fnn.optim.clip_by_global_norm", optim.clip_by_global_norm, optim.clip_by_global_norm,
      r"clip_by_global_norm")(lambda draw, env: Call({"max_norm": draw(st.floats(0.1, 10))}))
entry("fnn.optim.constant", optim.constant, optim.constant, r"constant|Constant")(
    lambda draw, env: Call({"lr": draw(st.floats(1e-4, 1))}))
entry("fnn.optim.step_decay", optim.step_decay, optim.step_decay, r"step_decay|StepDecay")(
    lambda draw, env: Call({"lr": 0.1, "step_size": dim(draw), "factor": draw(st.floats(0.1, 0.9))}))
entry("fnn.optim.exponential_decay", optim.exponential_decay, optim.exponential_decay,
      r"exponential_decay|ExponentialDecay")(
    lambda draw, env: Call({"lr": 0.1, "decay_rate": draw(st.floats(0.1, 0.99)), "decay_steps": dim(draw),
                            "staircase": draw(st.booleans())}))
entry("fnn.optim.cosine_decay", optim.cosine_decay, optim.cosine_decay, r"cosine_decay|CosineDecay")(
    lambda draw, env: Call({"lr": 0.1, "total_steps": dim(draw, 5, 10), "warmup_steps": dim(draw, 0, 4),
                            "final_lr": 0.0}))


# ---------------------------------------------------------------------------
# fnn.train


@entry("fnn.train.batches", train.batches, train.batches, r"fnn\.batches|batches")
def _(draw, env):
    n = dim(draw, 1, 7)
    return Call({"x": farr(draw, (n, 2)), "y": labels(draw, n, 3), "batch_size": dim(draw),
                 "key": a_key(draw), "drop_last": draw(st.booleans())})


@entry("fnn.train.evaluate", train.evaluate, train.evaluate,
       r"fnn\.evaluate|fnn\.forward|sparse_softmax_cross_entropy:|accuracy", rejects_nonfinite=True)
def _(draw, env):
    net = small_net(draw, d_out=3)
    n = dim(draw, 1, 6)
    return Call({"net": net, "x": farr(draw, (n, *net.input_shape), net.dtype), "y": labels(draw, n, 3),
                 "loss_fn": losses.sparse_softmax_cross_entropy, "metrics": [metrics.accuracy],
                 "batch_size": dim(draw)})


@entry("fnn.train.fit", train.fit, train.fit,
       r"fnn\.fit|fnn\.evaluate|fnn\.forward|sparse_softmax_cross_entropy:|accuracy|fnn\.optim|sgd|adam|rmsprop")
def _(draw, env):
    net = small_net(draw, d_out=3)
    n = dim(draw, 1, 6)
    x, y = farr(draw, (n, *net.input_shape), net.dtype), labels(draw, n, 3)
    return Call({"net": net, "opt": an_optimizer(draw), "loss_fn": losses.sparse_softmax_cross_entropy,
                 "data": (x, y), "epochs": dim(draw, 0, 2), "key": a_key(draw), "batch_size": dim(draw),
                 "validation": (x, y), "metrics": [metrics.accuracy],
                 "early_stopping": train.EarlyStopping(patience=1), "progress": False,
                 "on_nonfinite": draw(st.sampled_from(["raise", "skip"]))})


entry("fnn.train.EarlyStopping", train.EarlyStopping, train.EarlyStopping, r"EarlyStopping")(
    lambda draw, env: Call({"monitor": "val_loss", "mode": draw(st.sampled_from(["auto", "min", "max"])),
                            "patience": dim(draw, 0, 3), "min_delta": 0.0, "restore_best": True}))
entry("fnn.train.History", train.History, train.History, r"History")(
    lambda draw, env: Call({"epochs": (0, 1), "logs": {"loss": [0.5, 0.25]}, "seconds": (0.1, 0.1),
                            "skipped": (0, 0)}))


@entry("fnn.train.EpochRecord", train.EpochRecord, train.EpochRecord, r"EpochRecord")
def _(draw, env):
    net = small_net(draw)
    return Call({"epoch": 0, "logs": types.MappingProxyType({"loss": 1.0}), "net": net,
                 "opt_state": optim.sgd(0.1).init(net), "history": train.History()})


# ---------------------------------------------------------------------------
# fnn.io


@entry("fnn.io.save", io.save, io.save, r"fnn\.io\.save", extra_errors=(OSError,))
def _(draw, env):
    return Call({"path": env.fresh(".npz"), "tree": a_tree(draw), "compress": draw(st.booleans())})


entry("fnn.io.load", io.load, io.load, r"fnn\.io\.load", extra_errors=(OSError,))(
    lambda draw, env: Call({"path": env.dir / "tree.npz",
                            "like": draw(st.sampled_from([None, {"w": np.zeros(3), "n": 0}])),
                            "max_bytes": draw(st.sampled_from([None, 2**20, 10**12]))}))


_FRESH = itertools.count()


@entry("fnn.io.register", io.register, io.register, r"fnn\.io\.register")
def _(draw, env):
    @attrs.frozen
    class Fresh:
        v: int = 0

    # A counter, not id(Fresh): a collected class's id is reused, and the name would then
    # already name another class (a flaky "valid call failed").
    return Call({"obj": Fresh, "name": f"fuzz.Fresh{next(_FRESH)}"})


# ---------------------------------------------------------------------------
# fnn.datasets


@entry("fnn.datasets.Dataset", datasets.Dataset, datasets.Dataset, r"Dataset")
def _(draw, env):
    return Call({"x_train": np.zeros((3, 2, 2), np.uint8), "y_train": np.arange(3),
                 "x_test": np.zeros((1, 2, 2), np.uint8), "y_test": np.arange(1), "class_names": ("a", "b")})


@entry("fnn.datasets.download", datasets.download, datasets.download, r"fnn\.datasets\.download",
       extra_errors=(OSError,))
def _(draw, env):
    src = env.dir / "blob.bin"
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    return Call({"url": src.as_uri(), "path": env.fresh(".bin"), "content_sha256": sha,
                 "max_bytes": 1 << 20, "timeout": 5.0})


for _name, _sub in (("mnist", "mnist"), ("fashion_mnist", "fashion")):
    _fn = getattr(datasets, _name)
    # download stays False and base_url local: a fuzz test never touches the network.
    entry(f"fnn.datasets.{_name}", _fn,
          lambda directory, _fn=_fn: _fn(directory, download=False, base_url="file:///nonexistent"),
          rf"fnn\.datasets\.{_name}|\b{_name}\b", extra_errors=(OSError,))(
        lambda draw, env, _sub=_sub: Call({"directory": env.dir / _sub}))

entry("fnn.datasets.read_idx", datasets.read_idx, datasets.read_idx, r"read_idx",
      extra_errors=(OSError,))(lambda draw, env: Call({"path": env.dir / "a.idx"}))
entry("fnn.datasets.write_idx", datasets.write_idx, datasets.write_idx, r"write_idx",
      extra_errors=(OSError,))(
    lambda draw, env: Call({"path": env.fresh(".idx"), "array": labels(draw, dim(draw), 9).astype(np.uint8)}))
entry("fnn.datasets.images_to_float", datasets.images_to_float, datasets.images_to_float,
      r"images_to_float")(lambda draw, env: Call({
          "x": np.random.default_rng(dim(draw)).integers(0, 256, (dim(draw), 3, 3)).astype(np.uint8),
          "layout": draw(st.sampled_from(["flat", "nhwc"])), "dtype": a_dtype(draw)}))
entry("fnn.datasets.linear_regression", datasets.linear_regression, datasets.linear_regression,
      r"linear_regression")(lambda draw, env: Call({"key": a_key(draw), "n": dim(draw, 1, 20), "low": 0,
                                                      "high": 10, "bias": 0.5, "dtype": a_dtype(draw)}))
entry("fnn.datasets.two_spirals", datasets.two_spirals, datasets.two_spirals, r"two_spirals")(
    lambda draw, env: Call({"key": a_key(draw), "n_per_class": dim(draw, 1, 10), "noise": 0.1,
                            "turns": 1.5, "dtype": a_dtype(draw)}))
entry("fnn.datasets.xor", datasets.xor, datasets.xor, r"\bxor\b")(
    lambda draw, env: Call({"dtype": a_dtype(draw)}))
entry("fnn.datasets.one_hot", datasets.one_hot, datasets.one_hot, r"one_hot")(
    lambda draw, env: Call({"labels": labels(draw, dim(draw), 3), "num_classes": 3, "dtype": a_dtype(draw)}))


@entry("fnn.datasets.train_val_split", datasets.train_val_split, datasets.train_val_split,
       r"train_val_split")
def _(draw, env):
    n = dim(draw, 2, 8)
    return Call({"x": farr(draw, (n, 2)), "y": labels(draw, n, 2), "val_fraction": draw(st.floats(0.1, 0.5)),
                 "key": a_key(draw)})


# ---------------------------------------------------------------------------
# fnn.testing: gradient checks (a failing check is a GradientCheckError) and strategies.


@entry("fnn.testing.check_layer", testing.check_layer, testing.check_layer, r"check_layer|Dense|Tanh",
       extra_errors=(testing.GradientCheckError,))
def _(draw, env):
    layer, _ = draw(st.sampled_from([Dense(2), Tanh()])).init(a_key(draw), (3,), np.dtype(np.float64))
    return Call({"layer": layer, "x": farr(draw, (2, 3), np.float64), "seed": 0, "n_directions": 1})


@entry("fnn.testing.check_loss", testing.check_loss, testing.check_loss, r"check_loss|mse",
       extra_errors=(testing.GradientCheckError,))
def _(draw, env):
    return Call({"loss_fn": losses.mse, "pred": farr(draw, (2, 3), np.float64),
                 "y": farr(draw, (2, 3), np.float64), "n_directions": 1})


@entry("fnn.testing.check_network", testing.check_network, testing.check_network, r"check_network",
       extra_errors=(testing.GradientCheckError,))
def _(draw, env):
    net = fnn.init([Dense(2), Tanh(), Dense(1)], (3,), key=a_key(draw), dtype=np.float64)
    return Call({"net": net, "x": farr(draw, (2, 3), np.float64), "y": farr(draw, (2, 1), np.float64),
                 "loss_fn": losses.mse, "n_directions": 1})


@entry("fnn.testing.check_vjp", testing.check_vjp, testing.check_vjp, r"check_vjp|\bvjp\b",
       extra_errors=(testing.GradientCheckError,))
def _(draw, env):
    return Call({"f": np.sin, "vjp": lambda x: (np.sin(x), lambda dy: dy * np.cos(x)),
                 "x": farr(draw, (2, 2), np.float64), "n_directions": 1})


@entry("fnn.testing.GradientReport", testing.GradientReport, testing.GradientReport, r"GradientReport")
def _(draw, env):
    return Call({"who": "me", "entries": (), "rtol": 1e-6, "atol": 1e-8})


for _name, _kw in (
    ("arrays", {"shape": (2, 3), "low": -1.0, "high": 1.0}),
    ("batch_sizes", {"max_size": 5}),
    ("shapes", {"min_rank": 1, "max_rank": 2}),
    ("dense_layers", {"max_units": 3}),
    ("networks", {"max_layers": 2}),
    ("elementwise_activations", {}),
):
    _fn = getattr(testing, _name)
    # Strategy factories: Hypothesis validates their arguments lazily, when drawn.
    entry(f"fnn.testing.{_name}", _fn, _fn, rf"\b{_name}\b")(lambda draw, env, _kw=_kw: Call(dict(_kw)))


# ---------------------------------------------------------------------------
# Issue 11 (sequence models): Embedding, PositionalEmbedding, LSTM, GRU, MultiHeadAttention,
# the recurrent layers' carry methods, and the orthogonal initialiser.

from fnn.layers import GRU, LSTM, Embedding, MultiHeadAttention, PositionalEmbedding  # noqa: E402

MESSAGE_GAPS.update({
    f"fnn.layers.{cls.__name__}.init": "Layer.init leaves key/in_shape/dtype checks to fnn.init"
    for cls in (Embedding, PositionalEmbedding, LSTM, GRU, MultiHeadAttention)
})


def _sequence(draw: Draw) -> tuple[int, int]:
    return (dim(draw, 1, 4), dim(draw, 1, 4))


for _spec in (
    LayerSpec(PositionalEmbedding, lambda d: {"max_len": dim(d, 4, 6)}, _sequence),
    LayerSpec(LSTM, lambda d: {"units": dim(d), "return_sequences": d(st.booleans()),
                               "forget_bias": d(st.floats(-1, 2))}, _sequence),
    LayerSpec(GRU, lambda d: {"units": dim(d), "return_sequences": d(st.booleans())}, _sequence),
    LayerSpec(MultiHeadAttention,
              lambda d: {"heads": dim(d, 1, 3), "key_dim": d(st.one_of(st.none(), st.integers(1, 3))),
                         "causal": d(st.booleans()), "use_bias": d(st.booleans())},
              lambda d: (dim(d, 1, 4), 6)),  # 6: every drawn head count divides it
):
    _add_layer_entries(_spec)


def _embedding_call(draw: Draw) -> dict[str, Any]:
    vocab, time, dtype = dim(draw, 1, 6), dim(draw), np.dtype(a_dtype(draw))
    layer, _ = Embedding(vocab, dim(draw)).init(a_key(draw), (time,), dtype)
    seed = draw(st.integers(0, 2**32 - 1))
    ids = np.random.default_rng(seed).integers(0, vocab, (dim(draw, 1, 4), time))
    ids = ids.astype(draw(st.sampled_from([np.int64, np.int32, np.uint8])))
    if draw(st.booleans()):
        ids.flags.writeable = False
    return {"layer": layer, "x": ids, "key": a_key(draw), "training": draw(st.booleans())}


def _embedding_dtype(kwargs: dict[str, Any], result: Any) -> None:
    """Embedding's output is in its parameters' dtype; its dx is None (ids have no gradient)."""
    if "dy" in kwargs:
        native = kwargs["dy"].dtype.newbyteorder("=")  # byte-swapped dy is read as native
        assert result[1] is None and result[0].w.dtype == native
        return
    y = result[0] if isinstance(result, tuple) else result
    assert isinstance(y, np.ndarray) and y.dtype == kwargs["layer"].w.dtype


_EMB, _EMB_WHO = "fnn.layers.Embedding", r"\bEmbedding\b"
entry(_EMB, Embedding, Embedding, _EMB_WHO)(
    lambda draw, env: Call({"vocab": dim(draw), "dim": dim(draw)}))
entry(f"{_EMB}.init", Embedding, lambda layer, key, in_shape, dtype: layer.init(key, in_shape, dtype),
      _EMB_WHO, member="init")(
    lambda draw, env: Call({"layer": Embedding(dim(draw), dim(draw)), "key": a_key(draw),
                            "in_shape": (dim(draw),), "dtype": np.dtype(a_dtype(draw))},
                           fixed=frozenset({"layer"})))
ENTRIES.append(Entry(f"{_EMB}.forward", Embedding, "forward",
                     lambda layer, x, key, training: layer.forward(x, key=key, training=training),
                     lambda draw, env: Call(_embedding_call(draw), fixed=frozenset({"layer"})),
                     _EMB_WHO, post=_embedding_dtype))
ENTRIES.append(Entry(f"{_EMB}.vjp", Embedding, "vjp",
                     lambda layer, x, key, training, need_dx: layer.vjp(
                         x, key=key, training=training, need_dx=need_dx),
                     lambda draw, env: Call(_embedding_call(draw) | {"need_dx": draw(st.booleans())},
                                            fixed=frozenset({"layer"})),
                     _EMB_WHO, post=_embedding_dtype))


def _embedding_pullback(draw: Draw, env: Env) -> Call:
    kw = _embedding_call(draw)
    y, pb = kw["layer"].vjp(kw["x"])
    return Call({"pullback": pb, "dy": farr(draw, y.shape, y.dtype)}, fixed=frozenset({"pullback"}),
                watch=(kw, y))


ENTRIES.append(Entry(f"{_EMB}.pullback", Embedding, "pullback", lambda pullback, dy: pullback(dy),
                     _embedding_pullback, _EMB_WHO, post=_embedding_dtype))


def _carry_call(draw: Draw, cls: type) -> dict[str, Any]:
    dtype = np.dtype(a_dtype(draw))
    time, d_in, batch = dim(draw), dim(draw), dim(draw)
    layer, _ = cls(dim(draw), return_sequences=draw(st.booleans())).init(a_key(draw), (time, d_in), dtype)
    carry = None
    if draw(st.booleans()):
        carry = tuple(farr(draw, (batch, layer.units), dtype) for _ in range(layer.carry_size))
    return {"layer": layer, "x": farr(draw, (batch, time, d_in), dtype), "carry": carry}


for _cls in (LSTM, GRU):
    _base = f"fnn.layers.{_cls.__name__}"
    _who = rf"\b{_cls.__name__}\b"
    entry(f"{_base}.forward_with_carry", _cls, lambda layer, x, carry: layer.forward_with_carry(x, carry),
          _who, member="forward_with_carry")(
        lambda draw, env, _cls=_cls: Call(_carry_call(draw, _cls), fixed=frozenset({"layer"})))
    entry(f"{_base}.vjp_with_carry", _cls,
          lambda layer, x, carry, need_dx: layer.vjp_with_carry(x, carry, need_dx=need_dx),
          _who, member="vjp_with_carry")(
        lambda draw, env, _cls=_cls: Call(_carry_call(draw, _cls) | {"need_dx": draw(st.booleans())},
                                          fixed=frozenset({"layer"})))

    def _carry_pullback(draw: Draw, env: Env, _cls: type = _cls) -> Call:
        kw = _carry_call(draw, _cls)
        y, final, pb = kw["layer"].vjp_with_carry(kw["x"], kw["carry"])
        dcarry = tuple(farr(draw, f.shape, f.dtype) for f in final) if draw(st.booleans()) else None
        return Call({"pullback": pb, "dy": farr(draw, y.shape, y.dtype), "dcarry": dcarry},
                    fixed=frozenset({"pullback"}), watch=(kw, y, final))

    entry(f"{_base}.carry_pullback", _cls, lambda pullback, dy, dcarry: pullback(dy, dcarry), _who,
          member="carry_pullback")(_carry_pullback)

entry("fnn.initializers.orthogonal", initializers.orthogonal, initializers.orthogonal,
      r"fnn\.initializers\.orthogonal\b")(
    lambda draw, env: Call({"key": a_key(draw), "shape": (dim(draw), dim(draw)),
                            "dtype": np.dtype(a_dtype(draw))}))


# ---------------------------------------------------------------------------
# fnn.distributed (issue 14). sweep is fuzzed on a thread pool (no cluster needed); the
# functions that need a running Dask cluster are exempt, their bad input is tested in
# tests/test_distributed.py.

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from fnn import distributed  # noqa: E402

EXEMPT.update({
    f"fnn.distributed.{name}": "needs a running Dask cluster (a Client); its bad input is "
    "tested in tests/test_distributed.py"
    for name in ("shard", "value_and_grad", "step", "fit")
})
EXEMPT["fnn.distributed.Shards"] = "holds futures of a running Dask cluster; built by shard()"
EXEMPT["fnn.distributed.SweepError"] = "an exception class"
EXEMPT["fnn.distributed.local_cluster"] = ("starts worker processes; its bad input is tested in "
                                           "tests/test_distributed.py")
_SWEEP_POOL = ThreadPoolExecutor(2)


def _sweep_train(config: Any, key: Any) -> Any:
    return np.sum(np.asarray(config, dtype=np.float64)) + key.path[-1]


@entry("fnn.distributed.sweep", distributed.sweep, distributed.sweep, r"fnn\.distributed\.sweep")
def _(draw, env):
    configs = [draw(st.integers(0, 9)) for _ in range(dim(draw, 0, 3))]
    return Call({"executor": _SWEEP_POOL, "configs": configs, "train_fn": _sweep_train,
                 "key": a_key(draw), "progress": False, "errors": "return",
                 "blas_threads": draw(st.sampled_from([None, 1]))})


@entry("fnn.distributed.Trial", distributed.Trial, distributed.Trial, r"Trial")
def _(draw, env):
    return Call({"index": dim(draw, 0, 3), "config": {"lr": 0.1}, "key": a_key(draw),
                 "value": draw(st.floats(0, 1)), "error": None, "traceback": None,
                 "seconds": draw(st.floats(0, 10))})


# ---------------------------------------------------------------------------
# issue 12: gradient transformations, the tree core, lr_find.

EXEMPT["fnn.optim.GradientTransformation"] = (
    "the abstract base; its protocol is fuzzed through every concrete transformation")
EXEMPT["fnn.tree.TreeDef"] = "made by fnn.tree.flatten (no public constructor); unflatten is fuzzed"


def _params_tree(draw: Draw) -> Any:
    if draw(st.booleans()):
        return small_net(draw, d_in=2, d_out=2)
    return {"w": farr(draw, (2, 3), np.float64), "b": farr(draw, (3,), np.float64)}


def _tx_pairs() -> list[tuple[str, Any, Any, Callable[[Draw], dict[str, Any]]]]:
    """(name, class, factory, kwargs) for every transformation with a factory."""
    lr = lambda d: {"lr": _lr(d)}  # noqa: E731
    return [
        ("scale", optim.Scale, optim.scale, lambda d: {"factor": d(st.floats(-2, 2))}),
        ("scale_by_learning_rate", optim.ScaleByLearningRate, optim.scale_by_learning_rate, lr),
        ("clip", optim.Clip, optim.clip, lambda d: {"max_delta": d(st.floats(0.1, 2))}),
        ("add_decayed_weights", optim.AddDecayedWeights, optim.add_decayed_weights,
         lambda d: {"weight_decay": d(st.floats(0, 0.1)), "mask": d(st.sampled_from([None, "['w']", "layers[0]"]))}),
        ("trace", optim.Trace, optim.trace,
         lambda d: {"momentum": d(st.floats(0, 0.9)), "nesterov": d(st.booleans())}),
        ("scale_by_adam", optim.ScaleByAdam, optim.scale_by_adam,
         lambda d: {"b1": d(st.floats(0, 0.9)), "b2": 0.999, "eps": 1e-8}),
        ("scale_by_rms", optim.ScaleByRms, optim.scale_by_rms, lambda d: {"decay": 0.9, "eps": 1e-8}),
        ("scale_by_adagrad", optim.ScaleByAdagrad, optim.scale_by_adagrad,
         lambda d: {"eps": 1e-10, "initial_accumulator": d(st.floats(0, 1))}),
        ("masked", optim.Masked, optim.masked,
         lambda d: {"inner": optim.scale(2.0), "mask": d(st.sampled_from(["['w']", lambda p: True]))}),
        ("multi_steps", optim.MultiSteps, optim.multi_steps,
         lambda d: {"inner": d(st.sampled_from([optim.scale_by_adam(), optim.sgd(0.1)])),
                    "every_k": dim(d, 1, 3)}),
        ("ema", optim.Ema, optim.ema, lambda d: {"decay": d(st.floats(0, 0.99))}),
        ("reduce_on_plateau", optim.ReduceOnPlateau, optim.reduce_on_plateau,
         lambda d: {"patience": dim(d, 0, 3), "factor": d(st.floats(0.1, 0.9))}),
        ("multi_transform", optim.MultiTransform, optim.multi_transform,
         lambda d: {"transforms": {"a": optim.scale(1.0), "b": optim.sgd(0.1)},
                    "labels": lambda p: "a" if p.endswith("w") else "b"}),
    ]


for _name, _cls, _fn, _kw in _tx_pairs():
    _who = rf"fnn\.optim\.{_name}|\b{_name}\b|{_cls.__name__}"
    entry(f"fnn.optim.{_name}", _fn, _fn, _who)(lambda draw, env, _kw=_kw: Call(_kw(draw)))
    entry(f"fnn.optim.{_cls.__name__}", _cls, _cls, _who)(lambda draw, env, _kw=_kw: Call(_kw(draw)))

entry("fnn.optim.Freeze", optim.Freeze, optim.Freeze, r"freeze|Freeze")(
    lambda draw, env: Call({"mask": draw(st.sampled_from(["layers[0]", lambda p: True]))}))
entry("fnn.optim.ClipByGlobalNorm", optim.ClipByGlobalNorm, optim.ClipByGlobalNorm,
      r"clip_by_global_norm")(lambda draw, env: Call({"max_norm": draw(st.floats(0.1, 10))}))
entry("fnn.optim.Chain", optim.Chain, optim.Chain, r"chain|Chain")(
    lambda draw, env: Call({"transforms": [optim.clip_by_global_norm(1.0), optim.scale(-0.1)]}))
entry("fnn.optim.Sgd", optim.Sgd, optim.Sgd, r"\bsgd\b")(
    lambda draw, env: Call({"momentum": draw(st.floats(0.1, 0.9)), "nesterov": draw(st.booleans())}))
entry("fnn.optim.RMSprop", optim.RMSprop, optim.RMSprop, r"rmsprop")(
    lambda draw, env: Call({"decay": 0.9, "eps": 1e-8, "momentum": draw(st.floats(0, 0.9))}))
for _cls, _name, _kw in (
    (optim.Constant, "constant", lambda d: {"lr": d(st.floats(1e-4, 1))}),
    (optim.StepDecay, "step_decay", lambda d: {"lr": 0.1, "step_size": dim(d), "factor": 0.5}),
    (optim.ExponentialDecay, "exponential_decay",
     lambda d: {"lr": 0.1, "decay_rate": 0.5, "decay_steps": dim(d), "staircase": False}),
    (optim.CosineDecay, "cosine_decay", lambda d: {"lr": 0.1, "total_steps": dim(d, 5, 9)}),
):
    entry(f"fnn.optim.{_cls.__name__}", _cls, _cls, rf"{_name}|{_cls.__name__}")(
        lambda draw, env, _kw=_kw: Call(_kw(draw)))
MESSAGE_GAPS["fnn.optim.ExponentialDecay"] = MESSAGE_GAPS["fnn.optim.exponential_decay"]

# The state classes: built by init(params), but constructible (and checked) by hand.
for _cls, _kw in (
    (optim.EmptyState, lambda d: {}),
    (optim.ScheduleState, lambda d: {"count": dim(d, 0, 5)}),
    (optim.TraceState, lambda d: {"momentum": _params_tree(d)}),
    (optim.ScaleByAdamState, lambda d: {"count": dim(d, 0, 5), "mu": _params_tree(d), "nu": _params_tree(d)}),
    (optim.ScaleByRmsState, lambda d: {"nu": _params_tree(d)}),
    (optim.ScaleByAdagradState, lambda d: {"sum_sq": _params_tree(d)}),
    (optim.MultiStepsState, lambda d: {"mini_step": dim(d, 0, 3), "acc": _params_tree(d), "inner": ()}),
    (optim.EmaState, lambda d: {"ema": _params_tree(d)}),
    (optim.ReduceOnPlateauState, lambda d: {"scale": d(st.floats(0, 1)), "best": d(st.floats(-1, 1)),
                                            "wait": dim(d, 0, 3), "cooldown_left": dim(d, 0, 3)}),
    (optim.OptimizerState, lambda d: {"count": dim(d, 0, 5), "inner": ()}),
):
    entry(f"fnn.optim.{_cls.__name__}", _cls, _cls, _cls.__name__)(
        lambda draw, env, _kw=_kw: Call(_kw(draw)))


def a_transformation(draw: Draw) -> Any:
    return draw(st.sampled_from([
        optim.chain(optim.clip_by_global_norm(1.0), optim.scale_by_adam(), optim.scale_by_learning_rate(0.1)),
        optim.multi_steps(optim.trace(0.9), 2),
        optim.chain(optim.freeze("layers[0]"), optim.add_decayed_weights(0.1), optim.scale_by_rms()),
        optim.chain(optim.scale(-0.1), optim.ema(0.9)),
    ]))


@entry("fnn.optim.GradientTransformation.update", optim.Chain,
       lambda tx, updates, state, params: tx.update(updates, state, params),
       r"fnn\.optim\.(chain|multi_steps)\.update", member="update")
def _(draw, env):
    tx = a_transformation(draw)
    net, x, y = net_data(draw)
    return Call({"tx": tx, "updates": fnn.grad(net, x, y, losses.mse), "state": tx.init(net),
                 "params": net}, fixed=frozenset({"tx"}))


@entry("fnn.optim.apply_updates", optim.apply_updates, optim.apply_updates, r"apply_updates")
def _(draw, env):
    p = _params_tree(draw)
    return Call({"params": p, "updates": like(draw, p)})


@entry("fnn.optim.observe", optim.observe, optim.observe, r"observe|reduce_on_plateau")
def _(draw, env):
    opt = optim.chain(optim.sgd(0.1), optim.reduce_on_plateau(1, 0.5))
    return Call({"opt": opt, "state": opt.init(small_net(draw)),
                 "logs": {"val_loss": draw(st.floats(0, 2))}}, fixed=frozenset({"opt"}))


@entry("fnn.optim.ema_params", optim.ema_params, optim.ema_params, r"ema_params")
def _(draw, env):
    opt = optim.chain(optim.sgd(0.1), optim.ema(0.9))
    return Call({"state": opt.init(small_net(draw))})


@entry("fnn.optim.migrate", optim.migrate, optim.migrate, r"migrate|\badam\b|OptimizerState")
def _(draw, env):
    net = small_net(draw)
    old = optim.OptState(dim(draw, 0, 5), {"mu": tree.zeros_like(net), "nu": tree.zeros_like(net)})
    return Call({"state": old, "opt": optim.adam(1e-3), "params": net}, fixed=frozenset({"opt"}))


@entry("fnn.train.lr_find", train.lr_find, train.lr_find,
       r"lr_find|fnn\.forward|fnn\.value_and_grad|sparse_softmax_cross_entropy|sgd|adam")
def _(draw, env):
    net = small_net(draw, d_out=3)
    n = dim(draw, 1, 6)
    return Call({"net": net, "opt_factory": draw(st.sampled_from([optim.sgd, optim.adam])),
                 "loss_fn": losses.sparse_softmax_cross_entropy,
                 "data": (farr(draw, (n, *net.input_shape), net.dtype), labels(draw, n, 3)),
                 "key": a_key(draw), "steps": dim(draw, 3, 6), "batch_size": dim(draw),
                 "min_lr": 1e-4, "max_lr": 1.0})


entry("fnn.train.LRFindResult", train.LRFindResult, train.LRFindResult, r"LRFindResult")(
    lambda draw, env: Call({"lrs": [1e-3, 1e-2], "losses": [1.0, 0.5], "smoothed": [1.0, 0.7],
                            "suggestion": 1e-2, "diverged": False}))
entry("fnn.tree.flatten", tree.flatten, tree.flatten, r"fnn\.tree\.flatten")(
    lambda draw, env: Call({"tree": a_tree(draw)}))
entry("fnn.tree.fields", tree.fields, tree.fields, r"fnn\.tree\.fields")(
    lambda draw, env: Call({"cls": draw(st.sampled_from([Dense, BatchNorm, fnn.Network]))}))
entry("fnn.tree.Node", tree.Node, tree.Node, r"Node")(
    lambda draw, env: Call({"kind": "leaf", "type": None, "keys": (), "state": (), "children": ()}))


@entry("fnn.tree.TreeDef.unflatten", tree.TreeDef, lambda treedef, leaves: treedef.unflatten(leaves),
       r"unflatten", member="unflatten")
def _(draw, env):
    leaves, td = tree.flatten(a_tree(draw))
    return Call({"treedef": td, "leaves": [a.copy() for a in leaves]}, fixed=frozenset({"treedef"}))


# ---------------------------------------------------------------------------
# issue 10: containers (as layers), surgery, check_pullback, the nested_layers strategy.

EXEMPT["fnn.layers.Container"] = (
    "the abstract base of containers; its protocol is fuzzed through Sequential, Residual, Parallel"
)


def _sequential_config(draw: Draw) -> dict[str, Any]:
    layers = [Dense(dim(draw)), Tanh(), Dense(dim(draw))]
    if draw(st.booleans()):
        layers[1:1] = [BatchNorm(), Dropout(draw(st.floats(0, 0.9)))]
    return {"layers": layers}


def _residual_config(draw: Draw) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"body": [LayerNorm(), Tanh()], "shortcut": None}
    units = dim(draw)
    return {"body": [Dense(units), Tanh(), Dropout(0.5)], "shortcut": Dense(units)}


def _parallel_config(draw: Draw) -> dict[str, Any]:
    merge = draw(st.sampled_from(["concat", "sum"]))
    a = dim(draw)
    b = a if merge == "sum" else dim(draw)
    return {"branches": [Dense(a), [Dense(b), Tanh()]], "merge": merge}


for _spec in (
    LayerSpec(fnn.Sequential, _sequential_config, lambda d: (dim(d),), min_batch=2),
    LayerSpec(fnn.Residual, _residual_config, lambda d: (dim(d),)),
    LayerSpec(fnn.Parallel, _parallel_config, lambda d: (dim(d),)),
):
    _add_layer_entries(_spec)


def _surgery_index(draw: Draw, net: fnn.Network, extra: int = 0) -> Any:
    i = draw(st.integers(0, len(net.layers) - 1 + extra))
    return draw(st.sampled_from([i, f"layers[{i}]"]))


@entry("fnn.replace", fnn.replace, fnn.replace, r"fnn\.replace")
def _(draw, env):
    net = small_net(draw)
    layer = draw(st.sampled_from([Dense(dim(draw)), Tanh(), fnn.Residual([Tanh()])]))
    return Call({"net": net, "path": _surgery_index(draw, net), "layer": layer,
                 "key": a_key(draw)})


@entry("fnn.insert", fnn.insert, fnn.insert, r"fnn\.insert")
def _(draw, env):
    net = small_net(draw)
    layer = draw(st.sampled_from([Dense(dim(draw)), Tanh(), fnn.Sequential([Identity()])]))
    return Call({"net": net, "index": _surgery_index(draw, net, extra=1), "layer": layer,
                 "key": a_key(draw)})


@entry("fnn.remove", fnn.remove, fnn.remove, r"fnn\.remove")
def _(draw, env):
    net = small_net(draw)
    return Call({"net": net, "index": _surgery_index(draw, net), "key": a_key(draw)})


@entry("fnn.layers.check_pullback", fnn.layers.check_pullback, fnn.layers.check_pullback,
       r"\bDense\b|check_pullback")
def _(draw, env):
    dtype = np.dtype(a_dtype(draw))
    layer, _ = Dense(dim(draw)).init(a_key(draw), (dim(draw),), dtype)
    x = farr(draw, (dim(draw), layer.w.shape[0]), dtype)
    y, pullback = layer.vjp(x)
    dlayer, dx = pullback(farr(draw, y.shape, dtype))
    return Call({"layer": layer, "dlayer": dlayer, "dx": dx, "x": x,
                 "need_dx": draw(st.booleans()), "who": "the pullback"})


entry("fnn.testing.nested_layers", testing.nested_layers, testing.nested_layers,
      r"\bnested_layers\b")(lambda draw, env: Call({"max_depth": draw(st.integers(0, 3))}))


# ---------------------------------------------------------------------------
# The tests.


def _public_objects() -> dict[str, object]:
    """Every public name (module-qualified) whose value is not a module."""
    out: dict[str, object] = {}
    for mod_name in PUBLIC_MODULES:
        mod = importlib.import_module(mod_name)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if not inspect.ismodule(obj):
                out[f"{mod_name}.{name}"] = obj
    return out


def test_every_public_name_has_an_entry():
    """Every public callable (and every layer's init, forward, vjp and pullback) has a fuzz entry,
    or is listed in EXEMPT with the reason; a new public name without one fails here."""
    covered = {(id(e.target), e.member) for e in ENTRIES}
    missing = []
    for name, obj in _public_objects().items():
        if name in EXEMPT or any(name.endswith("." + n.rsplit(".", 1)[1]) and
                                 _public_objects().get(n) is obj for n in EXEMPT):
            continue
        if (id(obj), None) not in covered:
            missing.append(name)
        if isinstance(obj, type) and issubclass(obj, Layer):
            missing += [f"{name}.{m}" for m in LAYER_MEMBERS if (id(obj), m) not in covered]
    assert not missing, f"public callables without a fuzz entry: {sorted(set(missing))}"
    names = [e.name for e in ENTRIES]
    assert len(names) == len(set(names)), "duplicate entry names"


def test_exemptions_are_public_names():
    """EXEMPT names only public names (a stale exemption would hide nothing)."""
    public = _public_objects()
    assert set(EXEMPT) <= set(public), sorted(set(EXEMPT) - set(public))


def _describe(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"array(shape={v.shape}, dtype={v.dtype})"
    text = repr(v)
    return text if len(text) < 80 else text[:77] + "..."


FUZZ_SETTINGS = settings(max_examples=12, suppress_health_check=list(HealthCheck), deadline=None)


# NumPy's floating-point settings each call runs under (drawn per example), always with
# warnings as errors: its defaults, and every error raising, underflow included.
ERRSTATES = {
    "default": {"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"},
    "raise": {"all": "raise"},
}


@contextlib.contextmanager
def errstate(mode: str) -> Iterator[None]:
    with np.errstate(**ERRSTATES[mode]), warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _extreme(v: Any) -> bool:
    """A value holding NaN, inf or a number beyond 1e30."""
    if isinstance(v, float | int) and not isinstance(v, bool):
        return not abs(v) < 1e30
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        return bool(v.size) and not (np.abs(v.astype(np.float64)) < 1e30).all()
    return False


def run_fuzz(entry: Entry, env: Env, data: st.DataObject) -> None:
    call = entry.build(data.draw, env)
    breakable = sorted(set(call.kwargs) - call.fixed)
    target = data.draw(st.sampled_from([None, *breakable]), label="broken argument")
    kwargs = dict(call.kwargs)
    if target is not None:
        kwargs[target] = data.draw(st.sampled_from(broken_values(kwargs[target], env)), label="value")
    mode = data.draw(st.sampled_from(sorted(ERRSTATES)), label="errstate")
    before = snapshot((kwargs, call.watch))
    where = "valid call" if target is None else f"{target}={_describe(kwargs[target])}"
    where += f", errstate {mode}"
    # NaN, inf and float max may propagate through arithmetic as IEEE 754 says (NumPy's
    # floating-point signals are then not failures); exceptions still are.
    ieee = np.errstate(all="ignore") if target and _extreme(kwargs[target]) else contextlib.nullcontext()
    # A huge int the caller passed (a size of 2**63) may honestly ask for too much memory.
    bad_value = kwargs.get(target)
    honest = (MemoryError,) if isinstance(bad_value, int) and abs(bad_value) > 2**31 else ()
    try:
        with errstate(mode), ieee:
            result = entry.run(**kwargs)
            if isinstance(result, Iterator):
                list(result)
        if entry.post is not None:
            entry.post(kwargs, result)
        bad = kwargs.get(target)
        if entry.rejects_nonfinite and isinstance(bad, np.ndarray) and bad.dtype.kind == "f":
            assert np.isfinite(bad).all(), f"{entry.name} accepted NaN/inf in {target}"
    except honest:
        pass
    except (ValueError, TypeError, *entry.extra_errors) as err:
        if target is None:
            raise AssertionError(f"{entry.name}: a valid call failed ({where})") from err
        assert entry.name in MESSAGE_GAPS or re.search(entry.who, str(err)), (
            f"{entry.name} ({where}): {type(err).__name__} does not name {entry.who!r}: {err}"
        )
    except Exception as err:  # anything else is a bug
        raise AssertionError(f"{entry.name} ({where}): {type(err).__name__}: {err}") from err
    assert snapshot((kwargs, call.watch)) == before, f"{entry.name} ({where}) changed an argument"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_public_callable(entry, env, data):
    """Valid calls succeed; broken calls succeed or raise ValueError/TypeError naming the
    function; no argument (or read-only flag) changes."""
    run_fuzz(entry, env, data)


@pytest.mark.slow
@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
@settings(max_examples=300, suppress_health_check=list(HealthCheck), deadline=None)
@given(data=st.data())
def test_fuzz_public_callable_thorough(entry, env, data):
    """The same properties with many more examples per callable."""
    run_fuzz(entry, env, data)


def test_broken_values_cover_every_kind():
    """The breaking table offers the promised kinds for an array: wrong rank, wrong shape,
    int, bool, object and complex dtypes, NaN and inf, empty, (n, 0), masked, float16,
    float64 beyond float32's range, a Python list and None; and for numbers, ints and
    floats beyond float range and a subnormal."""
    vals = _broken_arrays(np.ones((2, 3), np.float32))
    assert any(isinstance(v, np.ma.MaskedArray) for v in vals)
    assert any(isinstance(v, np.ndarray) and v.shape == (2, 0) for v in vals)
    assert any(isinstance(v, np.ndarray) and v.dtype == np.float16 for v in vals)
    assert any(isinstance(v, np.ndarray) and v.dtype == np.float64 and np.abs(v).max() > 1e39
               for v in vals)
    def has_int(values, n):
        return any(type(v) is int and v == n for v in values)

    floats = broken_values(0.1, None)
    assert has_int(floats, 10**400) and has_int(floats, 2**63) and 5e-324 in floats
    assert has_int(broken_values(3, None), -(10**400))
    kinds = {v.dtype.kind for v in vals if isinstance(v, np.ndarray)}
    assert {"i", "b", "O", "c", "f"} <= kinds
    assert any(isinstance(v, np.ndarray) and v.ndim == 3 for v in vals)
    assert any(isinstance(v, np.ndarray) and v.ndim == 1 for v in vals)
    assert any(isinstance(v, np.ndarray) and v.shape == (2, 4) for v in vals)
    assert any(isinstance(v, np.ndarray) and v.ndim and v.shape[0] == 0 for v in vals)
    floats = [v for v in vals if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    assert any(np.isnan(v).any() for v in floats) and any(np.isinf(v).any() for v in floats)
    assert None in vals and [[1.0] * 3] * 2 in [v for v in vals if isinstance(v, list)]


@pytest.mark.parametrize("kind", LAYOUTS)
def test_layouts_hold_the_same_values(kind):
    """Each layout the valid values are drawn in holds the values it was given, in the
    promised way: read-only, negative strides, swapped byte order, a subclass, np.matrix."""
    values = np.arange(6.0).reshape(2, 3)
    held = layout(lambda strategy: kind, values.copy())  # layout's only draw is the kind
    promised = {
        "plain": lambda v: type(v) is np.ndarray and v.flags.writeable,
        "readonly": lambda v: not v.flags.writeable,
        "reversed": lambda v: any(s < 0 for s in v.strides),
        "swapped": lambda v: not v.dtype.isnative,
        "subclass": lambda v: type(v) is Sub,
        "matrix": lambda v: isinstance(v, np.matrix),
    }
    assert promised[kind](held)
    np.testing.assert_array_equal(np.asarray(held), values)
