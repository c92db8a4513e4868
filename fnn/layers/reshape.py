"""Layers that only change the layout of each example: Flatten and Reshape."""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import numpy as np

from fnn.layers._base import Array, Layer, Shape
from fnn.tree import readonly

__all__ = ["Flatten", "Reshape"]


@attrs.frozen(eq=False)
class _Relayout(Layer):
    """``y = x.reshape(batch, *target)``; ``dx = dy.reshape(x.shape)`` (the short form).

    Both are views (no copy) made read-only, so they never alias the caller's
    ``x`` or ``dy`` writeably: writing into an output cannot change an input.
    """

    def _target(self, in_shape: Shape) -> Shape:
        raise NotImplementedError

    def output_shape(self, in_shape: Shape) -> Shape:
        return self._target(in_shape)

    def apply(self, x: Array) -> Array:
        return readonly(x.reshape((x.shape[0], *self._target(x.shape[1:]))))

    def backward(self, x: Array, y: Array, dy: Array) -> tuple[dict[str, Array], Array]:
        return {}, readonly(dy.reshape(x.shape))


@attrs.frozen(eq=False)
class Flatten(_Relayout):
    """Flatten each example: ``(batch, d1, d2, ...) -> (batch, d1·d2·...)``.

    Example:
        >>> import numpy as np
        >>> Flatten().forward(np.zeros((2, 28, 28, 1))).shape
        (2, 784)
    """

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

    def _target(self, in_shape: Shape) -> Shape:
        return (math.prod(in_shape),)


def _shape_tuple(value: object) -> tuple[int, ...]:
    if isinstance(value, int):
        value = (value,)
    if not isinstance(value, tuple | list) or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value
    ):
        raise TypeError(f"Reshape: shape must be a tuple of ints, got {value!r}")
    out = tuple(int(v) for v in value)
    if sum(v == -1 for v in out) > 1 or any(v == 0 or v < -1 for v in out):
        raise ValueError(
            f"Reshape: shape {out} must hold positive sizes and at most one -1; "
            "leave out the batch axis"
        )
    return out


@attrs.frozen(eq=False)
class Reshape(_Relayout):
    """Reshape each example to ``shape`` (batch axis excluded; one entry may be -1).

    Example:
        >>> import numpy as np
        >>> Reshape((28, 28, 1)).forward(np.zeros((2, 784))).shape
        (2, 28, 28, 1)
    """

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

    shape: tuple[int, ...] = attrs.field(converter=_shape_tuple)

    @property
    def name(self) -> str:
        return f"Reshape(shape={self.shape})"

    def _target(self, in_shape: Shape) -> Shape:
        n = math.prod(in_shape)
        known = math.prod(v for v in self.shape if v != -1)
        if -1 in self.shape:
            if n % known:
                raise ValueError(
                    f"{self.name}: cannot reshape examples of shape {in_shape} ({n} values) "
                    f"to {self.shape}"
                )
            return tuple(n // known if v == -1 else v for v in self.shape)
        if known != n:
            raise ValueError(
                f"{self.name}: examples of shape {in_shape} hold {n} values but {self.shape} "
                f"holds {known}; the shape excludes the batch axis"
            )
        return self.shape
