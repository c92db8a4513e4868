"""Pooling over ``(batch, height, width, channels)`` images: max, average and global average.

A window of ``(ph, pw)`` cells slides with stride ``(sh, sw)`` over each channel
of the (optionally padded) input. The layers loop over the ``ph·pw`` window
offsets, each step one vectorised operation on a whole
``(batch, out_h, out_w, channels)`` block (no loops over pixels or examples).

Windows need not divide the input: with ``"valid"`` padding the cells that no
window reaches are ignored (their gradient is zero); with ``"same"`` the input
is padded so that ``out = ceil(n / stride)``. Padding cells never count: max
pooling pads with −∞, average pooling divides by the number of real cells in
each window.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np

from fnn import parallel
from fnn._diagnose import channels_first_hint
from fnn.layers import _im2col as ops
from fnn.layers import _pool_ops as pool_ops
from fnn.layers._base import Array, Layer, Pullback, Shape, check_input, input_only_pullback
from fnn.random import KeyLike

__all__ = ["AvgPool2D", "GlobalAvgPool2D", "MaxPool2D"]


def _check_strides(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        ops.check_pair(instance, attribute, value)


@attrs.frozen(eq=False)
class _Pool2D(Layer):
    """Shared configuration and geometry of the windowed pooling layers."""

    pool_size: tuple[int, int] = attrs.field(
        default=(2, 2), converter=ops.to_pair, validator=ops.check_pair
    )
    strides: tuple[int, int] | None = attrs.field(
        default=None, kw_only=True, converter=ops.to_pair, validator=_check_strides
    )
    padding: str | ops.Pads = attrs.field(
        default="valid", kw_only=True, converter=ops.to_padding, validator=ops.check_padding
    )

    def __attrs_post_init__(self) -> None:
        if isinstance(self.padding, tuple):
            for (before, after), k in zip(self.padding, self.pool_size, strict=True):
                if max(before, after) >= k:
                    raise ValueError(
                        f"{type(self).__name__}: padding {self.padding} must be smaller than "
                        f"the window {self.pool_size} on each side, or a window could hold "
                        "only padding; use padding='same'"
                    )

    @property
    def name(self) -> str:
        ph, pw = self.pool_size
        return f"{type(self).__name__}(pool_size=({ph}, {pw}))"

    @property
    def _strides(self) -> tuple[int, int]:
        return self.pool_size if self.strides is None else self.strides

    def _geometry(
        self, hw: tuple[int, int], in_shape: Shape = ()
    ) -> tuple[ops.Pads, tuple[int, int]]:
        pads = ops.resolve_padding(self.padding, hw, self.pool_size, self._strides)
        out = tuple(
            ops.out_size(n, k, s, *p)
            for n, k, s, p in zip(hw, self.pool_size, self._strides, pads, strict=True)
        )
        if min(out) < 1:
            raise ValueError(
                f"{self.name}: the window is larger than the padded input "
                f"{hw[0] + sum(pads[0])}x{hw[1] + sum(pads[1])}; "
                + (channels_first_hint(in_shape) or "use padding='same' or a smaller pool_size")
            )
        return pads, (out[0], out[1])

    def output_shape(self, in_shape: Shape) -> Shape:
        h, w, c = ops.image_shape(self.name, in_shape)
        _, (oh, ow) = self._geometry((h, w), in_shape)
        return (oh, ow, c)

    def _offsets(self, out_hw: tuple[int, int]) -> list[tuple[int, int, tuple[slice, slice]]]:
        return ops.offsets(self.pool_size, self._strides, (1, 1), out_hw)

    def _check(self, x: object) -> Array:
        x = check_input(self, x, 4, "(batch, height, width, channels)")
        return x

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        x = self._check(x)
        pads, out_hw = self._geometry((x.shape[1], x.shape[2]))
        xp, y = self._pool(x, pads, out_hw)

        def dx_of(dy: Array) -> Array:
            return ops.unpad(self._scatter(xp, y, dy, pads, out_hw), pads)

        return y, input_only_pullback(self, y, dx_of, need_dx)

    def forward(self, x: Array, *, key: KeyLike | None = None, training: bool = False) -> Array:
        x = self._check(x)
        pads, out_hw = self._geometry((x.shape[1], x.shape[2]))
        return self._pool(x, pads, out_hw)[1]

    def _pool(self, x: Array, pads: ops.Pads, out_hw: tuple[int, int]) -> tuple[Array, Array]:
        """``(padded x, y)``."""
        raise NotImplementedError

    def _scatter(
        self, xp: Array, y: Array, dy: Array, pads: ops.Pads, out_hw: tuple[int, int]
    ) -> Array:
        """dL/dxp, the gradient on the padded input."""
        raise NotImplementedError


@attrs.frozen(eq=False)
class MaxPool2D(_Pool2D):
    """Max pooling: ``y[n, p, q, c] = max_{i<ph, j<pw} xp[n, p·sh + i, q·sw + j, c]``.

    Backward: the max is locally the selection of one cell, so dL/dx routes
    each δ[n, p, q, c] to the cell that achieved the maximum of its window and
    adds up the contributions of overlapping windows. **Ties**: when several
    cells of a window share the maximum, the whole gradient goes to the first
    of them in row-major window order (smallest ``i``, then smallest ``j``);
    the others get none from that window (a valid subgradient).

    Args:
        pool_size: ``k`` or ``(ph, pw)`` (default 2).
        strides: ``s`` or ``(sh, sw)``; defaults to ``pool_size`` (non-overlapping).
        padding: ``"valid"`` (default), ``"same"`` or explicit pads (each
            smaller than the window); padding cells hold −∞ and are never chosen.

    Raises:
        ValueError: non-positive sizes, padding not smaller than the window,
            a window larger than the padded input, or ``x`` not
            ``(batch, height, width, channels)``.
        TypeError: ``x`` is not a floating array.

    Example:
        >>> import numpy as np
        >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
        >>> MaxPool2D(2).forward(x)[0, :, :, 0]
        array([[ 5.,  7.],
               [13., 15.]])
    """

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

    def _pool(self, x: Array, pads: ops.Pads, out_hw: tuple[int, int]) -> tuple[Array, Array]:
        xp = ops.pad(x, pads, -np.inf)
        if self._strides == self.pool_size:
            y = ops.empty((x.shape[0], *out_hw, x.shape[3]), x.dtype)

            def run(chunk: tuple[int, int]) -> None:
                tiles = pool_ops.tiles(xp[chunk[0] : chunk[1]], self.pool_size, out_hw)
                pool_ops.max_pool_tiles(tiles, out=y[chunk[0] : chunk[1]])

            parallel.map(run, parallel.split(x.shape[0], item_bytes=x[:1].nbytes))
            return xp, y
        (_, _, first), *rest = self._offsets(out_hw)
        y = xp[:, first[0], first[1], :].copy()
        for _, _, (rows, cols) in rest:
            np.maximum(y, xp[:, rows, cols, :], out=y)
        return xp, y

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        if self._strides != self.pool_size or not need_dx:
            return super().vjp(x, key=key, training=training, need_dx=need_dx)
        # Non-overlapping windows: the forward pass also marks each window's first
        # maximum (pool_ops.max_pool_tiles_masks), per batch chunk and thread.
        x = self._check(x)
        pads, out_hw = self._geometry((x.shape[1], x.shape[2]))
        xp = ops.pad(x, pads, -np.inf)
        y = ops.empty((x.shape[0], *out_hw, x.shape[3]), x.dtype)
        chunks = parallel.split(x.shape[0], item_bytes=2 * xp[:1].nbytes)

        def run(chunk: tuple[int, int]) -> Array:
            tiles = pool_ops.tiles(xp[chunk[0] : chunk[1]], self.pool_size, out_hw)
            return pool_ops.max_pool_tiles_masks(tiles, out=y[chunk[0] : chunk[1]])

        parts = list(zip(chunks, parallel.map(run, chunks), strict=True))
        padded_shape = xp.shape  # the pullback keeps the masks, not xp

        def dx_of(dy: Array) -> Array:
            (ph, pw), (oh, ow) = self.pool_size, out_hw
            dxp = ops.empty(padded_shape, dy.dtype)
            if padded_shape[1:3] != (oh * ph, ow * pw):
                dxp.fill(0)  # cells no window reaches

            def back(part: tuple[tuple[int, int], Array]) -> None:
                (a, b), masks = part
                out6 = pool_ops.tiles(dxp[a:b], self.pool_size, out_hw)
                pool_ops.max_pool_tiles_grad(masks, dy[a:b], out6)

            parallel.map(back, parts)
            return ops.unpad(dxp, pads)

        return y, input_only_pullback(self, y, dx_of, need_dx)

    def _scatter(
        self, xp: Array, y: Array, dy: Array, pads: ops.Pads, out_hw: tuple[int, int]
    ) -> Array:
        offsets = self._offsets(out_hw)
        # Disjoint windows write each cell at most once (no scatter-add needed);
        # when they also tile the padded input, every cell is written.
        (ph, pw), (sh, sw) = self.pool_size, self._strides
        disjoint = sh >= ph and sw >= pw
        tiles = (ph, pw) == (sh, sw) and xp.shape[1:3] == (out_hw[0] * sh, out_hw[1] * sw)
        dxp = np.empty_like(xp) if tiles else np.zeros_like(xp)
        free = np.ones(y.shape, dtype=bool)  # windows whose maximum is not yet claimed
        hit = np.empty(y.shape, dtype=bool)
        for k, (_, _, (rows, cols)) in enumerate(offsets):
            np.equal(xp[:, rows, cols, :], y, out=hit)
            if k > 0:
                hit &= free
            if k < len(offsets) - 1:
                free ^= hit  # hit ⊆ free, so this removes the claimed windows
            if disjoint:
                np.multiply(dy, hit, out=dxp[:, rows, cols, :])
            else:
                dxp[:, rows, cols, :] += dy * hit
        return dxp


@attrs.frozen(eq=False)
class AvgPool2D(_Pool2D):
    """Average pooling: ``y[n, p, q, c] = (1 / m[p, q]) Σ_{i, j} xp[n, p·sh + i, q·sw + j, c]``.

    ``m[p, q]`` counts the real (non-padding) cells in window ``(p, q)``, so
    padding never dilutes the average (``ph·pw`` everywhere without padding).
    Backward: y is linear in x, so each δ[n, p, q, c] / m[p, q] is added to
    every real cell of its window (overlapping windows add up).

    Args:
        pool_size: ``k`` or ``(ph, pw)`` (default 2).
        strides: ``s`` or ``(sh, sw)``; defaults to ``pool_size``.
        padding: ``"valid"`` (default), ``"same"`` or explicit pads (each
            smaller than the window).

    Raises:
        ValueError: as for :class:`MaxPool2D`.
        TypeError: ``x`` is not a floating array.

    Example:
        >>> import numpy as np
        >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
        >>> AvgPool2D(2).forward(x)[0, :, :, 0]
        array([[ 2.5,  4.5],
               [10.5, 12.5]])
    """

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

    def _counts(self, hw: tuple[int, int], pads: ops.Pads, out_hw: tuple[int, int]) -> Array:
        """The real cells per window, shape ``(1, out_h, out_w, 1)`` (float64)."""
        ones = ops.pad(np.ones((1, *hw, 1)), pads)
        return sum((ones[:, r, c, :] for _, _, (r, c) in self._offsets(out_hw)), np.zeros(1))

    def _pool(self, x: Array, pads: ops.Pads, out_hw: tuple[int, int]) -> tuple[Array, Array]:
        xp = ops.pad(x, pads)
        (_, _, first), *rest = self._offsets(out_hw)
        total = xp[:, first[0], first[1], :].copy()
        for _, _, (rows, cols) in rest:
            total += xp[:, rows, cols, :]
        counts = self._counts((x.shape[1], x.shape[2]), pads, out_hw).astype(x.dtype)
        return xp, total / counts

    def _scatter(
        self, xp: Array, y: Array, dy: Array, pads: ops.Pads, out_hw: tuple[int, int]
    ) -> Array:
        hw = (xp.shape[1] - sum(pads[0]), xp.shape[2] - sum(pads[1]))
        share = dy / self._counts(hw, pads, out_hw).astype(dy.dtype)
        dxp = np.zeros_like(xp)
        for _, _, (rows, cols) in self._offsets(out_hw):
            dxp[:, rows, cols, :] += share
        return dxp


@attrs.frozen(eq=False)
class GlobalAvgPool2D(Layer):
    """Global average pooling: ``y[n, c] = (1 / (H·W)) Σ_{h, w} x[n, h, w, c]``.

    Backward: ``dL/dx[n, h, w, c] = δ[n, c] / (H·W)`` for every ``(h, w)``.

    Raises:
        ValueError: ``x`` is not ``(batch, height, width, channels)``.
        TypeError: ``x`` is not a floating array.

    Example:
        >>> import numpy as np
        >>> GlobalAvgPool2D().forward(np.arange(8.0).reshape(1, 2, 2, 2))
        array([[3., 4.]])
    """

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

    def output_shape(self, in_shape: Shape) -> Shape:
        return (ops.image_shape(self.name, in_shape)[2],)

    def forward(self, x: Array, *, key: KeyLike | None = None, training: bool = False) -> Array:
        x = check_input(self, x, 4, "(batch, height, width, channels)")
        out: Array = x.mean(axis=(1, 2))
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

        def dx_of(dy: Array) -> Array:
            share = dy / (x.shape[1] * x.shape[2])
            return np.broadcast_to(share[:, None, None, :], x.shape).copy()

        return y, input_only_pullback(self, y, dx_of, need_dx)
