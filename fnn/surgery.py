"""Network surgery, all pure: `replace`, `insert` and `remove` layers by index or path.

Each function returns a new `fnn.Network`; the one passed in is untouched (its
layers and arrays are shared with the result where nothing changed). After
the edit the shapes are threaded through the whole network again, and a
layer is (re)initialised only when it must be:

- a layer whose parameters have the shapes (and dtype) that a fresh ``init``
  for its input shape would give **keeps its parameters** (so does every
  parameter-free layer, and every layer whose input shape did not change);
- a layer of the old network whose parameter shapes would change (its input
  shape changed, e.g. the ``Dense`` after a widened layer) is
  **re-initialised**;
- a new, unbuilt layer is **initialised**; a new layer that is already built
  (say, taken from another network) must fit where it goes, or the call
  raises.

Initialising needs ``key``: the ``n``-th layer met in depth-first order of
the new network (containers not counted, from 0) gets ``fold_in(key, n)``. The result is checked as
``fnn.init`` checks a network: a layer that cannot take what the layer
before it gives, or a container whose parts no longer fit together, raises
``ValueError`` naming its path and the shapes.

Example:
    >>> import fnn
    >>> net = fnn.init([fnn.Dense(8), fnn.ReLU(), fnn.Dense(10)], (4,), key=0)
    >>> new = fnn.replace(net, "layers[2]", fnn.Dense(3), key=1)   # a new head
    >>> new.output_shape, new.layers[0] is net.layers[0]
    ((3,), True)
    >>> wider = fnn.replace(net, 0, fnn.Dense(16), key=1)          # the head re-fits
    >>> wider.layers[2].w.shape, net.layers[2].w.shape
    ((16, 10), (8, 10))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fnn import _paths, tree
from fnn.layers._base import Layer, Shape, located
from fnn.layers.containers import Container
from fnn.network import Network
from fnn.random import Key, KeyLike, as_key, fold_in

__all__ = ["insert", "remove", "replace"]


def _check_network(who: str, net: object) -> Network:
    if not isinstance(net, Network):
        raise TypeError(f"{who}: expected an fnn.Network (from fnn.init), got {type(net).__name__}")
    return net


def _check_layer(who: str, layer: object) -> Layer:
    if not isinstance(layer, Layer):
        raise TypeError(
            f"{who}: the new layer must be an fnn layer such as fnn.Dense(10), got "
            f"{type(layer).__name__}; wrap a list of layers in fnn.Sequential([...])"
        )
    return layer


def _steps(who: str, where: object) -> tuple[_paths.Step, ...]:
    """An int index means ``layers[i]``; a string is a path."""
    if isinstance(where, bool):
        raise TypeError(f"{who}: the location must be an int or a path string, got a bool")
    if isinstance(where, int | np.integer):
        return ("layers", int(where))
    return _paths.parse(who, where)


def _old_shapes(net: Network) -> dict[int, Shape]:
    """``id(layer) -> input shape`` for every layer of ``net``, at any depth."""
    shapes: dict[int, Shape] = {}

    def walk(layer: Layer, shape: Shape) -> Shape:
        shapes[id(layer)] = shape
        if isinstance(layer, Container):
            return layer.thread_shapes(shape, lambda i, c, s: (c, walk(c, s)))[1]
        return layer.output_shape(shape)

    shape: Shape = net.input_shape
    for layer in net.layers:
        shape = walk(layer, shape)
    return shapes


def _layout(layer: Layer) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    return [(p, a.shape, a.dtype) for p, a in tree.leaves_with_path(layer)]


class _Refit:
    """Threads shapes through an edited network, keeping or (re)initialising each layer."""

    def __init__(
        self, who: str, old: Network, new_ids: set[int], key: Key | None, dtype: np.dtype
    ) -> None:
        self.who, self.key, self.dtype = who, key, dtype
        self.old_shapes = _old_shapes(old)
        self.new_ids = new_ids  # ids of the layers the caller passed in
        self.count = 0

    def layer(self, layer: Layer, shape: Shape) -> tuple[Layer, Shape]:
        if isinstance(layer, Container):
            return layer.thread_shapes(shape, lambda i, c, s: self.layer(c, s))
        n, self.count = self.count, self.count + 1
        if self.old_shapes.get(id(layer)) == shape and id(layer) not in self.new_ids:
            return layer, layer.output_shape(shape)  # untouched by the edit
        fresh, out = layer.init(
            fold_in(self.key if self.key is not None else as_key(0), n), shape, self.dtype
        )
        if layer.built and _layout(layer) == _layout(fresh):
            return layer, out  # its parameters still fit: keep them
        if layer.built and id(layer) in self.new_ids:
            raise ValueError(
                f"{layer.name}: this built layer's parameters "
                f"{[(p, s) for p, s, _ in _layout(layer)]} do not fit the input "
                f"{(None, *shape)} it gets here (a fresh init gives "
                f"{[(p, s) for p, s, _ in _layout(fresh)]} in {self.dtype}); pass an unbuilt "
                "layer to initialise it here"
            )
        if self.key is None:
            raise ValueError(
                f"{layer.name}: needs (re)initialising for its input {(None, *shape)}; "
                "pass key= (e.g. key=0) to initialise it"
            )
        return fresh, out

    def network(self, layers: tuple[Layer, ...], net: Network) -> Network:
        shape: Shape = net.input_shape
        built = []
        for i, layer in enumerate(layers):
            try:
                layer_i, shape = self.layer(layer, shape)
            except (ValueError, TypeError) as err:
                raise located(err, f"layers[{i}]", layer, self.who) from err
            built.append(layer_i)
        return Network(tuple(built), net.input_shape, net.dtype)


def _ids(layer: Layer) -> set[int]:
    out = {id(layer)}
    for _, child in layer.sublayers():
        out |= _ids(child)
    return out


def _edited(who: str, net: Network, layers: Any, new: Layer | None, key: KeyLike | None) -> Network:
    k = as_key(key, who) if key is not None else None
    new_ids = _ids(new) if new is not None else set()
    return _Refit(who, net, new_ids, k, net.dtype).network(tuple(layers), net)


def replace(net: Network, path: str | int, layer: Layer, *, key: KeyLike | None = None) -> Network:
    """``net`` with the layer at ``path`` replaced by ``layer``; a pure function.

    Args:
        net: a built network (unchanged).
        path: ``i`` for ``net.layers[i]``, or a path such as
            ``"layers[3].body.layers[1]"`` (as ``fnn.summary`` prints them), or
            ``"layers[3].shortcut"`` to give a Residual a projection.
        layer: the new layer, unbuilt (it is initialised for its input shape) or
            built (its parameters must fit there).
        key: initialises the new layer and re-initialises later layers whose
            parameter shapes change; see the module docstring. Needed only
            when something is initialised.

    Returns:
        The new network.

    Raises:
        TypeError: ``layer`` is not an fnn layer, or ``path`` is neither an int
            nor a string.
        ValueError: ``path`` does not name a layer, the network no longer fits
            together (names the path and the shapes), or a key is needed.

    Example:
        >>> import fnn
        >>> net = fnn.init([fnn.Dense(4), fnn.Residual([fnn.Dense(4)])], (3,), key=0)
        >>> new = fnn.replace(net, "layers[1].body.layers[0]", fnn.Dense(4), key=1)
        >>> new.layers[1].body.layers[0].w.shape, new.layers[0] is net.layers[0]
        ((4, 4), True)
    """
    who = "fnn.replace"
    net = _check_network(who, net)
    layer = _check_layer(who, layer)
    steps = _steps(who, path)
    old = _paths.get(who, net, steps)
    parent = _paths.get(who, net, steps[:-1]) if len(steps) > 1 else net
    shortcut = isinstance(parent, Container) and steps[-1] == "shortcut"
    if not isinstance(old, Layer) and not shortcut:
        raise ValueError(
            f"{who}: {_paths.render(steps)} is {type(old).__name__}, not a layer; name a layer "
            "such as 'layers[3]' or 'layers[3].body.layers[1]'"
        )
    edited = _paths.put(who, net, steps, layer)
    where = f"{who}: with {_paths.render(steps)} replaced by {layer.name}"
    return _edited(where, net, edited.layers, layer, key)


def _tuple_location(
    who: str, net: Network, where: object, inserting: bool
) -> tuple[tuple[_paths.Step, ...], tuple[Layer, ...], int]:
    """``(steps of the tuple, the tuple, index)`` for a location in a layers/branches tuple."""
    steps = _steps(who, where)
    if not isinstance(steps[-1], int):
        raise ValueError(
            f"{who}: {_paths.render(steps)} is not a position in a list of layers; name one "
            "such as 'layers[2]' or 'layers[3].body.layers[1]' (use fnn.replace to swap a "
            "Residual's body or shortcut)"
        )
    owner = _paths.get(who, net, steps[:-1])
    if not isinstance(owner, tuple):
        raise ValueError(
            f"{who}: {_paths.render(steps[:-1])} is {type(owner).__name__}, not a list of layers"
        )
    n, i = len(owner), steps[-1]
    lo, hi = (-n, n) if inserting else (-n, n - 1)
    if not lo <= i <= hi:
        raise ValueError(
            f"{who}: {_paths.render(steps)} is out of range: {_paths.render(steps[:-1])} holds "
            f"{n} layer{'s' if n != 1 else ''}, so the index must be in {lo}..{hi}"
        )
    return steps[:-1], owner, (i + n if i < 0 else i)


def insert(net: Network, index: int | str, layer: Layer, *, key: KeyLike | None = None) -> Network:
    """``net`` with ``layer`` inserted before position ``index``; a pure function.

    Args:
        net: a built network (unchanged).
        index: ``i`` inserts before ``net.layers[i]`` (``len(net.layers)``
            appends); a path such as ``"layers[3].body.layers[1]"`` inserts
            into that list of layers (a Sequential's ``layers`` or a
            Parallel's ``branches``).
        layer: the new layer (unbuilt, or built and fitting there).
        key: initialises the new layer and re-initialises later layers whose
            parameter shapes change; see the module docstring.

    Returns:
        The new network.

    Raises:
        TypeError: ``layer`` is not an fnn layer.
        ValueError: ``index`` out of range (names the range), the network no
            longer fits together (names the path and the shapes), or a key is
            needed.

    Example:
        >>> import fnn
        >>> net = fnn.init([fnn.Dense(4), fnn.Dense(2)], (3,), key=0)
        >>> new = fnn.insert(net, 1, fnn.ReLU())
        >>> [layer.name for layer in new.layers]
        ['Dense(units=4)', 'ReLU', 'Dense(units=2)']
    """
    who = "fnn.insert"
    net = _check_network(who, net)
    layer = _check_layer(who, layer)
    owner_steps, owner, i = _tuple_location(who, net, index, inserting=True)
    items = (*owner[:i], layer, *owner[i:])
    edited = _paths.put(who, net, owner_steps, items)
    where = f"{who}: with {layer.name} inserted at {_paths.render((*owner_steps, i))}"
    return _edited(where, net, edited.layers, layer, key)


def remove(net: Network, index: int | str, *, key: KeyLike | None = None) -> Network:
    """``net`` without the layer at ``index``; a pure function.

    Args:
        net: a built network (unchanged).
        index: ``i`` removes ``net.layers[i]``; a path such as
            ``"layers[3].body.layers[1]"`` removes from that list of layers.
        key: re-initialises later layers whose parameter shapes change (a
            ``ValueError`` says when one is needed).

    Returns:
        The new network.

    Raises:
        ValueError: ``index`` out of range, the last layer of a list (a
            network or container needs one), or a network that no longer
            fits together (names the path and the shapes).

    Example:
        >>> import fnn
        >>> net = fnn.init([fnn.Dense(4), fnn.Dropout(0.5), fnn.Dense(2)], (3,), key=0)
        >>> [layer.name for layer in fnn.remove(net, 1).layers]
        ['Dense(units=4)', 'Dense(units=2)']
    """
    who = "fnn.remove"
    net = _check_network(who, net)
    owner_steps, owner, i = _tuple_location(who, net, index, inserting=False)
    if len(owner) == 1:
        raise ValueError(
            f"{who}: {_paths.render((*owner_steps, i))} is the only layer of "
            f"{_paths.render(owner_steps)}; a network or container needs at least one "
            "(remove or replace the container itself)"
        )
    items = (*owner[:i], *owner[i + 1 :])
    edited = _paths.put(who, net, owner_steps, items)
    where = f"{who}: with {_paths.render((*owner_steps, i))} ({owner[i].name}) removed"
    return _edited(where, net, edited.layers, None, key)
