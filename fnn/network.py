"""Network values and the pure functions over them: init, forward, loss, grad, sgd_step.

A `Network` is a frozen tuple of built layers plus the input shape and
dtype it was built for. ``grad`` returns a ``Network`` of the same structure
whose arrays are partial derivatives, so every optimizer is a map over trees.

Example:
    >>> import numpy as np, fnn
    >>> net = fnn.init([fnn.Dense(3), fnn.Tanh(), fnn.Dense(1)], (2,), key=0)
    >>> x, y = np.zeros((4, 2), np.float32), np.ones((4, 1), np.float32)
    >>> g = fnn.grad(net, x, y, fnn.losses.mse)
    >>> g.layers[0].w.shape
    (2, 3)
    >>> new = fnn.sgd_step(net, g, lr=0.1)
    >>> fnn.loss(new, x, y, fnn.losses.mse) < fnn.loss(net, x, y, fnn.losses.mse)
    True
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any, TypeVar, overload

import attrs
import numpy as np

from fnn import _arrays, _paths, parallel, tree
from fnn._diagnose import shape_hint
from fnn._frozen import readonly_reduce_ex
from fnn.layers._base import (
    Array,
    Layer,
    Pullback,
    Shape,
    check_pullback,
    join_path,
    located,
    pullback_checked,
    runs_per_example,
)
from fnn.layers.containers import Container, NonFiniteInside, finite_checks
from fnn.layers.conv import Conv2D
from fnn.losses import Loss
from fnn.random import Key, KeyLike, as_key, fold_in, part_of_batch

__all__ = [
    "Activations",
    "Network",
    "activations",
    "forward",
    "grad",
    "init",
    "loss",
    "sgd_step",
    "summary",
    "value_and_grad",
]

E = TypeVar("E", bound=Exception)


def _layers_tuple(value: object) -> tuple[Layer, ...]:
    if not isinstance(value, tuple | list):
        raise TypeError(f"Network: layers must be a list or tuple of layers, got {value!r}")
    for i, layer in enumerate(value):
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Network: layers[{i}] is {type(layer).__name__}, not an fnn layer; "
                "layers subclass fnn.Layer (e.g. fnn.Dense(10), fnn.ReLU())"
            )
    return tuple(value)


def _int_tuple(value: Sequence[int]) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and v > 0 for v in value
    ):
        raise TypeError(f"Network: input_shape must be a tuple of positive ints, got {value!r}")
    return tuple(int(v) for v in value)


def _float_dtype(value: object) -> np.dtype:
    return _arrays.compute_dtype("Network", value)


@attrs.frozen(eq=False)
class Network:
    """An immutable network: a tuple of built layers, the input shape and the dtype.

    Build one with `init`. A network is also a tree (``fnn.tree``), so
    gradients, optimizer states and checkpoints share its structure.

    Attributes:
        layers: the built layers, in order.
        input_shape: the shape of one example (batch axis excluded).
        dtype: the parameters' floating dtype; inputs are cast to it.
    """

    layers: tuple[Layer, ...] = attrs.field(converter=_layers_tuple)
    input_shape: tuple[int, ...] = attrs.field(converter=_int_tuple)
    dtype: np.dtype = attrs.field(converter=_float_dtype)
    __reduce_ex__ = readonly_reduce_ex  # copies and pickles keep arrays read-only

    @property
    def output_shape(self) -> Shape:
        """The shape of one output (batch axis excluded)."""
        shape: Shape = self.input_shape
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def __len__(self) -> int:
        """The number of top-level layers."""
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        """The top-level layers, in order."""
        return iter(self.layers)

    @overload
    def __getitem__(self, index: int) -> Layer: ...

    @overload
    def __getitem__(self, index: slice) -> Network: ...

    @overload
    def __getitem__(self, index: str) -> Any: ...

    def __getitem__(self, index: int | slice | str) -> Any:
        """``net[i]``: layer ``i``; ``net[a:b]``: a `Network` of those layers; ``net[path]``.

        A slice is a network of its own whose input shape is the output shape
        of the layers before it, so ``forward(net[k:], forward(net[:k], x))``
        equals ``forward(net, x)`` bit for bit (in training mode random layers
        get keys by position, which a slice renumbers). A path string such as
        ``"layers[3].body.layers[1]"`` (as ``fnn.summary`` and ``fnn.tree``
        print them) gives the layer or array there.

        Raises:
            ValueError: an index, slice bound or path out of range, an empty
                slice or a slice with a step; names the path and the range.
            TypeError: an index of another kind.

        Example:
            >>> import fnn
            >>> net = fnn.init([fnn.Dense(4), fnn.ReLU(), fnn.Dense(2)], (3,), key=0)
            >>> net[0].name, net[1:].input_shape, net["layers[2].w"].shape
            ('Dense(units=4)', (4,), (4, 2))
        """
        who = "Network"
        if isinstance(index, str):
            return _paths.get(who, self, _paths.parse(who, index))
        if isinstance(index, slice):
            return _slice(self, index)
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(
                f"{who}: index with an int (a layer), a slice (a sub-network) or a path string "
                f"such as 'layers[3].body', got {type(index).__name__}"
            )
        return _paths.get(who, self, ("layers", int(index)))


def _with_layers(net: Network, layers: tuple[Layer, ...]) -> Network:
    """``net`` with other layers of the same classes (no re-validation: hot path)."""
    new = object.__new__(Network)
    object.__setattr__(new, "layers", layers)
    object.__setattr__(new, "input_shape", net.input_shape)
    object.__setattr__(new, "dtype", net.dtype)
    return new


def _bound(who: str, value: object, n: int, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{who}: slice bounds must be ints, got {what} {value!r}")
    if not -n <= int(value) <= n:
        raise ValueError(
            f"{who}: slice {what} {value} is out of range for a network of {n} layers "
            f"(use -{n} to {n})"
        )
    return int(value)


def _slice(net: Network, s: slice) -> Network:
    """``net[s]``: the layers of ``s`` as a network taking what the layers before give."""
    who = "Network"
    n = len(net.layers)
    if s.step not in (None, 1):
        raise ValueError(f"{who}: a slice of a network takes consecutive layers, got step {s.step}")
    start, stop = _bound(who, s.start, n, "start"), _bound(who, s.stop, n, "stop")
    lo, hi, _ = slice(start, stop).indices(n)
    if lo >= hi:
        raise ValueError(
            f"{who}: the slice [{'' if start is None else start}:{'' if stop is None else stop}] "
            f"selects no layers of the {n}; a network needs at least one"
        )
    shape: Shape = net.input_shape
    for layer in net.layers[:lo]:
        shape = layer.output_shape(shape)
    return Network(net.layers[lo:hi], shape, net.dtype)


def _where(i: int, layer: Layer) -> str:
    return f"layers[{i}] ({layer.name})"


def _at(who: str, err: E, i: int, layer: Layer) -> E:
    """The same kind of error, located at ``layers[i]`` (or deeper) and named by ``who``."""
    return located(err, f"layers[{i}]", layer, who)


def _check_dtype_arg(dtype: object) -> np.dtype:
    return _arrays.compute_dtype("fnn.init", dtype)  # float32 or float64; float16 refused


def _check_shape_arg(input_shape: object) -> Shape:
    if isinstance(input_shape, int) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    if not isinstance(input_shape, tuple | list) or not all(
        isinstance(d, int | np.integer) and not isinstance(d, bool) and d > 0 for d in input_shape
    ):
        raise ValueError(
            f"fnn.init: input_shape must be a tuple of positive ints without the batch axis, "
            f"got {input_shape!r}; e.g. (784,) for MNIST vectors or (28, 28, 1) for images"
        )
    return tuple(int(d) for d in input_shape)


def init(
    layers: Sequence[Layer],
    input_shape: Shape | int,
    key: KeyLike,
    dtype: type | np.dtype | str = np.float32,
) -> Network:
    """Build every layer's parameters for inputs of ``(batch, *input_shape)``.

    Shapes are inferred layer by layer from ``input_shape`` (the batch axis is
    left out), so nobody computes a flatten size by hand. Layer ``i`` gets the
    key ``fold_in(key, i)``: the same key gives bit-identical parameters.

    Args:
        layers: unbuilt layers such as ``[Dense(32), ReLU(), Dense(10)]``.
        input_shape: one example's shape, e.g. ``(784,)``.
        key: an ``fnn.random.Key`` or an int seed.
        dtype: the floating dtype of every parameter (float32 by default).

    Returns:
        The built `Network`.

    Raises:
        TypeError: a layer is not an fnn layer, or dtype is not floating.
        ValueError: a layer cannot take its input shape; names the layer.

    Example:
        >>> import fnn
        >>> net = fnn.init([fnn.Flatten(), fnn.Dense(10)], (28, 28, 1), key=0)
        >>> net.layers[1].w.shape
        (784, 10)
    """
    layers_t = _layers_tuple(layers)
    shape = _check_shape_arg(input_shape)
    dt = _check_dtype_arg(dtype)
    k = as_key(key, "fnn.init")
    built = []
    for i, layer in enumerate(layers_t):
        try:
            layer_i, shape = layer.init(fold_in(k, i), shape, dt)
        except (ValueError, TypeError) as err:
            raise _at("fnn.init", err, i, layer) from err
        built.append(layer_i)
    return Network(tuple(built), _check_shape_arg(input_shape), dt)


def _check_network(who: str, net: object) -> Network:
    if not isinstance(net, Network):
        raise TypeError(f"{who}: expected an fnn.Network (from fnn.init), got {type(net).__name__}")
    return net


def _dims(shape: Shape) -> str:
    return ", ".join(map(str, shape))


def prepare_input(who: str, net: Network, x: object, check_values: bool = True) -> Array:
    """Check ``x`` against the network and cast it to the network's dtype.

    Integer and floating inputs are cast to ``net.dtype`` (so uint8 images and
    float64 data go straight in); anything else is a ``TypeError``. A network
    whose first layer takes integer ids (``Embedding``) keeps ``x`` as it is and
    refuses non-integer ``x``. With
    ``check_values=False`` the NaN/inf scan is skipped (for callers that
    checked the whole data set once, such as ``fit``).
    """
    if (  # the common case, every step: a batch of the network's dtype and shape
        type(x) is np.ndarray
        and x.dtype is net.dtype
        and x.shape[1:] == net.input_shape
        and x.ndim
        and x.shape[0]
        and not (net.layers and net.layers[0].reads_ids())
    ):
        if check_values and not _arrays.all_finite(x):  # (cast_finite's check and message)
            _arrays.cast_finite(who, "x", x, net.dtype)
        return x
    x = _arrays.plain(who, "x", x)
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{who}: x must be a NumPy array of shape (batch, {_dims(net.input_shape)}), "
            f"got {type(x).__name__}; use np.asarray(x, dtype=np.{net.dtype})"
        )
    ids = bool(net.layers) and net.layers[0].reads_ids()
    if ids and x.dtype.kind not in "iu":
        raise TypeError(
            f"{who}: x has dtype {x.dtype}, but the network's first layer "
            f"({net.layers[0].name}) takes integer ids; pass x.astype(np.int64)"
        )
    if x.dtype.kind not in "fiu":
        raise TypeError(
            f"{who}: x has dtype {x.dtype}; fnn takes real numbers, "
            f"cast with x.astype(np.{net.dtype})"
        )
    expected = net.input_shape
    if x.shape[1:] != expected or x.ndim == 0:
        hint = shape_hint(expected, x.shape, "network")
        raise ValueError(
            f"{who}: x has shape {x.shape} but the network takes (batch, {_dims(expected)})"
            + (f"; {hint}" if hint else "")
        )
    if x.shape[0] == 0:
        raise ValueError(f"{who}: x is an empty batch (shape {x.shape}); pass at least one example")
    if ids:
        return x  # ids stay integers; the first layer checks their range
    # NaN/inf and float64 values beyond float32's range are refused before the cast.
    return _arrays.cast_finite(who, "x", x, net.dtype, check_values)


def _layer_key(who: str, key: Key | None, i: int, layer: Layer, training: bool) -> Key | None:
    if not layer.stochastic or not training:
        return None
    if key is None:
        raise ValueError(
            f"{who}: {_where(i, layer)} is random in training mode and needs a key; "
            "pass key=fnn.random.key(0) (or training=False for evaluation)"
        )
    return fold_in(key, i)


def _check_finite(who: str, a: Array, i: int, layer: Layer) -> None:
    if not np.isfinite(a).all():
        raise FloatingPointError(
            f"{who}: non-finite value in the forward pass at {_where(i, layer)}; "
            "lower the learning rate, check the input scale, or clip gradients"
        )


def _check_finite_grads(who: str, dlayer: Layer, i: int, layer: Layer) -> None:
    for p, leaf in tree.leaves_with_path(dlayer):
        if not np.isfinite(leaf).all():
            steps = _paths.parse(who, p)
            owner = _paths.get(who, layer, steps[:-1]) if len(steps) > 1 else layer
            path = _paths.render(("layers", i, *steps[:-1]))
            raise FloatingPointError(
                f"{who}: non-finite value in the backward ({steps[-1]}) pass at {path} "
                f"({owner.name}); lower the learning rate, check the input scale, or clip "
                "gradients"
            )


@_arrays.underflow_retried
def forward(
    net: Network,
    x: Array,
    *,
    key: KeyLike | None = None,
    training: bool = False,
) -> Array:
    """The network's output for a batch ``x`` of shape ``(batch, *input_shape)``.

    Args:
        net: a built network.
        x: the input batch; integer or float arrays are cast to ``net.dtype``.
        key: needed only in training mode by random layers (dropout).
        training: training mode (dropout active, batch statistics used).

    Returns:
        ``(batch, *net.output_shape)`` array of ``net.dtype``.

    Raises:
        TypeError: ``x`` is not a real-valued NumPy array.
        ValueError: wrong shape, NaN/inf in ``x``, or a random layer without a key;
            names the layer by its path.
    """
    who = "fnn.forward"
    net = _check_network(who, net)
    k = as_key(key, who) if key is not None else None
    h = prepare_input(who, net, x)
    for i, layer in enumerate(net.layers):
        lk = _layer_key(who, k, i, layer, training)
        try:
            h = layer.forward(h, key=lk, training=training)
        except (ValueError, TypeError) as err:
            raise _at(who, err, i, layer) from err
    return h


class Activations(tuple[Array, ...]):
    """What `activations` returns: a tuple ``(x, y_0, …, y_last)`` with a map by path.

    As a tuple it holds the cast input and the output of each top-level layer,
    as before containers existed. ``by_path`` maps ``"input"`` and the path of
    every layer, nested ones included (``"layers[3].body.layers[1]"``), to its
    output; a container's entry is its merged output.
    """

    by_path: dict[str, Array]

    def __new__(cls, outputs: Sequence[Array], by_path: dict[str, Array]) -> Activations:
        new = super().__new__(cls, outputs)
        new.by_path = by_path
        return new


@_arrays.underflow_retried
def activations(
    net: Network,
    x: Array,
    *,
    key: KeyLike | None = None,
    training: bool = False,
    who: str = "fnn.activations",
) -> Activations:
    """Every layer's output for ``x``: ``(x_cast, y_0, y_1, ..., y_last)`` and ``.by_path``.

    The first entry is the input after casting to ``net.dtype``; entry ``i + 1``
    is the output of ``net.layers[i]``. The result's ``by_path`` dict also
    holds the output of every layer inside a container, under its path (the
    input under ``"input"``). Useful for seeing inside a network.

    Example:
        >>> import numpy as np, fnn
        >>> block = fnn.Residual([fnn.Dense(2), fnn.Tanh()])
        >>> net = fnn.init([fnn.Dense(2), block], (3,), key=0)
        >>> acts = fnn.activations(net, np.ones((1, 3)))
        >>> len(acts), sorted(acts.by_path)[:3]
        (3, ['input', 'layers[0]', 'layers[1]'])
        >>> acts.by_path["layers[1].body.layers[1]"].shape
        (1, 2)
    """
    net = _check_network(who, net)
    k = as_key(key, who) if key is not None else None
    outs = [prepare_input(who, net, x)]
    by_path = {"input": outs[0]}
    for i, layer in enumerate(net.layers):
        lk = _layer_key(who, k, i, layer, training)
        try:
            if isinstance(layer, Container):
                y, trace = layer.trace(outs[-1], key=lk, training=training)
                for inner, _, out in trace:
                    by_path[join_path(f"layers[{i}]", inner)] = out
            else:
                y = layer.forward(outs[-1], key=lk, training=training)
        except (ValueError, TypeError) as err:
            raise _at(who, err, i, layer) from err
        outs.append(y)
        by_path[f"layers[{i}]"] = y
    return Activations(outs, by_path)


def _check_loss_fn(who: str, loss_fn: object) -> Loss:
    if not isinstance(loss_fn, Loss):
        raise TypeError(
            f"{who}: loss_fn must be an fnn.losses.Loss such as fnn.losses.mse, "
            f"got {type(loss_fn).__name__}"
        )
    return loss_fn


def loss(
    net: Network,
    x: Array,
    y: Array,
    loss_fn: Loss,
    *,
    key: KeyLike | None = None,
    training: bool = False,
) -> float:
    """The loss of ``net`` on a batch, as a Python float (mean over the batch)."""
    who = "fnn.loss"
    fn = _check_loss_fn(who, loss_fn)
    pred = activations(_check_network(who, net), x, key=key, training=training, who=who)[-1]
    return fn(pred, y)


def _chain(
    who: str,
    net: Network,
    x: Array,
    key: KeyLike | None,
    training: bool,
    check_finite: bool,
    check_values: bool = True,
) -> tuple[Array, list[Pullback], list[Array], Network]:
    """Forward through every layer, keeping pullbacks, inputs and updated state."""
    k = as_key(key, who) if key is not None else None
    h = prepare_input(who, net, x, check_values)
    if check_finite:
        with finite_checks():  # containers check their children's outputs too
            return _forward_pass(who, net, h, k, training, True)
    return _forward_pass(who, net, h, k, training, False)


def _forward_pass(
    who: str, net: Network, h: Array, k: Key | None, training: bool, check_finite: bool
) -> tuple[Array, list[Pullback], list[Array], Network]:
    pullbacks: list[Pullback] = []
    inputs: list[Array] = []
    updated: list[Layer] | None = None  # the layers, once a stateful one has changed
    for i, layer in enumerate(net.layers):
        lk = _layer_key(who, k, i, layer, training) if training and layer.stochastic else None
        inputs.append(h)
        try:
            if layer.stateful:
                h, pb, new_layer = layer.vjp_with_state(
                    h, key=lk, training=training, need_dx=i > 0
                )
                if new_layer is not layer:
                    if updated is None:
                        updated = list(net.layers)
                    updated[i] = new_layer
            else:
                h, pb = layer.vjp(h, key=lk, training=training, need_dx=i > 0)
        except (ValueError, TypeError) as err:
            raise _at(who, err, i, layer) from err
        except NonFiniteInside as err:
            raise FloatingPointError(
                f"{who}: non-finite value in the forward pass at "
                f"{join_path(f'layers[{i}]', err.path)} ({err.layer}); lower the learning "
                "rate, check the input scale, or clip gradients"
            ) from None
        if check_finite:
            _check_finite(who, h, i, layer)
        pullbacks.append(pb)
    return h, pullbacks, inputs, net if updated is None else _with_layers(net, tuple(updated))


@_arrays.underflow_retried
def value_and_grad(
    net: Network,
    x: Array,
    y: Array,
    loss_fn: Loss,
    *,
    key: KeyLike | None = None,
    training: bool = True,
    check_finite: bool = False,
    with_state: bool = False,
    check_values: bool = True,
) -> Any:
    """The loss and its gradient with respect to every parameter.

    Runs the forward pass keeping each layer's pullback, then applies the
    pullbacks in reverse (the chain rule): with δ = dL/dpred from the loss,
    ``(dlayer_i, δ) = pullback_i(δ)`` for ``i = n-1, ..., 0``. What each
    pullback returns is checked (`fnn.layers.check_pullback`): a gradient of
    the wrong shape raises at once, naming the layer's path, the parameter and
    both shapes.

    Args:
        net: a built network.
        x: ``(batch, *input_shape)`` inputs.
        y: targets in the layout ``loss_fn`` expects.
        loss_fn: an ``fnn.losses.Loss``.
        key: for random layers in training mode.
        training: training mode (default ``True``: this is a training step).
        check_finite: raise ``FloatingPointError`` naming the layer (by its
            full path, inside containers too) and pass (forward or backward)
            where a NaN/inf first appears.
        with_state: also return the network with updated non-trainable state
            (batch-norm running statistics, inside containers too).
        check_values: scan ``x`` for NaN/inf (``fit`` checks its whole data set
            once and turns the per-batch scan off).

    Returns:
        ``(loss, grads)``, or ``(loss, grads, new_net)`` with ``with_state``.
        ``grads`` is a `Network` like ``net`` (zeros for state arrays).

    Raises:
        ValueError, TypeError: bad inputs, or a pullback returned a gradient of
            the wrong shape or kind; names the layer's path.
    """
    who = "fnn.value_and_grad"
    net = _check_network(who, net)
    fn = _check_loss_fn(who, loss_fn)
    if not check_finite and parallel.num_threads() > 1 and _in_parts(net):
        try:
            result = _value_and_grad_in_parts(who, net, fn, x, y, key, training, check_values)
        except Exception:  # computed again in one piece below, which raises the same error
            result = None
        if result is not None:
            return (*result, net) if with_state else result
    pred, pullbacks, inputs, new_net = _chain(
        who, net, x, key, training, check_finite, check_values
    )
    value, dy = fn.value_and_grad(pred, y)
    if check_finite and not math.isfinite(value):
        raise FloatingPointError(f"{who}: the loss is {value}; the prediction or target is off")
    grads = _with_layers(net, _pull_back(who, net.layers, pullbacks, inputs, dy, check_finite))
    if with_state:
        return value, grads, new_net
    return value, grads


def _in_parts(net: Network) -> bool:
    """Whether a step of ``net`` may run in parts of the batch on fnn's threads (and gains).

    Every layer must compute each example on its own (`Layer.per_example`:
    no batch norm in training; dropout draws each part's rows of the batch's
    mask), and one must be a convolution, whose step is long enough for two
    threads to share it.
    """
    if not all(runs_per_example(layer) for layer in net.layers):
        return False
    stack: list[Layer] = list(net.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, Conv2D):
            return True
        if isinstance(layer, Container):
            stack.extend(child for _, child in layer.sublayers())
    return False


def _value_and_grad_in_parts(
    who: str,
    net: Network,
    fn: Loss,
    x: Array,
    y: Array,
    key: KeyLike | None,
    training: bool,
    check_values: bool,
) -> tuple[float, Network] | None:
    """`value_and_grad` with one forward and one backward pass per part of the batch.

    The parts (`fnn.parallel.split`: one per thread) run on fnn's threads, each
    from its input to its prediction and back; the loss and dL/dpred are taken
    once, on the whole prediction, exactly as in one piece, and each part
    pulls back its rows of dL/dpred. Since every layer computes each example
    on its own, the predictions are those of one piece and the parameter
    gradient is the sum of the parts' (added in part order), equal to one
    piece's up to float rounding. A random layer (`Dropout`) draws, in each part,
    the rows of its mask that the whole batch would draw (`fnn.random.rows_before`).
    ``None`` for a batch too small to share.
    """
    k = as_key(key, who) if key is not None else None
    h = prepare_input(who, net, x, check_values)
    chunks = parallel.split(len(h))
    if len(chunks) < 2:
        return None

    def forward(chunk: tuple[int, int]) -> tuple[Array, list[Pullback], list[Array], Network]:
        with part_of_batch(chunk[0]):
            return _forward_pass(who, net, h[chunk[0] : chunk[1]], k, training, False)

    passes = parallel.map(forward, chunks)
    value, dy = fn.value_and_grad(np.concatenate([p[0] for p in passes]), y)

    def backward(part: tuple[tuple[int, int], Any]) -> Network:
        (start, stop), (_, pullbacks, inputs, _) = part
        dlayers = _pull_back(who, net.layers, pullbacks, inputs, dy[start:stop], False)
        return _with_layers(net, dlayers)

    parts = parallel.map(backward, list(zip(chunks, passes, strict=True)))
    grads = parts[0]
    for other in parts[1:]:  # in part order: a given thread count gives the same bits
        grads = tree.map(np.add, grads, other)
    return value, grads


def _pull_back(
    who: str,
    layers: tuple[Layer, ...],
    pullbacks: list[Pullback],
    inputs: list[Array],
    dy: Array,
    check_finite: bool,
) -> tuple[Layer, ...]:
    """Apply the pullbacks in reverse from ``dy`` = dL/dpred: each layer's gradient.

    What each pullback returns is checked (`fnn.layers.check_pullback`).
    """
    dlayers: list[Layer] = list(layers)
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        try:
            dlayer, dx = pullbacks[i](dy)
            if not pullback_checked(layer):  # (the short form and Dense: checked already)
                check_pullback(layer, dlayer, dx, inputs[i], i > 0)
        except (ValueError, TypeError) as err:
            raise _at(who, err, i, layer) from err
        if check_finite:
            _check_finite_grads(who, dlayer, i, layer)
        dlayers[i] = dlayer
        if dx is not None:
            dy = dx
    return tuple(dlayers)


def grad(
    net: Network,
    x: Array,
    y: Array,
    loss_fn: Loss,
    *,
    key: KeyLike | None = None,
    training: bool = True,
) -> Network:
    """The gradient of ``loss(net, x, y, loss_fn)``: a Network of partial derivatives."""
    return value_and_grad(net, x, y, loss_fn, key=key, training=training)[1]  # type: ignore[no-any-return]


def check_lr(who: str, lr: object) -> float:
    """A learning rate must be a finite number > 0."""
    if type(lr) is float and 0.0 < lr < math.inf:  # the common case, every step: fast
        return lr
    if isinstance(lr, bool) or not isinstance(lr, int | float | np.floating | np.integer):
        raise TypeError(f"{who}: lr must be a number, got {type(lr).__name__}")
    rate = _arrays.real(lr)  # an int beyond float range is ±inf here, never OverflowError
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"{who}: lr must be a finite number > 0, got {_arrays.short(lr)}")
    return rate


def sgd_step(net: Network, grads: Network, lr: float) -> Network:
    """One plain gradient-descent step: ``θ ← θ − lr · ∂L/∂θ`` for every parameter.

    Args:
        net: the current network.
        grads: ``grad(net, ...)``, same structure.
        lr: learning rate, a finite number > 0.

    Returns:
        A new network; ``net`` and ``grads`` are unchanged.

    Raises:
        ValueError: ``lr`` is not > 0 and finite, or the trees differ (names the path).
    """
    who = "fnn.sgd_step"
    rate = check_lr(who, lr)
    _check_network(who, net)
    _check_network(who, grads)
    params, treedef = tree.flatten(net)
    gs = tree.leaves_like(treedef, params, grads)  # (tree.map's message, unchanged)
    return treedef.build(_sgd_leaves(params, gs, rate))  # type: ignore[no-any-return]


@_arrays.underflow_retried  # a subnormal lr·g is flushed to 0 under errstate(all="raise")
def _sgd_leaves(params: list[Array], gs: list[Array], rate: float) -> list[Array]:
    """``p - rate·g`` for each pair, read-only (pure: the retry may run it twice)."""
    factors: dict[np.dtype, Any] = {}
    new = []
    for p, g in zip(params, gs, strict=True):
        f = factors.get(p.dtype)
        if f is None:
            f = factors[p.dtype] = p.dtype.type(-rate)
        out = g * f  # a fresh array (nobody else holds it), so adding in place is safe
        if type(out) is not np.ndarray:  # a 0-d leaf gives a NumPy scalar
            out = np.asarray(out)
        out += p
        out.setflags(write=False)
        new.append(out)
    return new


def _param_counts(layer: Layer) -> tuple[int, int, int]:
    """(trainable, state, bytes) of a layer's arrays."""
    state = tree.state_paths(layer)
    trainable = n_state = nbytes = 0
    for path, leaf in tree.leaves_with_path(layer):
        nbytes += leaf.nbytes
        if path in state:
            n_state += leaf.size
        else:
            trainable += leaf.size
    return trainable, n_state, nbytes


def _summary_rows(layer: Layer, path: str, shape: Shape, depth: int) -> tuple[list[Any], Shape]:
    """Rows ``(path, name, output shape, params)`` of ``layer`` and everything inside it."""
    out = layer.output_shape(shape)
    t, s, _ = _param_counts(layer)
    rows: list[Any] = [("  " * depth + path, layer.name, str((None, *out)), f"{t + s:,}")]
    if isinstance(layer, Container):

        def child(i: int, c: Layer, in_shape: Shape) -> tuple[Layer, Shape]:
            sub = layer.sublayers()[i][0]
            child_rows, child_out = _summary_rows(c, f"{path}.{sub}", in_shape, depth + 1)
            rows.extend(child_rows)
            return c, child_out

        layer.thread_shapes(shape, child)
    return rows, out


def summary(net: Network, *, file: IO[str] | None = None, quiet: bool = False) -> str:
    """A Keras-style table of layers, output shapes and parameter counts.

    Prints the table to ``file`` (standard output by default; nothing with
    ``quiet=True``) and returns it. Each row starts with the layer's path
    (``layers[3].body.layers[1]``, what `fnn.replace` and
    ``fnn.optim.freeze`` take); the layers inside a container follow it,
    indented, and a container's row counts every parameter inside it.
    Shows trainable and non-trainable (state) counts, the dtype and the bytes
    the parameters take; an array shared by two layers is counted once.

    Example:
        >>> import fnn
        >>> net = fnn.init([fnn.Dense(4), fnn.Residual([fnn.Dense(4)])], (3,), key=0)
        >>> print(fnn.summary(net, quiet=True))
        ----------------------------  -------------------  ------------  ------
        path                          layer                output shape  params
        ----------------------------  -------------------  ------------  ------
        layers[0]                     Dense(units=4)       (None, 4)         16
        layers[1]                     Residual             (None, 4)         20
          layers[1].body              Sequential(1 layer)  (None, 4)         20
            layers[1].body.layers[0]  Dense(units=4)       (None, 4)         20
        ----------------------------  -------------------  ------------  ------
        input (None, 3)  dtype float32
        parameters: 36 (36 trainable, 0 non-trainable), 144 bytes
    """
    net = _check_network("fnn.summary", net)
    rows: list[Any] = [("path", "layer", "output shape", "params")]
    shape: Shape = net.input_shape
    for i, layer in enumerate(net.layers):
        layer_rows, shape = _summary_rows(layer, f"layers[{i}]", shape, 0)
        rows.extend(layer_rows)
    seen: set[tuple[int, int]] = set()
    total = n_state = nbytes = 0
    state = tree.state_paths(net)
    for path, leaf in tree.leaves_with_path(net):
        ident = (leaf.__array_interface__["data"][0], leaf.nbytes)
        if ident in seen:  # an array shared by two layers counts once
            continue
        seen.add(ident)
        nbytes += leaf.nbytes
        if path in state:
            n_state += leaf.size
        else:
            total += leaf.size
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    line = "  ".join("-" * w for w in widths)
    text = [line] + [
        "  ".join(
            cell.ljust(w) if c < 3 else cell.rjust(w)
            for c, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    text.insert(2, line)
    text += [
        line,
        f"input (None, {', '.join(map(str, net.input_shape))})  dtype {net.dtype}",
        f"parameters: {total + n_state:,} ({total:,} trainable, {n_state:,} non-trainable), "
        f"{nbytes:,} bytes",
    ]
    out = "\n".join(text)
    if not quiet:
        print(out, file=sys.stdout if file is None else file)
    return out
