"""Normalisation layers: LayerNorm (per example) and BatchNorm (per channel, over the batch).

Both compute ``x̂ = (x − μ) / σ`` with ``σ = sqrt(v + eps)`` and return
``y = γ·x̂ + β`` with learned ``γ`` (``gamma``) and ``β`` (``beta``) of shape
``(channels,)`` (the last axis). They differ in the axes ``A`` over which the
mean ``μ`` and the (biased) variance ``v`` are taken: LayerNorm uses the last
axis of each example, BatchNorm every axis but the last (the batch and, for
images, height and width).

Backward, with δ = dL/dy, g = δ·γ and means over the ``m`` entries of ``A``:

    dL/dx = (1/σ) · (g − mean_A(g) − x̂ · mean_A(g · x̂)),
    dL/dγ = Σ δ · x̂,   dL/dβ = Σ δ   (sums over every axis but the last).

(Differentiate x̂ = (x − μ)/σ through μ and σ: ∂μ/∂x = 1/m and
∂σ/∂x = x̂/(m·σ), so the two mean terms are the paths through μ and σ.)

**Batch-norm state.** Running statistics are part of the network value, not
hidden state. ``BatchNorm`` declares ``running_mean`` and ``running_var`` with
``state_field()``: they get zero gradients, optimizers leave them alone and
``fnn.tree.state_paths`` lists them. The layer is ``stateful``:

- in **training mode** it normalises with the batch statistics; the pure step
  ``vjp_with_state`` returns, besides ``(y, pullback)``, the layer with
  ``running ← momentum·running + (1 − momentum)·batch`` (biased batch
  variance). At network level, ``fnn.value_and_grad(..., with_state=True)``
  returns ``(loss, grads, new_net)``: apply the optimizer to ``new_net`` (its
  parameters equal ``net``'s; only the statistics moved). Plain ``forward`` and
  ``vjp`` never change the statistics.
- in **evaluation mode** (``training=False``, the default of ``fnn.forward``)
  it normalises with the running statistics: a fixed affine map, so the output
  is deterministic and does not depend on the rest of the batch.

Example:
    >>> import numpy as np
    >>> layer, _ = BatchNorm().init(0, (3,), np.float64)
    >>> x = np.arange(12.0).reshape(4, 3)
    >>> y, pullback, new = layer.vjp_with_state(x, training=True)
    >>> np.round(y.mean(axis=0), 12).tolist(), np.round(new.running_mean, 6).tolist()
    ([0.0, 0.0, 0.0], [0.45, 0.55, 0.65])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, cast

import attrs
import numpy as np

from fnn import _arrays, parallel
from fnn.layers import _im2col as ops
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
    state_field,
)
from fnn.random import KeyLike

__all__ = ["BatchNorm", "LayerNorm"]


def _positive_float(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    ok = isinstance(value, int | float | np.floating) and not isinstance(value, bool)
    if not (ok and math.isfinite(_arrays.real(value)) and float(value) > 0):  # type: ignore[arg-type]
        raise ValueError(
            f"{type(instance).__name__}: {attribute.name} must be a finite number > 0, "
            f"got {value!r}"
        )


def _unit_interval(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    ok = isinstance(value, int | float | np.floating) and not isinstance(value, bool)
    if not (ok and 0.0 <= _arrays.real(value) < 1.0):  # type: ignore[arg-type]
        raise ValueError(
            f"{type(instance).__name__}: {attribute.name} must be in [0, 1) (the weight of "
            f"the old running statistics, e.g. 0.9), got {value!r}"
        )


def _normalize_vjp(
    x: Array, axes: tuple[int, ...], eps: float, gamma: Array, beta: Array
) -> tuple[Array, Array, Array, Array, Array]:
    """``(y, x̂, 1/σ, μ, v)`` for statistics over ``axes`` (kept as size-1 axes)."""
    mu = x.mean(axis=axes, keepdims=True)
    centred = x - mu
    var = np.mean(np.square(centred), axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(var + x.dtype.type(eps))
    xhat = centred * inv
    return xhat * gamma + beta, xhat, inv, mu, var


def _normalize_pullback(
    dy: Array, xhat: Array, inv: Array, gamma: Array, axes: tuple[int, ...]
) -> Array:
    """dL/dx = (1/σ)·(g − mean_A(g) − x̂·mean_A(g·x̂)) with g = δ·γ."""
    g = dy * gamma
    out: Array = inv * (
        g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True)
    )
    return out


Chunks = list[tuple[int, int]]


class _Vec(NamedTuple):
    """A per-channel vector and, made once for all chunks, its tiled row (``_arrays.tiled_row``)."""

    vec: Array
    tiled: Array | None

    @classmethod
    def of(cls, vec: Array) -> _Vec:
        return cls(vec, _arrays.tiled_row(vec))

    def apply(self, op: np.ufunc, rows: Array, out: Array) -> Array:
        """``op(rows, vec, out=out)`` for ``(m, c)`` rows, on long rows: the same bits."""
        return _arrays.per_channel(op, rows, self.vec, out, self.tiled)


def _centred(x: Array, mu: _Vec, a: int, b: int) -> Array:
    """``x[a:b] − μ`` in a fresh buffer (a chunk's temporary, recomputed rather than stored)."""
    return mu.apply(np.subtract, x[a:b], ops.empty((b - a, x.shape[1]), x.dtype))


def _row_chunks(x: Array) -> Chunks:
    """Row chunks of an ``(m, channels)`` matrix for ``fnn.parallel.map`` (3 buffers per row)."""
    return parallel.split(x.shape[0], item_bytes=3 * x.shape[1] * x.dtype.itemsize)


def _chunk_sums(chunks: Chunks, sum_of: Callable[[int, int], Array]) -> Array:
    """``Σ`` over all chunks of ``sum_of(start, stop)`` (a per-column vector), in chunk order."""
    parts = parallel.map(lambda c: sum_of(*c), chunks)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _batch_stats(x: Array, chunks: Chunks) -> tuple[Array, Array]:
    """Per-column mean and biased variance of ``x`` ``(m, channels)``, two passes by chunks.

    Each chunk's ``x − μ`` is a temporary that stays in cache; its column sums
    (:func:`ops.column_sums`) and sums of squares (:func:`ops.column_dots`) are
    added in chunk order.
    """
    count = x.dtype.type(x.shape[0])
    mu = _chunk_sums(chunks, lambda a, b: ops.column_sums(x[a:b])) / count
    mu_row = _Vec.of(mu)

    def squares(a: int, b: int) -> Array:
        t = _centred(x, mu_row, a, b)
        return ops.column_dots(t, t)

    return mu, _chunk_sums(chunks, squares) / count


def _normalize(x: Array, mu: Array, scale: Array, beta: Array, chunks: Chunks) -> Array:
    """``y = (x − μ)·s + β`` by row chunks (``s = γ/σ``); ``x̂`` is never stored."""
    y = ops.empty(x.shape, x.dtype)
    mu_row, scale_row, beta_row = _Vec.of(mu), _Vec.of(scale), _Vec.of(beta)

    def rows(chunk: tuple[int, int]) -> None:
        a, b = chunk
        out = mu_row.apply(np.subtract, x[a:b], y[a:b])
        scale_row.apply(np.multiply, out, out)
        beta_row.apply(np.add, out, out)

    parallel.map(rows, chunks)
    return y


def _batch_norm_grads(
    x: Array, dy: Array, mu: Array, inv: Array, scale: Array, training: bool, need_dx: bool
) -> tuple[Array, Array, Array | None]:
    """``(dL/dγ, dL/dβ, dL/dx)`` for rows ``(m, channels)`` normalised with ``μ`` and ``1/σ``.

    dL/dβ = Σ δ and dL/dγ = Σ δ·x̂ = (1/σ)·Σ δ·(x − μ). In evaluation mode
    dL/dx = δ·s with ``s = γ/σ``. In training mode, with ``g = δ·γ``:
    ``mean(g) = γ·Σδ/m`` and ``mean(g·x̂) = γ·Σ(δ·x̂)/m``, so
    dL/dx = (γ/σ)·(δ − x̂·Σ(δ·x̂)/m − Σδ/m), computed per chunk as
    ``δ·s − (x − μ)·(s·dγ/(σ·m)) − s·dβ/m``. ``x − μ`` is recomputed per chunk
    rather than stored.
    """
    chunks = _row_chunks(x)
    mu_row = _Vec.of(mu)

    def sums(chunk: tuple[int, int]) -> tuple[Array, Array]:
        a, b = chunk
        t = _centred(x, mu_row, a, b)
        return ops.column_sums(dy[a:b]), ops.column_dots(t, dy[a:b])

    parts = parallel.map(sums, chunks)
    dbeta, dgamma = parts[0]
    for dbeta_part, dgamma_part in parts[1:]:  # in chunk order
        dbeta, dgamma = dbeta + dbeta_part, dgamma + dgamma_part
    dgamma = dgamma * inv
    if not need_dx:
        return dgamma, dbeta, None
    count = dy.dtype.type(dy.shape[0])
    a_coef, c_coef = scale * inv * dgamma / count, scale * dbeta / count
    dx = ops.empty(dy.shape, dy.dtype)
    scale_row = _Vec.of(scale)
    through_stats = (_Vec.of(a_coef), _Vec.of(c_coef)) if training else None

    def rows(chunk: tuple[int, int]) -> None:
        lo, hi = chunk
        out = scale_row.apply(np.multiply, dy[lo:hi], dx[lo:hi])
        if through_stats is not None:  # the paths through μ and σ
            a_row, c_row = through_stats
            t = _centred(x, mu_row, lo, hi)
            a_row.apply(np.multiply, t, t)
            out -= t
            c_row.apply(np.subtract, out, out)

    parallel.map(rows, chunks)
    return dgamma, dbeta, dx


@attrs.frozen(eq=False)
class _Norm(Layer):
    """Shared parameters, checks and init of the normalisation layers."""

    eps: float = attrs.field(default=1e-5, kw_only=True, validator=_positive_float)
    gamma: Array | None = param_field()
    beta: Array | None = param_field()

    def output_shape(self, in_shape: Shape) -> Shape:
        if len(in_shape) < 1:
            raise ValueError(f"{self.name}: needs at least one feature axis, got {in_shape}")
        return in_shape

    def _fields_for(self, channels: int, dtype: np.dtype) -> dict[str, Any]:
        return {"gamma": np.ones(channels, dtype), "beta": np.zeros(channels, dtype)}

    def init(self, key: KeyLike, in_shape: Shape, dtype: np.dtype) -> tuple[Any, Shape]:
        out = self.output_shape(in_shape)
        return attrs.evolve(self, **self._fields_for(in_shape[-1], np.dtype(dtype))), out

    def _check(self, x: object) -> Array:
        if self.gamma is None:
            check_built(self)
        x = check_input(self, x, None, "(batch, ..., channels)")
        gamma = cast(Array, self.gamma)
        if x.ndim < 2 or x.shape[-1] != gamma.shape[0]:
            raise ValueError(
                f"{self.name}: x has shape {x.shape} but this layer was built for "
                f"(batch, ..., {gamma.shape[0]}); normalised features are on the last axis"
            )
        check_dtype(self, x, gamma)
        return x

    @staticmethod
    def _param_axes(x: Array) -> tuple[int, ...]:
        return tuple(range(x.ndim - 1))


@attrs.frozen(eq=False)
class LayerNorm(_Norm):
    """Layer normalisation over the last axis of each example.

    ``y = γ · (x − μ) / sqrt(v + eps) + β`` with ``μ``, ``v`` the mean and
    biased variance of ``x[..., :]`` along the last axis (per example and, for
    images, per pixel). The same in training and evaluation mode. Backward as
    in the module docstring with ``A`` = the last axis.

    Args:
        eps: added to the variance (default ``1e-5``).

    Raises:
        ValueError: ``eps`` not > 0; ``x`` of the wrong feature size.
        TypeError: ``x`` is not a floating array of the parameters' dtype.

    Example:
        >>> import numpy as np
        >>> layer, _ = LayerNorm().init(0, (4,), np.float64)
        >>> y = layer.forward(np.array([[1.0, 2.0, 3.0, 4.0]]))
        >>> round(float(y.mean()), 12), round(float(y.std()), 4)
        (0.0, 1.0)
    """

    def forward(self, x: Array, *, key: KeyLike | None = None, training: bool = False) -> Array:
        x = self._check(x)
        return _normalize_vjp(x, (-1,), self.eps, cast(Array, self.gamma), cast(Array, self.beta))[
            0
        ]

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        x = self._check(x)
        gamma = cast(Array, self.gamma)
        y, xhat, inv, _, _ = _normalize_vjp(x, (-1,), self.eps, gamma, cast(Array, self.beta))

        def pullback(dy: Array) -> tuple[LayerNorm, Array | None]:
            dy = check_cotangent(self, dy, y)
            axes = self._param_axes(dy)
            dgamma, dbeta = (dy * xhat).sum(axis=axes), dy.sum(axis=axes)
            dx = _normalize_pullback(dy, xhat, inv, gamma, (-1,)) if need_dx else None
            return self.zero_grad_like(gamma=dgamma, beta=dbeta), dx

        return y, pullback


@attrs.frozen(eq=False)
class BatchNorm(_Norm):
    """Batch normalisation per channel (the last axis), over the batch and spatial axes.

    Training mode: ``y = γ · (x − μ_B) / sqrt(v_B + eps) + β`` with the batch
    mean ``μ_B`` and biased variance ``v_B`` over every axis but the last.
    Evaluation mode: the same with ``running_mean`` and ``running_var``, so
    ``dL/dx = δ·γ / sqrt(running_var + eps)``. Training-mode backward is in the
    module docstring, which also explains how the running statistics are
    updated (``vjp_with_state``; ``fnn.value_and_grad(..., with_state=True)``).

    Args:
        momentum: weight of the old running statistics in
            ``running ← momentum·running + (1 − momentum)·batch``, in ``[0, 1)``
            (default 0.9; PyTorch's ``momentum=0.1`` is this ``0.9``).
        eps: added to the variance (default ``1e-5``).

    Raises:
        ValueError: ``momentum`` outside ``[0, 1)``, ``eps`` not > 0, or ``x``
            of the wrong channel count.
        TypeError: ``x`` is not a floating array of the parameters' dtype.

    Example:
        >>> import numpy as np
        >>> layer, _ = BatchNorm().init(0, (2, 2, 3), np.float32)
        >>> x = np.ones((5, 2, 2, 3), np.float32)
        >>> layer.forward(x).shape, layer.running_var.tolist()
        ((5, 2, 2, 3), [1.0, 1.0, 1.0])
    """

    stateful: ClassVar[bool] = True

    momentum: float = attrs.field(default=0.9, kw_only=True, validator=_unit_interval)
    running_mean: Array | None = state_field()
    running_var: Array | None = state_field()

    def _fields_for(self, channels: int, dtype: np.dtype) -> dict[str, Any]:
        return {
            **super()._fields_for(channels, dtype),
            "running_mean": np.zeros(channels, dtype),
            "running_var": np.ones(channels, dtype),
        }

    def forward(self, x: Array, *, key: KeyLike | None = None, training: bool = False) -> Array:
        return self.vjp(x, training=training, need_dx=False)[0]

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        return self.vjp_with_state(x, key=key, training=training, need_dx=need_dx)[:2]

    def vjp_with_state(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback, BatchNorm]:
        x = self._check(x)
        gamma, beta = cast(Array, self.gamma), cast(Array, self.beta)
        if training and x.shape[0] == 0:
            raise ValueError(
                f"{self.name}: an empty batch (shape {x.shape}) has no batch statistics; "
                "pass at least one example"
            )
        x2 = x.reshape(-1, x.shape[-1])  # (batch·height·width, channels)
        chunks = _row_chunks(x2)
        if training:
            mu, var = _batch_stats(x2, chunks)
            m = x.dtype.type(self.momentum)
            new = attrs.evolve(
                self,
                running_mean=m * cast(Array, self.running_mean) + (1 - m) * mu,
                running_var=m * cast(Array, self.running_var) + (1 - m) * var,
            )
        else:
            mu, var, new = cast(Array, self.running_mean), cast(Array, self.running_var), self
        inv = 1.0 / np.sqrt(var + x.dtype.type(self.eps))
        y = _normalize(x2, mu, gamma * inv, beta, chunks).reshape(x.shape)

        def pullback(dy: Array) -> tuple[BatchNorm, Array | None]:
            dy = check_cotangent(self, dy, y)
            dy2 = dy.reshape(x2.shape)
            dgamma, dbeta, dx = _batch_norm_grads(
                x2, dy2, mu, inv, gamma * inv, training, need_dx
            )
            grads = self.zero_grad_like(gamma=dgamma, beta=dbeta)
            return grads, (None if dx is None else dx.reshape(x.shape))

        return y, pullback, new
