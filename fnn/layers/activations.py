"""Activation layers: parameter-free maps applied to each element (softmax: each row).

Each class states its forward map and the derivative its pullback applies.
All preserve the input's shape and dtype and accept any rank ≥ 1 (batch first).

Example:
    >>> import numpy as np
    >>> ReLU().forward(np.array([[-1.0, 2.0]]))
    array([[0., 2.]])
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import numpy as np

from fnn import _arrays, _buffers
from fnn.layers._base import (
    Array,
    Layer,
    Pullback,
    check_cotangent,
    check_input,
    checked_pullback,
)
from fnn.random import KeyLike

__all__ = ["ELU", "GELU", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh"]


@attrs.frozen(eq=False)
class _Elementwise(Layer):
    """``y = f(x)``, ``dx = dy * f'(x)`` computed from ``x`` and ``y``.

    Written in the layer's short form: the base class checks ``x`` and ``dy``
    and supplies ``forward`` and ``vjp``.
    """

    def _f(self, x: Array) -> Array:
        raise NotImplementedError

    def _df(self, x: Array, y: Array) -> Array:
        raise NotImplementedError

    def apply(self, x: Array) -> Array:
        return self._f(x)

    def backward(self, x: Array, y: Array, dy: Array) -> tuple[dict[str, Array], Array]:
        return {}, dy * self._df(x, y)


@attrs.frozen(eq=False)
class Identity(_Elementwise):
    """``y = x``; ``dx = dy``."""

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

    def _f(self, x: Array) -> Array:
        return x.copy()

    def _df(self, x: Array, y: Array) -> Array:
        return np.ones_like(x)


@attrs.frozen(eq=False)
class ReLU(_Elementwise):
    """``y = max(x, 0)``; ``dx = dy · [x > 0]`` (the derivative at 0 is taken as 0)."""

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

    def _f(self, x: Array) -> Array:
        return _arrays.relu(x)

    def _df(self, x: Array, y: Array) -> Array:
        # A boolean mask: dy * mask keeps dy's dtype and saves a cast pass.
        out: Array = x > 0
        return out

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        """The short form's ``vjp`` without its general plumbing (ReLU runs on every step).

        Same checks (``x`` as the short form checks it, ``dy`` against ``y``), same
        arithmetic and results; what the base class would check afterwards (``y``
        and ``dx`` have ``x``'s shape and dtype) holds by construction.
        """
        if type(self) is not ReLU:  # a subclass may change apply or backward: the general way
            return super().vjp(x, key=key, training=training, need_dx=need_dx)
        x = check_input(self, x, self.input_rank, self.input_layout)
        # Large arrays go in fnn's recycled blocks (fnn._buffers; the same values); small
        # ones as NumPy allocates them (out=None), which costs less than asking the pool.
        big = x.nbytes >= _buffers.POOL_MIN
        y: Array = _arrays.relu(x, _buffers.empty(x.shape, x.dtype) if big else None)

        def pullback(dy: Array) -> tuple[Layer, Array | None]:
            if not (type(dy) is np.ndarray and dy.dtype is y.dtype and dy.shape == y.shape):
                dy = check_cotangent(self, dy, y)
            mask = np.greater(x, 0, out=_buffers.empty(x.shape, np.bool_) if big else None)
            out = _buffers.empty(x.shape, x.dtype) if big else None
            try:  # (computed even when not needed, as the short form does: same errors)
                dx = np.multiply(dy, mask, out=out)
            except (FloatingPointError, RuntimeWarning):  # as call_underflow_retried
                with np.errstate(under="ignore"):
                    dx = np.multiply(dy, mask, out=out)
            return self, (dx if need_dx else None)

        return y, pullback


checked_pullback(ReLU)  # dlayer is the layer itself, dx = dy·[x > 0] has x's shape and dtype


def _finite_nonneg(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(_arrays.real(value)) and value >= 0):
        raise ValueError(
            f"{type(instance).__name__}: {attribute.name} must be a finite number >= 0, "
            f"got {value!r}"
        )


@attrs.frozen(eq=False)
class LeakyReLU(_Elementwise):
    """``y = x`` for x > 0, ``negative_slope · x`` otherwise; ``dx = dy · (1 or slope)``."""

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

    negative_slope: float = attrs.field(default=0.01, validator=_finite_nonneg)

    @property
    def name(self) -> str:
        return f"LeakyReLU(negative_slope={self.negative_slope})"

    @_arrays.underflow_retried
    def _f(self, x: Array) -> Array:
        return np.where(x > 0, x, x * x.dtype.type(self.negative_slope))

    @_arrays.underflow_retried
    def _df(self, x: Array, y: Array) -> Array:
        out: Array = np.where(x > 0, x.dtype.type(1), x.dtype.type(self.negative_slope))
        return out


@attrs.frozen(eq=False)
class ELU(_Elementwise):
    """``y = x`` for x > 0, ``alpha · (eˣ − 1)`` otherwise; ``dx = dy · (1 or y + alpha)``."""

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

    alpha: float = attrs.field(default=1.0, validator=_finite_nonneg)

    @property
    def name(self) -> str:
        return f"ELU(alpha={self.alpha})"

    @_arrays.underflow_retried
    def _f(self, x: Array) -> Array:
        neg = x.dtype.type(self.alpha) * np.expm1(np.minimum(x, 0))
        return np.where(x > 0, x, neg)

    @_arrays.underflow_retried
    def _df(self, x: Array, y: Array) -> Array:
        out: Array = np.where(x > 0, x.dtype.type(1), y + x.dtype.type(self.alpha))
        return out


@attrs.frozen(eq=False)
class Tanh(_Elementwise):
    """``y = tanh(x)``; ``dx = dy · (1 − y²)``."""

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

    def _f(self, x: Array) -> Array:
        out: Array = np.tanh(x)
        return out

    @_arrays.underflow_retried
    def _df(self, x: Array, y: Array) -> Array:
        out: Array = 1 - y * y
        return out


@_arrays.underflow_retried
def sigmoid(x: Array) -> Array:
    """Logistic function 1 / (1 + e⁻ˣ) for any x: no overflow, and underflow (σ(−1000) = 0)
    is the correct result, never an error whatever ``np.errstate`` says."""
    e = np.exp(-np.abs(x))
    out: Array = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return out


@attrs.frozen(eq=False)
class Sigmoid(_Elementwise):
    """``y = 1 / (1 + e⁻ˣ)``; ``dx = dy · y · (1 − y)``."""

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

    def _f(self, x: Array) -> Array:
        return sigmoid(x)

    @_arrays.underflow_retried
    def _df(self, x: Array, y: Array) -> Array:
        out: Array = y * (1 - y)
        return out


_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715
# Beyond |x| = 10, tanh(c(x + k x³)) = tanh(±43.6...) is ±1 to the last bit of float64, so
# evaluating it at the clipped x changes no value and keeps x³ from overflowing.
_GELU_CLIP = 10.0


def _gelu_tanh(x: Array) -> tuple[Array, Array]:
    """``(x clipped to ±10, tanh(c(x + k x³)))``: the same bits as unclipped, no overflow."""
    xc = np.clip(x, -_GELU_CLIP, _GELU_CLIP)
    return xc, np.tanh(_GELU_C * (xc + _GELU_K * (xc * xc * xc)))  # x*x*x: float32 pow is slow


@attrs.frozen(eq=False)
class GELU(_Elementwise):
    """GELU, tanh approximation: ``y = ½x(1 + tanh(u))``, ``u = c(x + k x³)``.

    With ``c = √(2/π)``, ``k = 0.044715`` and ``t = tanh(u)``:
    ``dy/dx = ½(1 + t) + ½x(1 − t²)·c(1 + 3k x²)``. For |x| ≥ 10, t is ±1 exactly, so
    ``y = x`` or ``−0`` and the slope is 1 or 0 (computed without forming x³, which would
    overflow for large finite x).
    """

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

    @_arrays.underflow_retried
    def _f(self, x: Array) -> Array:
        t = _gelu_tanh(x)[1]
        out: Array = 0.5 * x * (1 + t)
        return out

    @_arrays.underflow_retried
    def _df(self, x: Array, y: Array) -> Array:
        xc, t = _gelu_tanh(x)
        out: Array = 0.5 * (1 + t) + 0.5 * xc * (1 - t * t) * _GELU_C * (1 + 3 * _GELU_K * xc * xc)
        return out


@_arrays.underflow_retried
def _softmax(x: Array) -> Array:
    e: Array = np.exp(_arrays.shift_by_max(x))
    e /= e.sum(axis=-1, keepdims=True)
    return e


@attrs.frozen(eq=False)
class Softmax(Layer):
    """Softmax over the last axis: ``y_i = e^{x_i} / Σ_j e^{x_j}``.

    Backward (Jacobian ``diag(y) − y yᵀ`` per row): ``dx = y ⊙ (dy − Σ_j dy_j y_j)``.
    Computed with the row maximum subtracted first, so logits of ±1000 do not
    overflow; probabilities that underflow are 0, never an error. For
    classification prefer a linear output with ``fnn.losses.softmax_cross_entropy``,
    which is more accurate than ``Softmax`` followed by a log.
    """

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

    input_layout = "(batch, ..., classes)"

    def apply(self, x: Array) -> Array:
        if x.ndim < 2:
            raise ValueError(
                f"Softmax: x must have shape (batch, ..., classes), got {x.shape}; "
                "add a batch axis with x[None] or a class axis with x.reshape(-1, 1)"
            )
        return _softmax(x)

    def backward(self, x: Array, y: Array, dy: Array) -> tuple[dict[str, Array], Array]:
        out: Array = y * (dy - (dy * y).sum(axis=-1, keepdims=True))
        return {}, out
