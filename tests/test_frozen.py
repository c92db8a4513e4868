"""Copies and pickles keep fnn's arrays read-only and bit-identical (fnn._frozen).

NumPy arrays come back writeable from ``copy.deepcopy`` and from pickle
protocols 0-4 (Dask pickles with 4); fnn's base classes rebuild their values
with read-only arrays. These tests round-trip every layer kind, nested
structures and optimizer states through every protocol and through deepcopy.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from typing import Any, NamedTuple

import attrs
import numpy as np
import pytest

import fnn
from fnn import layers, optim, tree
from fnn._frozen import freeze_arrays, readonly_reduce_ex
from fnn.optim import base as optim_base

PROTOCOLS = list(range(pickle.HIGHEST_PROTOCOL + 1))


def _round_trips() -> list[tuple[str, Any]]:
    """(name, copier) for every way a value is copied: deepcopy and each pickle protocol."""
    out: list[tuple[str, Any]] = [("deepcopy", copy.deepcopy)]
    out += [(f"pickle-{p}", lambda v, p=p: pickle.loads(pickle.dumps(v, protocol=p)))
            for p in PROTOCOLS]

    def out_of_band(v: Any) -> Any:  # protocol 5 with buffers sent apart, as Dask does
        buffers: list[pickle.PickleBuffer] = []
        data = pickle.dumps(v, protocol=5, buffer_callback=buffers.append)
        return pickle.loads(data, buffers=[bytearray(b.raw()) for b in buffers])

    out.append(("pickle-5-out-of-band", out_of_band))
    return out


ROUND_TRIPS = _round_trips()

# One built network per family, together covering every layer class fnn exports.
NETWORKS: dict[str, Any] = {
    "mlp": lambda dt: fnn.init(
        [fnn.Dense(5), fnn.ReLU(), fnn.Dense(4, use_bias=False), fnn.LeakyReLU(0.1), fnn.ELU(),
         fnn.GELU(), fnn.Tanh(), fnn.Sigmoid(), fnn.Identity(), fnn.LayerNorm(),
         fnn.BatchNorm(), fnn.Dropout(0.3), fnn.Dense(3), fnn.Softmax()],
        (6,), key=1, dtype=dt),
    "cnn": lambda dt: fnn.init(
        [fnn.Reshape((6, 6, 1)), fnn.Conv2D(3, 3, padding="same"), fnn.BatchNorm(),
         fnn.MaxPool2D(2), fnn.Conv2D(2, 2), fnn.AvgPool2D(1), fnn.GlobalAvgPool2D(),
         fnn.Flatten(), fnn.Dense(2)],
        (36,), key=2, dtype=dt),
    "seq": lambda dt: fnn.init(
        [fnn.PositionalEmbedding(8), fnn.LSTM(4), fnn.GRU(4, return_sequences=True),
         fnn.MultiHeadAttention(2), fnn.LayerNorm(), fnn.Dense(3)],
        (5, 4), key=3, dtype=dt),
    "nested": lambda dt: fnn.init(
        [fnn.Sequential([fnn.Dense(4), fnn.Residual([fnn.Dense(4), fnn.Tanh()])]),
         fnn.Parallel([fnn.Dense(3), [fnn.Dense(2), fnn.ReLU()]], merge="concat"),
         fnn.Residual([fnn.Dense(3)], shortcut=fnn.Dense(3))],
        (6,), key=4, dtype=dt),
}
# Embedding takes integer ids: it is round-tripped in a network of its own below.
LAYER_ONLY = {fnn.Embedding}


def _all_arrays_readonly(t: Any) -> bool:
    return all(not a.flags.writeable for a in tree.leaves(t))


def _bit_identical(a: Any, b: Any) -> bool:
    tree.check_same_structure(a, b)
    return all(
        x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        for x, y in zip(tree.leaves(a), tree.leaves(b), strict=True)
    )


@pytest.mark.parametrize("how,copier", ROUND_TRIPS, ids=[n for n, _ in ROUND_TRIPS])
@pytest.mark.parametrize("family", sorted(NETWORKS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_network_round_trip_is_readonly_and_bit_identical(how, copier, family, dtype):
    """A network copied or unpickled has read-only arrays equal bit for bit to the original's,
    the same layer classes and configuration, and computes the same outputs."""
    net = NETWORKS[family](dtype)
    back = copier(net)
    assert back is not net
    assert _all_arrays_readonly(back), how
    assert _bit_identical(back, net)
    assert [type(a) for a in back.layers] == [type(a) for a in net.layers]
    assert back.input_shape == net.input_shape and back.dtype == net.dtype
    for a, b in zip(back.layers, net.layers, strict=True):
        for f in attrs.fields(type(a)):
            value = getattr(a, f.name)
            holds_layers = isinstance(value, fnn.Layer) or (
                isinstance(value, tuple | list) and any(isinstance(v, fnn.Layer) for v in value)
            )  # a container's children: compared by the tree and output checks here
            if not isinstance(value, np.ndarray) and not holds_layers:
                assert value == getattr(b, f.name), f.name
    x = np.random.default_rng(0).normal(size=(3, *net.input_shape)).astype(dtype)
    assert fnn.forward(back, x).tobytes() == fnn.forward(net, x).tobytes()
    with pytest.raises(ValueError, match="read-only"):
        next(a for a in tree.leaves(back))[...] = 0


def test_every_exported_layer_is_covered_and_inherits_the_hook():
    """Every layer class fnn exports gets the hook from fnn.Layer (no class overrides it)
    and appears in a round-tripped network above."""
    exported = {
        obj for name in layers.__all__
        if inspect.isclass(obj := getattr(layers, name)) and issubclass(obj, layers.Layer)
        and obj not in (layers.Layer, layers.Container)  # abstract bases
    }
    assert exported
    for cls in exported:
        assert cls.__reduce_ex__ is readonly_reduce_ex, cls.__name__
    seen = {type(layer) for make in NETWORKS.values() for layer in make(np.float32).layers}
    seen |= LAYER_ONLY
    assert exported <= seen, f"add these layers to NETWORKS: {sorted(c.__name__ for c in exported - seen)}"


@pytest.mark.parametrize("how,copier", ROUND_TRIPS, ids=[n for n, _ in ROUND_TRIPS])
def test_embedding_round_trip_is_readonly_and_bit_identical(how, copier):
    """An Embedding layer copied or unpickled keeps read-only, bit-identical weights."""
    layer, _ = fnn.Embedding(7, 3).init(0, (4,), np.float32)
    back = copier(layer)
    assert back is not layer and _all_arrays_readonly(back) and _bit_identical(back, layer)
    ids = np.array([[0, 6, 6, 2]])
    assert back.forward(ids).tobytes() == layer.forward(ids).tobytes()


@attrs.frozen(eq=False)
class Pair(fnn.Layer):
    """A tiny container layer: two layers applied one after the other."""

    first: fnn.Layer
    second: fnn.Layer

    def init(self, key, in_shape, dtype):
        a, shape = self.first.init(fnn.random.fold_in(key, 0), in_shape, dtype)
        b, shape = self.second.init(fnn.random.fold_in(key, 1), shape, dtype)
        return Pair(a, b), shape

    def output_shape(self, in_shape):
        return self.second.output_shape(self.first.output_shape(in_shape))

    def forward(self, x, *, key=None, training=False):
        return self.second.forward(self.first.forward(x))


@pytest.mark.parametrize("how,copier", ROUND_TRIPS, ids=[n for n, _ in ROUND_TRIPS])
def test_nested_structures_round_trip(how, copier):
    """Layers inside a container layer, networks inside dicts, lists and tuples, and an
    optimizer state whose buffers are networks all come back read-only and bit-identical;
    an array shared by two places is still shared afterwards. (A bare array in a plain
    dict is NumPy's own business: it comes back as NumPy makes it.)"""
    net = fnn.init([Pair(fnn.Dense(3), Pair(fnn.BatchNorm(), fnn.Dense(2)))], (4,), key=3,
                   dtype=np.float64)
    state = optim.adam(1e-2).init(net)
    shared = net.layers[0].first.w
    value = {"net": net, "state": state, "list": [net, (state, shared)], "also": shared}
    back = copier(value)
    assert _all_arrays_readonly([back["net"], back["state"], back["list"][0], back["list"][1][0]])
    assert _bit_identical(back, value)
    assert type(back["net"].layers[0].second) is Pair
    assert np.shares_memory(back["also"], back["net"].layers[0].first.w)
    x = np.linspace(-1, 1, 8).reshape(2, 4)
    assert np.array_equal(fnn.forward(back["net"], x), fnn.forward(net, x))


@pytest.mark.parametrize("how,copier", ROUND_TRIPS, ids=[n for n, _ in ROUND_TRIPS])
@pytest.mark.parametrize("make", [optim.sgd(0.1, momentum=0.9), optim.adam(1e-3),
                                  optim.rmsprop(1e-3), optim.adagrad(0.1)],
                         ids=["sgd-momentum", "adam", "rmsprop", "adagrad"])
def test_optimizer_states_round_trip(how, copier, make):
    """An optimizer state after a few updates (count and buffers) round-trips read-only and
    bit-identical, and the next update from the copy equals the next update from the original."""
    net = NETWORKS["mlp"](np.float64)
    x = np.random.default_rng(1).normal(size=(4, 6))
    y = np.random.default_rng(2).normal(size=(4, 3))
    state = make.init(net)
    for _ in range(2):
        grads = fnn.grad(net, x, y, fnn.losses.mse, key=0)
        net, state = make.update(grads, state, net)
    back = copier(state)
    assert type(back) is type(state) and int(back.count) == 2
    assert _all_arrays_readonly(back) and _bit_identical(back, state)
    grads = fnn.grad(net, x, y, fnn.losses.mse, key=0)
    assert _bit_identical(make.update(grads, back, net), make.update(grads, state, net))


def test_every_exported_state_class_inherits_the_hook():
    """Every transformation-state class fnn.optim exports gets the hook from fnn.optim.State
    (or sets it itself), so a state gathered through Dask or deep-copied stays read-only."""
    states = [
        obj for name in optim.__all__
        if inspect.isclass(obj := getattr(optim, name)) and attrs.has(obj)
        and (issubclass(obj, optim_base.State) or obj is optim.OptState)
    ]
    assert len(states) >= 8
    for cls in states:
        assert cls.__reduce_ex__ is readonly_reduce_ex, cls.__name__


def test_plain_trees_in_an_opt_state_are_frozen_too():
    """An optimizer state over a plain dict of arrays (no fnn classes inside) comes back with
    read-only buffers: the hook freezes arrays inside plain containers."""
    params = {"a": np.ones(3), "b": [np.zeros((2, 2))]}
    state = optim.adam(0.1).init(params)
    for _, copier in ROUND_TRIPS:
        assert _all_arrays_readonly(copier(state))


def test_shallow_copy_shares_arrays_and_never_changes_flags():
    """copy.copy gives a new value holding the very same read-only arrays; the hook never
    changes the flags of an array somebody else holds."""
    net = NETWORKS["mlp"](np.float32)
    shallow = copy.copy(net.layers[0])
    assert shallow is not net.layers[0] and shallow.w is net.layers[0].w
    mine = np.ones(3)
    frozen = freeze_arrays({"x": mine, "t": (mine, 1, "s")})
    assert mine.flags.writeable  # the caller's array is untouched
    assert not frozen["x"].flags.writeable and np.shares_memory(frozen["x"], mine)
    assert frozen["t"][1:] == (1, "s")


def test_attrs_values_without_the_hook_are_frozen_inside_hooked_ones():
    """A user's own attrs class (no hook) holding arrays, kept inside an OptState, comes back
    with read-only arrays; values without arrays come back equal."""

    state = optim.OptState(np.int64(1), {"mu": UserParams(np.ones(2), "tag")})
    for _, copier in ROUND_TRIPS:
        back = copier(state)
        assert not back.slots["mu"].w.flags.writeable and back.slots["mu"].name == "tag"
    k = fnn.random.fold_in(fnn.random.key(3), 4)
    assert pickle.loads(pickle.dumps(k, protocol=2)) == k


@attrs.frozen(eq=False)
class UserParams:
    """A user-defined attrs params tree without fnn's hook."""

    w: np.ndarray
    name: str


def test_non_attrs_subclass_falls_back_to_default_pickling():
    """A Layer subclass that is not itself an attrs class is not rebuilt from the base's
    fields: it pickles the way Python (and attrs' inherited __getstate__) would."""
    for p in PROTOCOLS:
        back = pickle.loads(pickle.dumps(PlainLayer(), protocol=p))
        assert type(back) is PlainLayer
        assert back.name == "PlainLayer"


class PlainLayer(fnn.Layer):
    """Not decorated with attrs (it has no fields of its own)."""


class ScaleState(NamedTuple):
    """An Optax-style transformation state: a named tuple with the one-line hook."""

    count: np.ndarray
    mu: Any
    __reduce_ex__ = readonly_reduce_ex


@dataclasses.dataclass(frozen=True)
class EmaState:
    """A dataclass state with the one-line hook."""

    decay: float
    average: Any
    __reduce_ex__ = readonly_reduce_ex


class BareState(NamedTuple):
    """A named tuple without the hook."""

    mu: Any


@pytest.mark.parametrize("how,copier", ROUND_TRIPS, ids=[n for n, _ in ROUND_TRIPS])
def test_one_line_hook_for_new_state_classes(how, copier):
    """A named tuple or a dataclass holding arrays (and networks) comes back read-only and
    bit-identical once its class body has the line ``__reduce_ex__ = readonly_reduce_ex``;
    one without the hook is frozen too when it sits inside an OptState."""
    net = NETWORKS["mlp"](np.float64)
    for value in (ScaleState(np.int64(3) + np.zeros((), np.int64), {"w": np.ones(2), "net": net}),
                  EmaState(0.9, [np.arange(3.0), net])):
        back = copier(value)
        assert type(back) is type(value)
        fields = lambda v: list(v) if isinstance(v, tuple) else [v.decay, v.average]  # noqa: E731
        assert tree.size(fields(back)) > 3  # fnn.tree walks the fields, so the checks see arrays
        assert _all_arrays_readonly(fields(back)) and _bit_identical(fields(back), fields(value))
    inside = copier(optim.OptState(np.int64(0), {"mu": BareState(np.ones(2))}))
    assert type(inside.slots["mu"]) is BareState and _all_arrays_readonly(inside)
