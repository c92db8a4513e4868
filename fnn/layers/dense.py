"""Dense (fully connected) layer: y = x·W + b."""

from __future__ import annotations

from typing import ClassVar, cast

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
    checked_pullback,
    param_field,
    positive_int,
)
from fnn.random import KeyLike, split
from fnn.tree import class_fields

__all__ = ["Dense"]

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_set = object.__setattr__


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

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

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
        w = self.w
        if (  # the common case, every step: one test (a float32/64 batch of the right width)
            type(x) is np.ndarray
            and w is not None
            and x.dtype is w.dtype
            and (x.dtype is _F32 or x.dtype is _F64)
            and x.ndim == 2
            and x.shape[1] == w.shape[0]
            and x.size
        ):
            return x
        if w is None:
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

    def _affine(self, x: Array) -> Array:
        """``x @ w + b`` for a checked ``x``."""
        y: Array = x @ self.w  # (x checked: w is set)
        b = self.b
        if b is not None:
            y += b  # y was just allocated by the matmul
        return y

    def forward(self, x: Array, *, key: KeyLike | None = None, training: bool = False) -> Array:
        return self._affine(self._check(x))

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        x = self._check(x)
        y = self._affine(x)
        w: Array = self.w  # type: ignore[assignment]  # (x checked: w is set)
        has_b = self.b is not None

        def pullback(dy: Array) -> tuple[Dense, Array | None]:
            if not (type(dy) is np.ndarray and dy.dtype is y.dtype and dy.shape == y.shape):
                dy = check_cotangent(self, dy, y)
            if x.ndim == 2:
                dw, db = x.T @ dy, (dy.sum(axis=0) if has_b else None)
            else:  # (batch, time, d): the sums run over batch and time
                x2, dy2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
                dw, db = x2.T @ dy2, (dy2.sum(axis=0) if has_b else None)
            dx = dy @ w.T if need_dx else None
            return self._gradient(dw, db), dx

        return y, pullback

    def _gradient(self, dw: Array, db: Array | None) -> Dense:
        """``self.zero_grad_like(w=dw, b=db)`` for the arrays the pullback just allocated.

        They are marked read-only in place (nobody else holds them), and the
        configuration is copied field by field without ``__init__`` (it was validated
        when ``self`` was built): this runs for every Dense layer on every step.
        """
        cls = type(self)
        info = class_fields(cls)
        if info.arrays != ("w", "b"):  # a subclass with arrays of its own: the general way
            return self.zero_grad_like(w=dw, **({"b": db} if db is not None else {}))
        new = object.__new__(cls)
        for name in info.config:
            _set(new, name, getattr(self, name))
        dw.setflags(write=False)
        _set(new, "w", dw)
        if db is not None:
            db.setflags(write=False)
        _set(new, "b", db)
        return new


def _consistent(layer: Layer) -> bool:
    """Whether ``layer``'s arrays fit together as `Dense.init` makes them: a matrix ``w``
    and ``b`` (if any) of shape ``(d_out,)`` and ``w``'s dtype. Then its pullback returns
    gradients of the parameters' shapes and dtypes and ``dx`` like ``x`` by construction
    (``x`` and ``dy`` are checked), so callers need not check them again."""
    w, b = layer.w, layer.b  # type: ignore[attr-defined]  # (registered for Dense only)
    return (
        w is not None
        and w.ndim == 2
        and (b is None or (b.shape == w.shape[1:] and b.dtype == w.dtype))
    )


checked_pullback(Dense, _consistent)
