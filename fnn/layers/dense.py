"""Dense (fully connected) layer: y = x·W + b."""

from __future__ import annotations

from typing import cast

import attrs
import numpy as np

from fnn.layers import initializers
from fnn.layers._base import (
    Array,
    Layer,
    Pullback,
    Shape,
    check_built,
    check_cotangent,
    check_dtype,
    check_input,
    param_field,
    positive_int,
)
from fnn.random import KeyLike, split

__all__ = ["Dense"]


@attrs.frozen(eq=False)
class Dense(Layer):
    """Fully connected layer ``y = x·W + b``.

    Forward: ``y = x @ w + b`` with ``x`` of shape ``(batch, d_in)``, ``w`` of
    shape ``(d_in, d_out)``, ``b`` of shape ``(d_out,)``.

    Backward, with δ = dL/dy of shape ``(batch, d_out)``:
    dL/dW = xᵀ·δ ``(d_in, d_out)``; dL/db = Σ_batch δ ``(d_out,)``;
    dL/dx = δ·Wᵀ ``(batch, d_in)``.

    Sequences: on ``(batch, time, d_in)`` the same map acts on the last axis
    of every step, ``y[b, t] = x[b, t] @ w + b`` ``(batch, time, d_out)``, and
    the sums in dL/dW and dL/db run over the batch and the time axis (as
    Keras's Dense; no ``TimeDistributed`` wrapper is needed). Images (more
    axes) still need a ``Flatten()`` first.

    Args:
        units: ``d_out``, the number of output features.
        use_bias: add the bias ``b`` (default ``True``).
        w_init: initialiser (or its name) for ``w``; Glorot uniform by default.
        b_init: initialiser (or its name) for ``b``; zeros by default.

    Raises:
        ValueError: ``units`` is not a positive int; at call time, ``x`` is not
            ``(batch, d_in)`` for the ``d_in`` the layer was built for.
        TypeError: ``x`` is not a floating array of the parameters' dtype.

    Example:
        >>> import numpy as np
        >>> layer, out_shape = Dense(4).init(0, (3,), np.float64)
        >>> out_shape, layer.w.shape, layer.forward(np.zeros((2, 3))).shape
        ((4,), (3, 4), (2, 4))
    """

    units: int = attrs.field(validator=positive_int)
    use_bias: bool = attrs.field(default=True, kw_only=True)
    w_init: initializers.Initializer = attrs.field(
        default=initializers.glorot_uniform, converter=initializers.resolve, kw_only=True
    )
    b_init: initializers.Initializer = attrs.field(
        default=initializers.zeros, converter=initializers.resolve, kw_only=True
    )
    w: Array | None = param_field()
    b: Array | None = param_field()

    @property
    def name(self) -> str:
        return f"Dense(units={self.units})"

    def _expects(self, field_name: str) -> bool:
        return field_name != "b" or self.use_bias

    def output_shape(self, in_shape: Shape) -> Shape:
        if len(in_shape) not in (1, 2):
            raise ValueError(
                f"{self.name}: expects inputs of shape (batch, d_in) or (batch, time, d_in), but "
                f"the previous layer gives (batch, {', '.join(map(str, in_shape))}); put a "
                "Flatten() before it"
            )
        return (*in_shape[:-1], self.units)

    def init(self, key: KeyLike, in_shape: Shape, dtype: np.dtype) -> tuple[Dense, Shape]:
        out_shape = self.output_shape(in_shape)
        kw, kb = split(key)
        w = self.w_init(kw, (in_shape[-1], self.units), dtype)
        b = self.b_init(kb, (self.units,), dtype) if self.use_bias else None
        return attrs.evolve(self, w=w, b=b), out_shape

    def _check(self, x: object) -> Array:
        if self.w is None:
            check_built(self)
        x = check_input(self, x, None, "(batch, d_in)")
        if x.ndim not in (2, 3):
            hint = " add a batch axis with x[None]" if x.ndim == 1 else " put a Flatten() before it"
            raise ValueError(
                f"{self.name}: x must have shape (batch, d_in) or (batch, time, d_in), got shape "
                f"{x.shape};{hint}"
            )
        w = cast(Array, self.w)  # check_built guarantees it is set
        d_in = w.shape[0]
        if x.shape[-1] != d_in:
            hint = (
                " did you pass x transposed?"
                if x.ndim == 2 and x.shape[0] == d_in
                else " check the input width or the layer before this one"
            )
            raise ValueError(
                f"{self.name}: x has shape {x.shape} but this layer was built for "
                f"(batch, {'time, ' if x.ndim == 3 else ''}{d_in});{hint}"
            )
        check_dtype(self, x, w)
        return x

    def forward(self, x: Array, *, key: KeyLike | None = None, training: bool = False) -> Array:
        x = self._check(x)
        y = x @ cast(Array, self.w)
        if self.b is not None:
            y += self.b  # y was just allocated by the matmul
        out: Array = y
        return out

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        y = self.forward(x)
        x = np.asarray(x)  # forward checked x; the pullback needs it as a plain array
        w = cast(Array, self.w)

        def pullback(dy: Array) -> tuple[Dense, Array | None]:
            dy = check_cotangent(self, dy, y)
            x2, dy2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
            dw = x2.T @ dy2
            db = dy2.sum(axis=0) if self.b is not None else None
            dx = dy @ w.T if need_dx else None
            return self.zero_grad_like(w=dw, **({"b": db} if db is not None else {})), dx

        return y, pullback
