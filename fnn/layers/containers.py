"""Containers: layers that hold layers. The base class and `Sequential` live here;
`fnn.layers.residual.Residual` and `fnn.layers.parallel.Parallel` next door.

A container is a frozen attrs layer like any other, so containers nest to any
depth and everything that works on a network (``fnn.init``, ``forward``,
``value_and_grad``, optimizers, ``fit``, ``save``/``load``) works on nested
networks unchanged. Every location has a path, the tree path of its
parameters: ``layers[3].body.layers[1].w`` is the weight of the second layer
of the body of the residual block at position 3.

What passes through a container, as through a network:

- **shapes**: ``init`` threads the input shape through the children;
- **keys**: child ``i`` gets ``fold_in(key, i)`` at ``init`` and, if it is
  random and in training mode, in ``forward``/``vjp`` (a ``Residual``'s body is
  child 0 and its shortcut child 1), so a ``Dropout`` deep inside behaves as
  it does at the top level;
- **training** and the **stochastic** / **stateful** flags (a container is
  random if a child is, and stateful if a child is): a ``BatchNorm`` inside a
  ``Residual`` updates its running statistics through
  ``fnn.value_and_grad(..., with_state=True)`` and ``fit``;
- **errors** name the full path of the child that raised them.

The gradient of a container is a container of the same class holding the
children's gradients. Each container checks what its children's pullbacks
return (`fnn.layers.check_pullback`), so a wrong gradient is named by its path.

Example:
    >>> import numpy as np, fnn
    >>> block = fnn.Residual([fnn.Dense(4), fnn.Tanh(), fnn.Dense(4)])
    >>> net = fnn.init([fnn.Dense(4), block, fnn.Dense(1)], (3,), key=0)
    >>> net.layers[1].body.layers[2].w.shape
    (4, 4)
    >>> fnn.forward(net, np.ones((2, 3))).shape
    (2, 1)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar, cast

import attrs
import numpy as np
from typing_extensions import Self

from fnn import _arrays
from fnn.layers._base import (
    Array,
    Layer,
    Pullback,
    Shape,
    check_cotangent,
    check_input,
    check_pullback,
    join_path,
    located,
    runs_per_example,
)
from fnn.random import Key, KeyLike, as_key, fold_in

__all__ = ["Container", "Sequential"]

T = TypeVar("T")

ChildFn = Callable[[int, Layer, Shape], tuple[Layer, Shape]]
"""``(index, child, in_shape) -> (child, out_shape)``, applied by `Container.thread_shapes`."""

Trace = list[tuple[str, Layer, Array]]
"""``(path, layer, output)`` of every layer inside a container, in the order they ran."""


_CHECK_FINITE: ContextVar[bool] = ContextVar("fnn_check_finite", default=False)


@contextlib.contextmanager
def finite_checks() -> Iterator[None]:
    """Within the block, containers check every child's output in ``vjp``/``vjp_with_state``
    and raise `NonFiniteInside` at the first NaN/inf (``value_and_grad(check_finite=True)``)."""
    token = _CHECK_FINITE.set(True)
    try:
        yield
    finally:
        _CHECK_FINITE.reset(token)


class NonFiniteInside(FloatingPointError):
    """A NaN/inf output of the layer at ``path`` (relative to the outermost container)."""

    def __init__(self, path: str, layer: str) -> None:
        super().__init__(f"non-finite value in the forward pass at {path} ({layer})")
        self.path, self.layer = path, layer


def dims(shape: Shape) -> str:
    """``(None, 3, 4)``: a shape as summaries print it, batch axis first."""
    return str((None, *shape))


def _child_key(key: Key | None, i: int, child: Layer, training: bool) -> Key | None:
    """Child ``i``'s key: ``fold_in(key, i)`` for a random child in training mode, else None."""
    if key is None or not training or not child.stochastic:
        return None
    return fold_in(key, i)


def as_layer(owner: str, what: str, value: object) -> Layer:
    """A layer, or a list/tuple of layers made into a `Sequential`; else TypeError."""
    if isinstance(value, Layer):
        return value
    if isinstance(value, list | tuple):
        try:
            return Sequential(value)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{owner}: {what}: {err}") from None
    raise TypeError(
        f"{owner}: {what} is {type(value).__name__}, not an fnn layer; pass a layer such as "
        "fnn.Dense(10) or a list of layers (which becomes an fnn.Sequential)"
    )


@attrs.frozen(eq=False, slots=False)
class Container(Layer):
    """Base class of layers that hold layers; see the module docstring.

    A subclass says which layers it holds (``_make_sublayers``, which
    `sublayers` caches), how to rebuild itself around new ones
    (`with_sublayers`), how shapes flow through them (`thread_shapes`) and how
    values flow (``vjp_with_state`` and `trace`); the rest (flags, ``init``,
    ``output_shape``, ``forward``, ``vjp``) is here.
    """

    # A container is a value: what it holds never changes, so `sublayers` and the flags
    # are computed once per instance and kept in its __dict__ (containers are attrs
    # classes without slots for this). They are not attrs fields, so trees, files and
    # copies never see them; an instance rebuilt by fnn.tree computes them again.

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        """True if any layer inside is random (it then needs a key in training mode)."""
        return self._flags()[0]

    @property
    def stateful(self) -> bool:  # type: ignore[override]
        """True if any layer inside has non-trainable state (batch-norm statistics)."""
        return self._flags()[1]

    @property
    def per_example(self) -> bool:  # type: ignore[override]
        """True if every layer inside computes each example on its own (see `Layer`)."""
        return self._flags()[2]

    def _flags(self) -> tuple[bool, bool, bool]:
        flags: tuple[bool, bool, bool] | None = self.__dict__.get("_fnn_flags")
        if flags is None:
            children = [child for _, child in self.sublayers()]
            flags = (
                any(child.stochastic for child in children),
                any(child.stateful for child in children),
                all(runs_per_example(child) for child in children),
            )
            self.__dict__["_fnn_flags"] = flags
        return flags

    @property
    def built(self) -> bool:
        return all(child.built for _, child in self.sublayers())

    def sublayers(self) -> tuple[tuple[str, Layer], ...]:
        held: tuple[tuple[str, Layer], ...] | None = self.__dict__.get("_fnn_sublayers")
        if held is None:
            held = self._make_sublayers()
            self.__dict__["_fnn_sublayers"] = held
        return held

    def _make_sublayers(self) -> tuple[tuple[str, Layer], ...]:
        """``(path, layer)`` of each layer held, in order (what `sublayers` returns)."""
        raise NotImplementedError

    def with_sublayers(self, children: Sequence[Layer]) -> Self:
        """This container holding ``children`` (in `sublayers` order) instead of its own."""
        raise NotImplementedError

    def thread_shapes(self, in_shape: Shape, fn: ChildFn) -> tuple[Self, Shape]:
        """Apply ``fn`` to each child with its input shape; return the rebuilt container
        and its output shape (checking that the children's outputs fit together)."""
        raise NotImplementedError

    def _run(self, i: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with any ValueError/TypeError located at child ``i``'s path."""
        path, child = self.sublayers()[i]
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError) as err:
            raise located(err, path, child, self.name) from err

    def _enter(self, x: object, key: KeyLike | None) -> tuple[Array, Key | None]:
        """The checked input and key of a forward or vjp call."""
        if self.reads_ids():  # integer ids for a first Embedding: it checks them itself
            x = _arrays.plain(self.name, "x", x)
            if not isinstance(x, np.ndarray) or x.dtype.kind not in "iu" or x.ndim < 1:
                got = f"dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
                raise TypeError(
                    f"{self.name}: x must be an integer array of ids for its first layer, got "
                    f"{got}; pass x.astype(np.int64)"
                )
            checked: Array = x
        else:
            checked = check_input(self, x, None, "(batch, ...)")
        return checked, (None if key is None else as_key(key, self.name))

    def init(self, key: KeyLike, in_shape: Shape, dtype: np.dtype) -> tuple[Self, Shape]:
        k = as_key(key, self.name)
        if not isinstance(in_shape, tuple | list) or not all(
            isinstance(d, int | np.integer) and not isinstance(d, bool) and d > 0 for d in in_shape
        ):
            raise ValueError(
                f"{self.name}: in_shape must be a tuple of positive ints (one example's shape, "
                f"without the batch axis), got {in_shape!r}"
            )
        try:
            dt = np.dtype(dtype)
        except TypeError:
            dt = np.dtype(object)
        if dt.kind != "f":
            raise TypeError(f"{self.name}: dtype must be a floating dtype, got {dtype!r}")

        def build(i: int, child: Layer, shape: Shape) -> tuple[Layer, Shape]:
            return child.init(fold_in(k, i), shape, dt)

        return self.thread_shapes(tuple(int(d) for d in in_shape), build)

    def output_shape(self, in_shape: Shape) -> Shape:
        return self.thread_shapes(tuple(in_shape), lambda i, c, s: (c, c.output_shape(s)))[1]

    def forward(self, x: Array, *, key: KeyLike | None = None, training: bool = False) -> Array:
        return self.trace(x, key=key, training=training)[0]

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        y, pullback, _ = self.vjp_with_state(x, key=key, training=training, need_dx=need_dx)
        return y, pullback

    def trace(
        self, x: Array, *, key: KeyLike | None = None, training: bool = False
    ) -> tuple[Array, Trace]:
        """The output for ``x`` and ``(path, layer, output)`` of every layer inside.

        Paths are relative to this container (``body.layers[1]``); a container's
        own entry follows its children's. ``fnn.activations`` and the
        non-finite guard use this to see inside.
        """
        raise NotImplementedError

    def _child_trace(self, i: int, x: Array, key: Key | None, training: bool, out: Trace) -> Array:
        """Run child ``i`` on ``x``, appending its (and its children's) outputs to ``out``."""
        path, child = self.sublayers()[i]
        ck = _child_key(key, i, child, training)
        if isinstance(child, Container):
            y, inner = self._run(i, child.trace, x, key=ck, training=training)
            out.extend((join_path(path, p), layer, a) for p, layer, a in inner)
        else:
            y = self._run(i, child.forward, x, key=ck, training=training)
        out.append((path, child, y))
        return y

    def _child_vjp(
        self, i: int, x: Array, key: Key | None, training: bool, need_dx: bool
    ) -> tuple[Array, Pullback, Layer]:
        """Child ``i``'s ``(y, checked pullback, updated child)``."""
        path, child = self.sublayers()[i]
        ck = _child_key(key, i, child, training)
        try:  # inline rather than through _run: this is every training step's path
            if child.stateful:
                y, pb, new = child.vjp_with_state(x, key=ck, training=training, need_dx=need_dx)
            else:
                y, pb = child.vjp(x, key=ck, training=training, need_dx=need_dx)
                new = child
        except (ValueError, TypeError) as err:
            raise located(err, path, child, self.name) from err
        except NonFiniteInside as err:
            raise NonFiniteInside(join_path(path, err.path), err.layer) from None
        if _CHECK_FINITE.get() and not np.isfinite(y).all():
            raise NonFiniteInside(path, child.name)

        def pullback(dy: Array) -> tuple[Layer, Array | None]:
            try:
                dchild, dx = pb(dy)
                check_pullback(child, dchild, dx, x, need_dx)
            except (ValueError, TypeError) as err:
                raise located(err, path, child, self.name) from err
            return dchild, dx

        return y, pullback, new

    def _rebuilt(self, old: Sequence[Layer], new: Sequence[Layer]) -> Self:
        """``self`` if no child changed, else this container around ``new``."""
        if all(a is b for a, b in zip(old, new, strict=True)):
            return self
        return self.with_sublayers(new)


def _layers_tuple(value: object) -> tuple[Layer, ...]:
    if not isinstance(value, list | tuple):
        raise TypeError(
            f"Sequential: layers must be a list or tuple of layers, got {type(value).__name__}"
        )
    if not value:
        raise ValueError(
            "Sequential: needs at least one layer; an empty body computes nothing "
            "(use [fnn.Identity()] for a pass-through)"
        )
    for i, layer in enumerate(value):
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential: layers[{i}] is {type(layer).__name__}, not an fnn layer; "
                "layers subclass fnn.Layer (e.g. fnn.Dense(10), fnn.ReLU())"
            )
    return tuple(value)


def unchecked(cls: type, **fields: object) -> Any:
    """An instance of the attrs class ``cls`` built without re-running validators."""
    new: Any = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(new, name, value)
    return new


@attrs.frozen(eq=False, slots=False)
class Sequential(Container):
    """Layers applied one after the other: ``y = f_n(… f_1(f_0(x)))``.

    Backward (the chain rule): with δ = dL/dy, ``(df_i, δ) = pullback_i(δ)``
    for ``i = n-1, …, 0``; dL/dx is the last δ.

    Args:
        layers: a non-empty list or tuple of layers (containers allowed).

    Raises:
        TypeError: ``layers`` is not a list/tuple of layers (names the index).
        ValueError: ``layers`` is empty.

    Example:
        >>> import numpy as np, fnn
        >>> block, out = Sequential([fnn.Dense(3), fnn.ReLU()]).init(0, (2,), np.float64)
        >>> out, block.layers[0].w.shape, block.name
        ((3,), (2, 3), 'Sequential(2 layers)')
    """

    layers: tuple[Layer, ...] = attrs.field(converter=_layers_tuple)

    @property
    def name(self) -> str:
        n = len(self.layers)
        return f"Sequential({n} layer{'s' if n != 1 else ''})"

    def reads_ids(self) -> bool:
        return bool(self.layers) and self.layers[0].reads_ids()

    def _make_sublayers(self) -> tuple[tuple[str, Layer], ...]:
        return tuple((f"layers[{i}]", layer) for i, layer in enumerate(self.layers))

    def with_sublayers(self, children: Sequence[Layer]) -> Self:
        return cast(Self, unchecked(type(self), layers=tuple(children)))

    def thread_shapes(self, in_shape: Shape, fn: ChildFn) -> tuple[Self, Shape]:
        shape, new = in_shape, list[Layer]()
        for i, layer in enumerate(self.layers):
            child, shape = self._run(i, fn, i, layer, shape)
            new.append(child)
        return self._rebuilt(self.layers, new), shape

    def trace(
        self, x: Array, *, key: KeyLike | None = None, training: bool = False
    ) -> tuple[Array, Trace]:
        h, key = self._enter(x, key)
        out: Trace = []
        for i in range(len(self.layers)):
            h = self._child_trace(i, h, key, training, out)
        return h, out

    def vjp_with_state(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback, Sequential]:
        h, key = self._enter(x, key)
        pullbacks, new = [], []
        for i in range(len(self.layers)):
            h, pb, child = self._child_vjp(i, h, key, training, need_dx or i > 0)
            pullbacks.append(pb)
            new.append(child)
        y = h

        def pullback(dy: Array) -> tuple[Layer, Array | None]:
            delta: Array | None = check_cotangent(self, dy, y)
            grads: list[Layer] = list(self.layers)
            for i in range(len(pullbacks) - 1, -1, -1):
                grads[i], delta = pullbacks[i](cast(Array, delta))
            return self.with_sublayers(grads), delta

        return y, pullback, self._rebuilt(self.layers, new)
