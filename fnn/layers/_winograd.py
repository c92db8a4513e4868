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
  ``P[ph, pw, n, a, b] = xp[n, 2a + ph, 2b + pw]`` (``a ≤ th``, ``b ≤ tw``):
  tile ``(a, b)`` reads rows ``2a..2a+3``, that is phase rows ``a`` and ``a + 1``;
- ``V``, ``M`` and their cotangents hold one row per tile and one extra
  column of tiles, ``(16, m·th·(tw + 1), channels)``: a shift by one tile
  column is then a shift of the flat array by ``channels`` values (the tiles
  of the extra column read across the end of a row and are never used; their
  cotangents are zero, so they add nothing to dU or dx).

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

    ``th x tw`` tiles (plus one unused column) cover the ``out_h x out_w``
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
        """Tiles per image (rows of ``V`` and ``M``), the unused column included."""
        return self.th * (self.tw + 1)


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
    """The zero-padded chunk ``x`` as its four phases ``(2, 2, m, th + 1, tw + 1, c)``."""
    p = ops.zeros((2, 2, x.shape[0], tl.th + 1, tl.tw + 1, x.shape[3]), x.dtype)
    for ph, (a0, r0, na) in enumerate(tl.rows):
        for pw, (b0, s0, nb) in enumerate(tl.cols):
            if na and nb:
                rows, cols = slice(r0, r0 + 2 * na - 1, 2), slice(s0, s0 + 2 * nb - 1, 2)
                p[ph, pw, :, a0 : a0 + na, b0 : b0 + nb] = x[:, rows, cols]
    return p


def _input_transform(p: Array, tl: Tiling, v: Array) -> None:
    """``V = Bᵀ d B`` of every tile, written into ``v`` ``(16, m·tiles·c)`` (flat per ξ)."""
    _, _, m, _, _, c = p.shape
    row = (tl.tw + 1) * c  # one phase row
    span = tl.th * row  # the phase rows a = 0 .. th − 1 of one image
    flat = p.reshape(2, 2, m, -1)
    e0, e1 = flat[0, :, :, :span], flat[1, :, :, :span]  # tile rows 0 and 1
    f0, f1 = flat[0, :, :, row:], flat[1, :, :, row:]  # tile rows 2 and 3
    r = ops.empty((4, 2, m, span), p.dtype)  # Bᵀ d: r[u, pw] (both column phases at once)
    np.subtract(e0, f0, out=r[0])
    np.add(e1, f0, out=r[1])
    np.subtract(f0, e1, out=r[2])
    np.subtract(f1, e1, out=r[3])
    n = m * span
    rf = r.reshape(4, 2, n)
    g0, g1, h0, h1 = rf[:, 0, :-c], rf[:, 1, :-c], rf[:, 0, c:], rf[:, 1, c:]  # tile columns 0-3
    v4 = v.reshape(4, 4, n)  # (Bᵀ d) B: v4[u, v], all u at once
    np.subtract(g0, h0, out=v4[:, 0, :-c])
    np.add(g1, h0, out=v4[:, 1, :-c])
    np.subtract(h0, g1, out=v4[:, 2, :-c])
    np.subtract(h1, g1, out=v4[:, 3, :-c])
    v4[:, :, -c:] = 0  # the unused tile at the very end


def _output_transform(mm: Array, tl: Tiling, y: Array) -> None:
    """``Y = Aᵀ M A`` of every tile, written into ``y`` ``(m, out_h, out_w, c_out)``."""
    m, k, tw = y.shape[0], y.shape[3], tl.tw
    m6 = mm.reshape(4, 4, m, tl.th, tw + 1, k)
    s = ops.empty((2, 4, m, tl.th, tw + 1, k), mm.dtype)  # Aᵀ M: s[r, v]
    np.add(m6[1], m6[2], out=s[0])
    s[0] += m6[0]
    np.subtract(m6[1], m6[2], out=s[1])
    s[1] += m6[3]
    t = ops.empty((2, m, tl.th, tw + 1, k), mm.dtype)
    # Y[r, 0] = s[r, 0] + (s[r, 1] + s[r, 2]);  Y[r, 1] = s[r, 3] + (s[r, 1] − s[r, 2])
    for col, combine, last in ((0, np.add, 0), (1, np.subtract, 3)):
        combine(s[:, 1], s[:, 2], out=t)
        for row in (0, 1):
            out = y[:, row::2, col::2]  # the outputs at this cell of every tile
            nr, nc = out.shape[1], out.shape[2]
            np.add(t[row, :, :nr, :nc], s[row, last, :, :nr, :nc], out=out)


def forward(x: Array, u: Array, bias: Array | None, tl: Tiling, v: Array, y: Array) -> None:
    """Convolve a chunk: ``y`` ``(m, out_h, out_w, c_out)`` and its tiles ``v`` are overwritten.

    ``u`` is :func:`kernel_transform` of the kernel; ``v`` ``(16, m·tiles, c_in)``
    keeps the transformed input for :func:`backward`.
    """
    _input_transform(_to_phases(x, tl), tl, v)
    mm = ops.empty((16, v.shape[1], u.shape[2]), x.dtype)
    ops.matmul(v, u, out=mm)  # 16 products (tiles x c_in)·(c_in x c_out)
    if bias is not None:
        mm[5] += bias  # M[1, 1] reaches each of the 2x2 outputs with weight 1
    _output_transform(mm, tl, y)


def _output_transform_adjoint(dy: Array, tl: Tiling) -> Array:
    """``dM = A dY Aᵀ`` of every tile, ``(16, m·tiles, c_out)``, zero on the unused tiles."""
    m, k, th, tw = dy.shape[0], dy.shape[3], tl.th, tl.tw
    if dy.shape[1:3] != (2 * th, 2 * tw):  # odd output sizes: zero cotangents beyond the edge
        full = ops.zeros((m, 2 * th, 2 * tw, k), dy.dtype)
        full[:, : dy.shape[1], : dy.shape[2]] = dy
        dy = full
    d = dy.reshape(m, th, 2, tw, 2, k)
    dm = ops.empty((4, 4, m, th, tw + 1, k), dy.dtype)
    for row, cell in ((0, 0), (1, 3)):  # dM[0] = dS0, dM[3] = dS1, with dS = dY A column-wise
        dm[cell, ::3, :, :, tw] = 0  # the unused column of tiles
        dm[cell, 0, ..., :tw, :] = d[:, :, row, :, 0]
        dm[cell, 3, ..., :tw, :] = d[:, :, row, :, 1]
        np.add(dm[cell, 0], dm[cell, 3], out=dm[cell, 1])
        np.subtract(dm[cell, 0], dm[cell, 3], out=dm[cell, 2])
    np.add(dm[0], dm[3], out=dm[1])
    np.subtract(dm[0], dm[3], out=dm[2])
    return dm.reshape(16, -1, k)


def _input_transform_adjoint(dv: Array, tl: Tiling, dx: Array) -> None:
    """``dd = B dV Bᵀ`` scatter-added over the overlapping tiles; its interior into ``dx``."""
    m, c = dx.shape[0], dx.shape[3]
    n = m * tl.tiles * c
    dv4 = dv.reshape(4, 4, n)
    dr = ops.empty((4, 2, n), dv.dtype)  # cotangent of r[u, pw] in _input_transform
    e = ops.empty((4, n), dv.dtype)
    np.add(dv4[:, 1], dv4[:, 2], out=e)
    e -= dv4[:, 0]  # what tile column b + 1 of phase 0 received
    dr[:, 0, :c] = dv4[:, 0, :c]
    np.add(dv4[:, 0, c:], e[:, :-c], out=dr[:, 0, c:])
    np.subtract(dv4[:, 1], dv4[:, 2], out=e)
    e -= dv4[:, 3]  # what tile column b of phase 1 received
    dr[:, 1, :c] = e[:, :c]
    np.add(e[:, c:], dv4[:, 3, :-c], out=dr[:, 1, c:])
    dr6 = dr.reshape(4, 2, m, tl.th, tl.tw + 1, c)
    f = ops.empty((2, 2, m, tl.th, tl.tw + 1, c), dv.dtype)
    np.add(dr6[1], dr6[2], out=f[0])
    f[0] -= dr6[0]  # what phase 0 received at row a + 1
    np.subtract(dr6[1], dr6[2], out=f[1])
    f[1] -= dr6[3]  # what phase 1 received at row a
    # phase row a' = own[a'] + below[a' − 1]; the rows holding input cells go to dx
    for ph, (own, below) in enumerate(((dr6[0], f[0]), (f[1], dr6[3]))):
        a0, r0, na = tl.rows[ph]
        for pw, (b0, s0, nb) in enumerate(tl.cols):
            if na and nb:
                out = dx[:, r0 : r0 + 2 * na - 1 : 2, s0 : s0 + 2 * nb - 1 : 2]
                _add_rows(own[pw, ..., b0 : b0 + nb, :], below[pw, ..., b0 : b0 + nb, :], a0, out)


def _add_rows(own: Array, below: Array, a0: int, out: Array) -> None:
    """``out[:, i] = own[:, a0 + i] + below[:, a0 + i − 1]``, a missing row counting as 0."""
    th, lo, hi = own.shape[1], a0, a0 + out.shape[1]
    mid_lo, mid_hi = max(lo, 1), min(hi, th)
    if mid_hi > mid_lo:
        np.add(
            own[:, mid_lo:mid_hi],
            below[:, mid_lo - 1 : mid_hi - 1],
            out=out[:, mid_lo - lo : mid_hi - lo],
        )
    if lo == 0:
        out[:, 0] = own[:, 0]
    if hi == th + 1:
        out[:, th - lo] = below[:, th - 1]


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
