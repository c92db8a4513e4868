"""Stride-1 convolutions as sums of shifted matrix products, without an im2col matrix (private).

With stride 1, the output at ``(p, q)`` reads ``xp[p + i·dh, q + j·dw]`` for
kernel offset ``(i, j)``. Lay a chunk of ``m`` padded images out flat, one
row of ``c_in`` values per padded pixel: ``X[(n·hp + r)·wp + s] = xp[n, r, s]``.
Then offset ``(i, j)`` of the output at flat row ``t = (n·hp + p)·wp + q``
reads row ``t + o_ij`` with ``o_ij = i·dh·wp + j·dw``: the same shift for
every output, so

    Y = Σ_{i,j} X[o_ij : o_ij + L] · w[i, j] + b,    L = m·hp·wp rows,

``kh·kw`` products with ``K = c_in`` on contiguous slices of ``X``, added up;
no ``(rows, kh·kw·c_in)`` matrix is written. The rows of ``Y`` whose ``(p, q)``
lies outside the output (the last ``k_eff − 1`` columns of each padded row
and rows of each image) are computed and dropped.

Backward, with δ laid out on the same flat grid (zero on the dropped rows):

    dL/dw[i, j] = X[o_ij : o_ij + L]ᵀ · δ,    dL/db = Σ_rows δ,
    dL/dX[u] = Σ_{i,j} δ[u − o_ij] · w[i, j]ᵀ,

and dL/dx is the interior of dL/dX. Only ``X`` (the padded input, not nine
copies of it) is kept for the backward pass.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fnn.layers import _im2col as ops
from fnn.layers._base import Array

__all__ = ["Grid", "backward", "forward", "grid"]


class Grid(NamedTuple):
    """The flat padded grid of an image: ``hp x wp`` rows, the kernel's row offsets, the pads."""

    hp: int
    wp: int
    out_hw: tuple[int, int]
    pads: ops.Pads
    offsets: tuple[int, ...]

    @property
    def reach(self) -> int:
        """The largest offset: rows of zeros kept after (dL/dX: before) the grid."""
        return self.offsets[-1]


def grid(
    hw: tuple[int, int], pads: ops.Pads, kernel: tuple[int, int], dilation: tuple[int, int]
) -> Grid:
    """The :class:`Grid` of an ``hw`` image padded by ``pads`` for a stride-1 kernel.

    A row of the grid is ``left`` zeros and the image row, then as many zeros as
    the right padding needs beyond the next row's ``left`` (which serve as this
    row's right padding too); images stack the same way. For "same" padding of
    a 3x3 kernel on 14x14 that is a 15x15 grid instead of 16x16: 12% fewer rows.
    """
    (t, b), (left, r) = pads
    (kh, kw), (dh, dw) = kernel, dilation
    k_h, k_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    out_hw = (hw[0] + t + b - k_h + 1, hw[1] + left + r - k_w + 1)
    # Neighbours share their padding: the zeros after one row (image) are the zeros before
    # the next, so a row holds left + width + max(0, right − left) cells. Valid when no
    # output reads past them (min(left, right) <= k_w − 1, as for "same"; else both pads).
    hp = hw[0] + (max(t, b) if min(t, b) <= k_h - 1 else t + b)
    wp = hw[1] + (max(left, r) if min(left, r) <= k_w - 1 else left + r)
    offsets = tuple(i * dh * wp + j * dw for i in range(kh) for j in range(kw))
    return Grid(hp, wp, out_hw, pads, offsets)


def forward(x: Array, w: Array, bias: Array | None, g: Grid, y: Array) -> Array:
    """Convolve a chunk into ``y`` ``(m, out_h, out_w, c_out)``; return its flat padded ``X``.

    ``w`` is the kernel as ``(kh·kw, c_in, c_out)``.
    """
    m, height, width, c = x.shape
    rows = m * g.hp * g.wp
    flat = np.zeros((rows + g.reach, c), x.dtype)  # X, then zeros for the last shifts
    (t, _), (left, _) = g.pads
    flat[:rows].reshape(m, g.hp, g.wp, c)[:, t : t + height, left : left + width] = x
    acc = ops.empty((rows, w.shape[2]), x.dtype)
    _sum_of_products(flat, w, g.offsets, acc)
    if bias is not None:
        acc += bias
    oh, ow = g.out_hw
    y[...] = acc.reshape(m, g.hp, g.wp, -1)[:, :oh, :ow]
    return flat


def _sum_of_products(src: Array, w: Array, starts: tuple[int, ...], out: Array) -> None:
    """``out = Σ_k src[starts[k] : starts[k] + len(out)] · w[k]``, in blocks of rows.

    Each block's products are small enough for OpenBLAS's small-matrix kernel
    (``m·n·k <= 1e6``, :func:`fnn.layers._im2col.split_bytes`) and are added while
    the block is in cache. Blocks are used only when they have at least 244 rows
    (``c_in·c_out <= 4096``); larger products run fast as they are.
    """
    rows, n = out.shape
    work = w.shape[1] * n
    block = rows if work > 4096 else max(1, ops.SMALL_GEMM // work)
    tmp = ops.empty((min(block, rows), n), out.dtype)
    for r0 in range(0, rows, block):
        r1 = min(rows, r0 + block)
        acc, part = out[r0:r1], tmp[: r1 - r0]
        ops.matmul(src[starts[0] + r0 : starts[0] + r1], w[0], out=acc)
        for k in range(1, len(starts)):
            ops.matmul(src[starts[k] + r0 : starts[k] + r1], w[k], out=part)
            acc += part


def _weight_grads(src: Array, delta: Array, starts: tuple[int, ...]) -> Array:
    """``dw[k] = src[starts[k] : starts[k] + len(delta)]ᵀ · delta``, summed over blocks of rows.

    Blocked like :func:`_sum_of_products`, in blocks of at most 1024 rows.
    """
    rows, n = delta.shape
    c = src.shape[1]
    # at most 1024 rows per product: each product sums its rows in float32 in one run
    # (16 -> 16 on 13x13 valid, largest error of dL/dw in float32: 1.4e-6 with blocks of
    # 3906 rows, 6.6e-7 with 1024), at no measurable cost in time
    block = min(1024, rows if c * n > 4096 else max(1, ops.SMALL_GEMM // (c * n)))
    dw = np.zeros((len(starts), c, n), delta.dtype)
    part = np.empty((c, n), delta.dtype)
    for r0 in range(0, rows, block):
        r1 = min(rows, r0 + block)
        for k, o in enumerate(starts):
            ops.matmul(src[o + r0 : o + r1].T, delta[r0:r1], out=part)
            dw[k] += part
    return dw


def backward(
    dy: Array, flat: Array, w_t: Array | None, g: Grid, dx: Array | None
) -> tuple[Array, Array]:
    """Pull a chunk's ``dy`` back: returns ``(dL/dw as (kh·kw, c_in, c_out), dL/db)``.

    ``flat`` is the chunk's ``X`` from :func:`forward`; ``w_t`` the kernel as
    ``(kh·kw, c_out, c_in)``, needed only with ``dx``, into which dL/dx is written.
    """
    m, oh, ow, k = dy.shape
    rows = m * g.hp * g.wp
    delta = np.zeros((g.reach + rows, k), dy.dtype)  # zeros before the grid for dL/dX
    d = delta[g.reach :]
    d.reshape(m, g.hp, g.wp, k)[:, :oh, :ow] = dy
    dw = _weight_grads(flat, d, g.offsets)
    db = ops.column_sums(d)
    if dx is not None and w_t is not None:
        acc = ops.empty((rows, w_t.shape[2]), dy.dtype)
        _sum_of_products(delta, w_t, tuple(g.reach - o for o in g.offsets), acc)
        (t, _), (left, _) = g.pads
        dx[...] = acc.reshape(m, g.hp, g.wp, -1)[:, t : t + dx.shape[1], left : left + dx.shape[2]]
    return dw, db


class Shifted:
    """A Conv2D's shifted products over one batch, chunk by chunk (``Conv2D._planned_vjp``).

    Keeps each chunk's flat padded input when ``keep``.
    """

    def __init__(
        self,
        w: Array,
        bias: Array | None,
        x_shape: tuple[int, ...],
        pads: ops.Pads,
        dilation: tuple[int, int],
        keep: bool,
    ) -> None:
        _, height, width, c_in = x_shape
        self.g = grid((height, width), pads, (w.shape[0], w.shape[1]), dilation)
        self.shape, self.bias, self.keep = w.shape, bias, keep
        self.w = w.reshape(-1, w.shape[2], w.shape[3])
        self.flats: dict[tuple[int, int], Array] = {}
        # four blocks of rows per chunk (the blocks keep the products small; 1-8 blocks per
        # chunk measured within 5% of each other on the ResNet-style block)
        self.item_bytes = max(1, ops.split_bytes(self.g.hp * self.g.wp * c_in * w.shape[3]) // 4)
        self.w_t: Array | None = None

    def forward(self, chunk: tuple[int, int], x: Array, y: Array) -> None:
        """Write the chunk's output into ``y`` (and keep its padded input)."""
        flat = forward(x, self.w, self.bias, self.g, y)
        if self.keep:
            self.flats[chunk] = flat

    def prepare_backward(self, need_dx: bool) -> None:
        """Make the per-offset ``w[i, j]ᵀ`` contiguous once per pullback."""
        self.w_t = np.ascontiguousarray(self.w.transpose(0, 2, 1)) if need_dx else None

    def backward(self, chunk: tuple[int, int], dy: Array, dx: Array | None) -> tuple[Array, Array]:
        """``(dL/dw as (kh·kw, c_in, c_out), dL/db)`` of the chunk; dL/dx into ``dx``."""
        return backward(dy, self.flats[chunk], self.w_t, self.g, dx)

    def kernel_grad(self, dw: Array) -> Array:
        """dL/dw ``(kh, kw, c_in, c_out)`` from the chunks' sum."""
        return dw.reshape(self.shape)
