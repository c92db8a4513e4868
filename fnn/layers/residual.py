"""Residual blocks, ``y = body(x) + shortcut(x)``: a container layer (`fnn.layers.containers`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import attrs
from typing_extensions import Self

from fnn.layers._base import Array, Layer, Pullback, Shape, check_cotangent
from fnn.layers.containers import ChildFn, Container, Trace, as_layer, dims, unchecked
from fnn.random import KeyLike

__all__ = ["Residual"]


def _body_layer(value: object) -> Layer:
    return as_layer("Residual", "body", value)


def _optional_layer(value: object) -> Layer | None:
    return None if value is None else as_layer("Residual", "shortcut", value)


@attrs.frozen(eq=False, slots=False)
class Residual(Container):
    """A residual block: ``y = body(x) + shortcut(x)``, the identity shortcut by default.

    Backward: the sum passes δ = dL/dy unchanged to both terms, so
    dL/dx = dL/dx through the body + dL/dx through the shortcut
    (``+ δ`` itself for the identity shortcut); the body's and shortcut's
    parameter gradients are their own pullbacks of δ. See the math pages.

    Args:
        body: a layer, or a list of layers (made into a `Sequential`).
        shortcut: ``None`` for the identity, or a projection layer (or list)
            whose output has the body's shape, e.g. a 1x1 ``Conv2D`` with the
            body's stride and output channels.

    Raises:
        TypeError: ``body`` or ``shortcut`` is not a layer or a list of layers.
        ValueError: an empty body; at ``init``, outputs that cannot be added
            (names both shapes and suggests a projection shortcut).

    Example:
        >>> import numpy as np, fnn
        >>> block, out = Residual([fnn.Dense(3)]).init(0, (3,), np.float64)
        >>> x = np.ones((2, 3))
        >>> bool(np.allclose(block.forward(x), block.body.forward(x) + x))
        True
    """

    body: Layer = attrs.field(converter=_body_layer)
    shortcut: Layer | None = attrs.field(default=None, converter=_optional_layer)

    @property
    def name(self) -> str:
        return "Residual" if self.shortcut is None else f"Residual(shortcut={self.shortcut.name})"

    def _make_sublayers(self) -> tuple[tuple[str, Layer], ...]:
        if self.shortcut is None:
            return (("body", self.body),)
        return (("body", self.body), ("shortcut", self.shortcut))

    def with_sublayers(self, children: Sequence[Layer]) -> Self:
        shortcut = children[1] if len(children) > 1 else None
        return cast(Self, unchecked(type(self), body=children[0], shortcut=shortcut))

    def thread_shapes(self, in_shape: Shape, fn: ChildFn) -> tuple[Self, Shape]:
        body, out = self._run(0, fn, 0, self.body, in_shape)
        new = [body]
        short_out = in_shape
        if self.shortcut is not None:
            shortcut = self.shortcut
            short, short_out = self._run(1, fn, 1, shortcut, in_shape)
            new.append(short)
        if out != short_out:
            which = "identity shortcut" if self.shortcut is None else "shortcut"
            raise ValueError(
                f"{self.name}: the body's output {dims(out)} and the {which}'s "
                f"{dims(short_out)} cannot be added; give the block a projection shortcut "
                "that maps the input to the body's output shape, e.g. "
                "shortcut=fnn.Conv2D(channels, 1, strides=stride) for images or "
                "shortcut=fnn.Dense(units) for vectors"
            )
        return self._rebuilt([c for _, c in self.sublayers()], new), out

    def _add(self, yb: Array, ys: Array) -> Array:
        if yb.shape != ys.shape:
            raise ValueError(
                f"{self.name}: the body gave shape {yb.shape} and the shortcut {ys.shape}; "
                "they cannot be added (was the block built for another input shape?)"
            )
        out: Array = yb + ys
        return out

    def trace(
        self, x: Array, *, key: KeyLike | None = None, training: bool = False
    ) -> tuple[Array, Trace]:
        x, key = self._enter(x, key)
        out: Trace = []
        yb = self._child_trace(0, x, key, training, out)
        ys = x if self.shortcut is None else self._child_trace(1, x, key, training, out)
        return self._add(yb, ys), out

    def vjp_with_state(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback, Residual]:
        x, key = self._enter(x, key)
        yb, pb_body, body = self._child_vjp(0, x, key, training, need_dx)
        if self.shortcut is None:
            y = self._add(yb, x)
            pb_short, new = None, [body]
        else:
            ys, pb_short, short = self._child_vjp(1, x, key, training, need_dx)
            y = self._add(yb, ys)
            new = [body, short]

        def pullback(dy: Array) -> tuple[Layer, Array | None]:
            dy = check_cotangent(self, dy, y)
            dbody, dx_body = pb_body(dy)
            if pb_short is None:
                grads = [dbody]
                dx_short: Array | None = dy
            else:
                dshort, dx_short = pb_short(dy)
                grads = [dbody, dshort]
            if not need_dx:
                return self.with_sublayers(grads), None
            dx: Array = cast(Array, dx_body) + cast(Array, dx_short)
            return self.with_sublayers(grads), dx

        return y, pullback, self._rebuilt([c for _, c in self.sublayers()], new)
