"""Winograd F(2x2, 3x3) kernels for 3x3, stride-1, undilated convolutions (private).

A 3x3 convolution computes each 2x2 block of outputs from a 4x4 tile of the
padded input ``d`` (tiles overlap by two cells). Winograd's minimal filtering
algorithm writes that block as

    Y = Aᵀ [ U ⊙ V ] A,    U = G w Gᵀ (per input and output channel),    V = Bᵀ d B,

with, in the sign convention used here (the last row of ``Bᵀ`` and the last
column of ``Aᵀ`` are negated relative to the textbook form, which leaves ``Y``
unchanged and spares two negations),

    Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, −1, 0, 1]],
    G  = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]],
    Aᵀ = [[1, 1, 1, 0], [0, 1, −1, 1]].

Summing over input channels turns the element-wise product into 16 matrix
products, one per tile cell ξ = (u, v):

    M[ξ] = V[ξ] · U[ξ],   V[ξ] of shape (tiles, c_in), U[ξ] of shape (c_in, c_out),

16·c_in·c_out multiplications per 2x2 block instead of 36·c_in·c_out (2.25x
fewer). The transforms Bᵀ·B and Aᵀ·A are additions and subtractions, done on
whole arrays.

The backward pass is the exact adjoint of this computation (so it is the
gradient of the convolution, as the forward equals it), with dM = A dY Aᵀ the
cotangent of M:

    dU[ξ] = V[ξ]ᵀ · dM[ξ],   dw = Gᵀ dU G,
    dV[ξ] = dM[ξ] · U[ξ]ᵀ,   dd = B dV Bᵀ, scatter-added over the overlapping tiles,
    db = Σ dM[1, 1]  (the bias is added to M[1, 1], which reaches every output once).

Layouts (all chosen so that every transform step is one NumPy operation on
long contiguous runs):

- the padded input of a chunk of ``m`` images is split into its four *phases*
  ``P[ph, pw, a, b, n] = xp[n, 2a + ph, 2b + pw]`` (``a ≤ th``, ``b ≤ tw``):
  tile ``(a, b)`` reads rows ``2a..2a+3``, that is phase rows ``a`` and
  ``a + 1``, and likewise phase columns ``b`` and ``b + 1``;
- ``V``, ``M`` and their cotangents hold one row per tile, ``(16, th·tw·m,
  channels)``, in the order ``(a, b, n)``: the image is the inner index, so a
  shift by one tile row or column is a shift by a whole block of ``m·channels``
  values, and every transform step is one NumPy operation on runs of at least
  ``tw·m·channels`` values. Only the copies into the phases and out to ``y``
  and ``dx`` move runs of ``channels`` values.

NumPy matters here: an operation on views whose runs are shorter than its
ufunc buffer (8192 values) copies them through the buffer first, which made a
subtraction on runs of 224 or 1568 float32 values 2.6-2.9x slower than on
contiguous arrays (runs of 4096 and more: 1.15-1.2x; NumPy 2.4). The layout
before this one kept the image outermost and one spare column of tiles per
row, so that a shift by one tile column was a shift of the flat array; this
one spares the 12.5% of products and transformed tiles that column cost on
14x14 images (the block's conv vjp and pullback, one thread: 31.96 -> 28.22
ms, medians of 150 alternated runs).

Accuracy: the transforms multiply by 1 and ½ only; in float32 the outputs and
gradients differ from a float64 reference by a few units of 1e-7 relative to
their largest entry (``docs/math/conv.md`` has the measurements).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fnn.layers import _im2col as ops
from fnn.layers._base import Array
from fnn.layers._conv_rule import small_matrix_blas
from fnn.layers._im2col import Pads

__all__ = [
    "Tiling",
    "backward",
    "forward",
    "kernel_transform",
    "kernel_transform_adjoint",
    "tiling",
]

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


class Tiling(NamedTuple):
    """How an ``(height, width)`` image with padding ``pads`` is cut into 4x4 tiles.

    ``th x tw`` tiles cover the ``out_h x out_w``
    outputs; ``rows[ph] = (a0, r0, count)``: phase ``ph`` holds input rows
    ``r0, r0 + 2, ...`` (``count`` of them) at phase rows ``a0, a0 + 1, ...``;
    ``cols`` likewise for the columns.
    """

    height: int
    width: int
    out_h: int
    out_w: int
    th: int
    tw: int
    rows: tuple[tuple[int, int, int], ...]
    cols: tuple[tuple[int, int, int], ...]

    @property
    def tiles(self) -> int:
        """Tiles per image (rows of ``V`` and ``M``)."""
        return self.th * self.tw


def _phases(before: int, n: int, tiles: int) -> tuple[tuple[int, int, int], ...]:
    """``(a0, r0, count)`` per phase for ``n`` cells after ``before`` padding, ``tiles`` tiles."""
    out = []
    for phase in (0, 1):
        a0 = (before - phase + 1) // 2  # first phase row that holds an input cell
        r0 = 2 * a0 + phase - before
        out.append((a0, r0, max(0, min(tiles + 1 - a0, (n - r0 + 1) // 2))))
    return tuple(out)


def tiling(hw: tuple[int, int], pads: Pads) -> Tiling:
    """The :class:`Tiling` of an ``hw`` image padded by ``pads`` (a 3x3 kernel, stride 1)."""
    (t, b), (left, r) = pads
    out_h, out_w = hw[0] + t + b - 2, hw[1] + left + r - 2
    th, tw = -(-out_h // 2), -(-out_w // 2)
    return Tiling(*hw, out_h, out_w, th, tw, _phases(t, hw[0], th), _phases(left, hw[1], tw))


def kernel_transform(w: Array) -> Array:
    """``U[ξ] = (G w Gᵀ)[ξ]``: ``(3, 3, c_in, c_out)`` -> ``(16, c_in, c_out)``, in ``w``'s dtype.

    Computed in float64 and rounded once.
    """
    size = w.shape[2] * w.shape[3]
    gw = (_G @ w.reshape(3, 3 * size).astype(np.float64)).reshape(4, 3, size)  # over i
    u = np.matmul(_G, gw)  # over j: (4, 4, c_in·c_out)
    return np.ascontiguousarray(u.reshape(16, *w.shape[2:]), dtype=w.dtype)


def kernel_transform_adjoint(du: Array) -> Array:
    """``dw = Gᵀ dU G``: ``(16, c_in, c_out)`` -> ``(3, 3, c_in, c_out)``, in ``du``'s dtype."""
    size = du.shape[1] * du.shape[2]
    gdu = (_G.T @ du.reshape(4, 4 * size).astype(np.float64)).reshape(3, 4, size)  # over u
    dw: Array = np.matmul(_G.T, gdu)  # over v: (3, 3, c_in·c_out)
    return dw.reshape(3, 3, *du.shape[1:]).astype(du.dtype)


def _to_phases(x: Array, tl: Tiling) -> Array:
    """The zero-padded chunk ``x`` as its four phases ``(2, 2, th + 1, tw + 1, m, c)``."""
    p = ops.zeros((2, 2, tl.th + 1, tl.tw + 1, x.shape[0], x.shape[3]), x.dtype)
    for ph, (a0, r0, na) in enumerate(tl.rows):
        for pw, (b0, s0, nb) in enumerate(tl.cols):
            if na and nb:
                rows, cols = slice(r0, r0 + 2 * na - 1, 2), slice(s0, s0 + 2 * nb - 1, 2)
                p[ph, pw, a0 : a0 + na, b0 : b0 + nb] = x[:, rows, cols].transpose(1, 2, 0, 3)
    return p


def _input_transform(p: Array, tl: Tiling, v: Array) -> None:
    """``V = Bᵀ d B`` of every tile, written into ``v`` ``(16, tiles·m, c)``.

    Columns first: tile column ``b`` reads phase columns ``b`` and ``b + 1``, so
    ``q = d B`` has ``tw`` columns (no unused tile); then tile row ``a`` reads
    rows ``a`` and ``a + 1`` of ``q``, one block each.
    """
    th, tw = tl.th, tl.tw
    q = ops.empty((2, 4, th + 1, tw, *p.shape[4:]), p.dtype)  # d B: q[ph, v], both row phases
    g0, g1, h0, h1 = p[:, 0, :, :-1], p[:, 1, :, :-1], p[:, 0, :, 1:], p[:, 1, :, 1:]
    np.subtract(g0, h0, out=q[:, 0])
    np.add(g1, h0, out=q[:, 1])
    np.subtract(h0, g1, out=q[:, 2])
    np.subtract(h1, g1, out=q[:, 3])
    e0, e1 = q[0, :, :-1], q[1, :, :-1]  # tile rows 0 and 1
    f0, f1 = q[0, :, 1:], q[1, :, 1:]  # tile rows 2 and 3
    v4 = v.reshape(4, 4, th, tw, *p.shape[4:])  # Bᵀ (d B): v4[u, v], all v at once
    np.subtract(e0, f0, out=v4[0])
    np.add(e1, f0, out=v4[1])
    np.subtract(f0, e1, out=v4[2])
    np.subtract(f1, e1, out=v4[3])


def _output_transform(mm: Array, tl: Tiling, y: Array) -> None:
    """``Y = Aᵀ M A`` of every tile, written into ``y`` ``(m, out_h, out_w, c_out)``."""
    m, k, th, tw = y.shape[0], y.shape[3], tl.th, tl.tw
    m6 = mm.reshape(4, 4, th, tw, m, k)
    s = ops.empty((2, 4, th, tw, m, k), mm.dtype)  # Aᵀ M: s[r, v]
    np.add(m6[1], m6[2], out=s[0])
    s[0] += m6[0]
    np.subtract(m6[1], m6[2], out=s[1])
    s[1] += m6[3]
    z = ops.empty((2, 2, th, tw, m, k), mm.dtype)  # Aᵀ M A: z[r, col] of every tile
    # Y[r, 0] = s[r, 0] + (s[r, 1] + s[r, 2]);  Y[r, 1] = s[r, 3] + (s[r, 1] − s[r, 2])
    for col, combine, last in ((0, np.add, 0), (1, np.subtract, 3)):
        combine(s[:, 1], s[:, 2], out=z[:, col])
        z[:, col] += s[:, last]
    for r in (0, 1):
        for col in (0, 1):
            out = y[:, r::2, col::2]  # the outputs at this cell of every tile
            out[...] = z[r, col, : out.shape[1], : out.shape[2]].transpose(2, 0, 1, 3)


def forward(x: Array, u: Array, bias: Array | None, tl: Tiling, v: Array, y: Array) -> None:
    """Convolve a chunk: ``y`` ``(m, out_h, out_w, c_out)`` and its tiles ``v`` are overwritten.

    ``u`` is :func:`kernel_transform` of the kernel; ``v`` ``(16, tiles·m, c_in)``
    keeps the transformed input for :func:`backward`.
    """
    _input_transform(_to_phases(x, tl), tl, v)
    mm = ops.empty((16, v.shape[1], u.shape[2]), x.dtype)
    ops.matmul(v, u, out=mm)  # 16 products (tiles x c_in)·(c_in x c_out)
    if bias is not None:
        mm[5] += bias  # M[1, 1] reaches each of the 2x2 outputs with weight 1
    _output_transform(mm, tl, y)


def _output_transform_adjoint(dy: Array, tl: Tiling) -> Array:
    """``dM = A dY Aᵀ`` of every tile, ``(16, tiles·m, c_out)``."""
    m, k, th, tw = dy.shape[0], dy.shape[3], tl.th, tl.tw
    if dy.shape[1:3] != (2 * th, 2 * tw):  # odd output sizes: zero cotangents beyond the edge
        full = ops.zeros((m, 2 * th, 2 * tw, k), dy.dtype)
        full[:, : dy.shape[1], : dy.shape[2]] = dy
        dy = full
    d = dy.reshape(m, th, 2, tw, 2, k).transpose(2, 4, 1, 3, 0, 5)  # d[r, col, a, b, n]
    dm = ops.empty((4, 4, th, tw, m, k), dy.dtype)
    for row, cell in ((0, 0), (1, 3)):  # dM[0] = dS0, dM[3] = dS1, with dS = dY A column-wise
        dm[cell, 0] = d[row, 0]
        dm[cell, 3] = d[row, 1]
        np.add(dm[cell, 0], dm[cell, 3], out=dm[cell, 1])
        np.subtract(dm[cell, 0], dm[cell, 3], out=dm[cell, 2])
    np.add(dm[0], dm[3], out=dm[1])
    np.subtract(dm[0], dm[3], out=dm[2])
    return dm.reshape(16, -1, k)


def _input_transform_adjoint(dv: Array, tl: Tiling, dx: Array) -> None:
    """``dd = B dV Bᵀ`` scatter-added over the overlapping tiles; its interior into ``dx``.

    The adjoint of :func:`_input_transform`, in reverse order: the rows give
    ``dq``, the cotangent of ``q = d B``; its columns give the phases' cotangent,
    whose cells of the input go to ``dx``.
    """
    th, tw, m, c = tl.th, tl.tw, dx.shape[0], dx.shape[3]
    dv4 = dv.reshape(4, 4, th, tw, m, c)
    dq = ops.empty((2, 4, th + 1, tw, m, c), dv.dtype)
    e = ops.empty((4, th, tw, m, c), dv.dtype)
    # row phase 0, row a': dV[0] of tile row a' (e0) and what tile row a' − 1 took from it (f0)
    np.add(dv4[1], dv4[2], out=e)
    e -= dv4[0]
    _add_shifted(dv4[0], e, dq[0], axis=1)
    # row phase 1, row a': what tile row a' took from it (e1) and dV[3] of tile row a' − 1 (f1)
    np.subtract(dv4[1], dv4[2], out=e)
    e -= dv4[3]
    _add_shifted(e, dv4[3], dq[1], axis=1)
    # the columns likewise: column phase 0 from g0 and h0, column phase 1 from g1 and h1
    dp = ops.empty((2, 2, th + 1, tw + 1, m, c), dv.dtype)
    f = ops.empty((2, th + 1, tw, m, c), dv.dtype)
    np.add(dq[:, 1], dq[:, 2], out=f)
    f -= dq[:, 0]
    _add_shifted(dq[:, 0], f, dp[:, 0], axis=2)
    np.subtract(dq[:, 1], dq[:, 2], out=f)
    f -= dq[:, 3]
    _add_shifted(f, dq[:, 3], dp[:, 1], axis=2)
    for ph, (a0, r0, na) in enumerate(tl.rows):
        for pw, (b0, s0, nb) in enumerate(tl.cols):
            if na and nb:
                out = dx[:, r0 : r0 + 2 * na - 1 : 2, s0 : s0 + 2 * nb - 1 : 2]
                out[...] = dp[ph, pw, a0 : a0 + na, b0 : b0 + nb].transpose(2, 0, 1, 3)


def _add_shifted(own: Array, before: Array, out: Array, axis: int) -> None:
    """``out[i] = own[i] + before[i − 1]`` along ``axis`` (``out`` one longer; missing terms 0)."""

    def at(index: int | slice) -> tuple[int | slice, ...]:  # slices keep the memory order
        return (*(slice(None),) * axis, index)

    out[at(0)] = own[at(0)]
    np.add(own[at(slice(1, None))], before[at(slice(-1))], out=out[at(slice(1, -1))])
    out[at(-1)] = before[at(-1)]


def backward(
    dy: Array, v: Array, u_t: Array | None, tl: Tiling, dx: Array | None
) -> tuple[Array, Array]:
    """Pull a chunk's ``dy`` back: returns ``(dU, db)`` and writes dL/dx into ``dx``.

    ``v`` is the chunk's transformed input from :func:`forward`, ``u_t`` the
    transposed :func:`kernel_transform` ``(16, c_out, c_in)`` (needed only with
    ``dx``). dL/dw is ``kernel_transform_adjoint`` of the chunks' summed dU.
    """
    dm = _output_transform_adjoint(dy, tl)
    du = ops.matmul(v.transpose(0, 2, 1), dm)  # 16 products (c_in x tiles)·(tiles x c_out)
    db = ops.column_sums(dm[5])
    if dx is not None and u_t is not None:
        dv = ops.empty((16, dm.shape[1], dx.shape[3]), dy.dtype)
        ops.matmul(dm, u_t, out=dv)  # 16 products (tiles x c_out)·(c_out x c_in)
        _input_transform_adjoint(dv, tl, dx)
    return du, db


class Winograd:
    """A Conv2D's Winograd passes over one batch, chunk by chunk (see ``Conv2D._planned_vjp``).

    Holds the transformed kernel ``U`` and, when ``keep``, the transformed input
    ``V`` of every chunk for the backward pass.
    """

    def __init__(
        self, w: Array, bias: Array | None, x_shape: tuple[int, ...], pads: Pads, keep: bool
    ) -> None:
        batch, height, width, c_in = x_shape
        self.tl = tiling((height, width), pads)
        self.u, self.bias, self.dtype = kernel_transform(w), bias, w.dtype
        self.v = ops.empty((16, batch * self.tl.tiles, c_in), w.dtype) if keep else None
        # fnn.parallel.split aims at 4 MiB per chunk. With OpenBLAS's small-matrix kernels:
        # at most about 1 MiB of tiles (measured on the ResNet-style block, CPU ms per step:
        # 42.2 with 0.5 MiB, 42.8 with 1, 50.4 with 2 and 4), and products small enough for
        # that kernel. Without (AMD EPYC, Haswell kernel; the block's conv vjp + pullback,
        # medians of 38 interleaved runs, ms with one thread / two): 1.33 MiB, 39.9 / 25.5,
        # against 44.1 / 28.2 with 1 MiB and 42.5 / 25.6 with 2.
        tile_bytes = 16 * self.tl.tiles * c_in * w.dtype.itemsize
        per_chunk = 4 if small_matrix_blas() else 3
        work = ops.split_bytes(self.tl.tiles * c_in * w.shape[3])
        self.item_bytes = max(per_chunk * tile_bytes, work)
        self.u_t: Array | None = None

    def _tiles(self, chunk: tuple[int, int]) -> Array:
        a, b = chunk
        if self.v is None:
            return np.empty((16, (b - a) * self.tl.tiles, self.u.shape[1]), self.dtype)
        return self.v[:, a * self.tl.tiles : b * self.tl.tiles]

    def forward(self, chunk: tuple[int, int], x: Array, y: Array) -> None:
        """Write the chunk's output into ``y`` (and keep its tiles)."""
        forward(x, self.u, self.bias, self.tl, self._tiles(chunk), y)

    def prepare_backward(self, need_dx: bool) -> None:
        """Make ``Uᵀ`` contiguous once per pullback (when dL/dx is wanted)."""
        self.u_t = np.ascontiguousarray(self.u.transpose(0, 2, 1)) if need_dx else None

    def backward(self, chunk: tuple[int, int], dy: Array, dx: Array | None) -> tuple[Array, Array]:
        """``(dU, db)`` of the chunk; dL/dx into ``dx``."""
        return backward(dy, self._tiles(chunk), self.u_t, self.tl, dx)

    def kernel_grad(self, du: Array) -> Array:
        """dL/dw ``(3, 3, c_in, c_out)`` from the chunks' summed ``dU``."""
        return kernel_transform_adjoint(du)
