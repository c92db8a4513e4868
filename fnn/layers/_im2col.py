"""NumPy-specific array helpers for convolution and pooling (private).

Everything that depends on NumPy's memory model lives here, so the layers
themselves read as plain math:

- :func:`pad` zero- (or constant-) pads the two spatial axes of an image batch;
- :func:`im2col` turns every receptive field into one row of a matrix through a
  read-only stride view (``as_strided``) and a single copy, so a convolution is
  one matrix product;
- :func:`offsets` lists, for each kernel offset ``(i, j)``, the strided slice of
  the padded input that this offset touches in every window. Pooling and the
  ``col2im`` scatter-add loop over these ``kh·kw`` offsets (never over pixels or
  batch items): each step is one vectorised operation on a whole
  ``(batch, out_h, out_w, channels)`` block;
- :func:`matmul`, :func:`matmul_tn` and :func:`column_sums` are the products
  and sums (:func:`split_bytes` sizes chunks for OpenBLAS's small-matrix
  kernel); ``empty`` and ``zeros`` (from ``fnn._buffers``) give large buffers
  from recycled blocks on huge pages.

Images are ``(batch, height, width, channels)``. The kernels of pooling with
non-overlapping windows are in ``fnn.layers._pool_ops``, the stride-1
convolution kernels in ``fnn.layers._shifted`` and ``fnn.layers._winograd``;
the configuration helpers (pairs, paddings, output sizes) live in
``fnn.layers._conv_config`` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fnn._buffers import empty, zeros  # re-exported: the layers use ops.empty, ops.zeros
from fnn.layers._base import Array
from fnn.layers._conv_config import (  # re-exported: the layers use them as ops.<name>
    Pads,
    check_channels,
    check_padding,
    check_pair,
    image_shape,
    out_size,
    resolve_padding,
    to_padding,
    to_pair,
)

__all__ = [
    "SMALL_GEMM",
    "Pads",
    "check_channels",
    "check_padding",
    "check_pair",
    "col2im",
    "column_dots",
    "column_sums",
    "copy_runs",
    "empty",
    "im2col",
    "image_shape",
    "matmul",
    "matmul_tn",
    "offsets",
    "out_size",
    "pad",
    "resolve_padding",
    "rows",
    "split_bytes",
    "to_padding",
    "to_pair",
    "unpad",
    "zeros",
]


def pad(x: Array, pads: Pads, value: float = 0.0) -> Array:
    """``x`` padded on the spatial axes (a new array; ``x`` itself when no padding)."""
    (t, b), (left, r) = pads
    if t == b == left == r == 0:
        return x
    return np.pad(x, ((0, 0), (t, b), (left, r), (0, 0)), constant_values=value)


def unpad(xp: Array, pads: Pads) -> Array:
    """The inverse of :func:`pad`: the interior of a padded array (a view)."""
    (t, b), (left, r) = pads
    return xp[:, t : xp.shape[1] - b, left : xp.shape[2] - r, :]


def im2col(
    xp: Array,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilation: tuple[int, int],
    out_hw: tuple[int, int],
    *,
    ones: bool = False,
) -> Array:
    """Receptive fields of a padded batch as rows: ``(batch·out_h·out_w, kh·kw·channels [+ 1])``.

    Row ``(n, p, q)`` holds ``xp[n, p·sh + i·dh, q·sw + j·dw, c]`` for
    ``(i, j, c)`` in row-major order, matching a kernel ``(kh, kw, c_in, c_out)``
    reshaped to ``(kh·kw·c_in, c_out)``; with ``ones``, a last column of ones
    (so that ``[X 1]·[W; b] = X·W + b`` and ``[X 1]ᵀ·δ`` stacks dL/dW on
    dL/db: the bias costs no pass of its own). Written in one copy from a
    read-only stride view; for one channel, a transposed view of a
    column-major matrix.
    """
    batch, _, _, channels = xp.shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, strides, dilation, out_hw
    k = kh * kw * channels
    if channels == 1:
        # Column-major: one contiguous row per kernel offset, returned transposed
        # (a view; NumPy hands BLAS the transposed layout, no copy). Measured
        # (128x28x28x1, 3x3, CPU ms): 0.28 vs 1.6 for writing the rows with a
        # stride of kh·kw floats, and the products are as fast either way.
        cols = empty((k + ones, batch, oh, ow), xp.dtype)
        for i, j, (rows, cs) in offsets(kernel, strides, dilation, out_hw):
            cols[i * kw + j] = xp[:, rows, cs, 0]
        if ones:
            cols[k] = 1
        return cols.reshape(k + ones, -1).T
    out = empty((batch, oh, ow, k + ones), xp.dtype)
    fields = out[..., :k].reshape(batch, oh, ow, kh, kw, channels)  # a view
    s_n, s_h, s_w, s_c = xp.strides
    view = np.lib.stride_tricks.as_strided(
        xp,
        shape=(batch, oh, ow, kh, kw, channels),
        strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c),
        writeable=False,
    )
    np.copyto(fields, view)
    if ones:
        out[..., k] = 1
    return out.reshape(batch * oh * ow, k + ones)


def offsets(
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilation: tuple[int, int],
    out_hw: tuple[int, int],
) -> list[tuple[int, int, tuple[slice, slice]]]:
    """For each kernel offset ``(i, j)``, the slices of the padded input it reads.

    ``xp[:, rows, cols]`` with ``(rows, cols)`` from offset ``(i, j)`` is the
    ``(batch, out_h, out_w, channels)`` block of the cells that offset touches,
    one per output position.
    """
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, strides, dilation, out_hw
    return [
        (
            i,
            j,
            (
                slice(i * dh, i * dh + (oh - 1) * sh + 1, sh),
                slice(j * dw, j * dw + (ow - 1) * sw + 1, sw),
            ),
        )
        for i in range(kh)
        for j in range(kw)
    ]


def col2im(
    dcols: Array,
    out_hw: tuple[int, int],
    pads: Pads,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilation: tuple[int, int],
    *,
    out: Array,
) -> Array:
    """The adjoint of :func:`im2col`: scatter-add rows back onto the (unpadded) input ``out``.

    ``dcols`` is offset-major, shape ``(kh·kw, batch·out_h·out_w, channels)``:
    ``dcols[i·kw + j]`` holds, for every window, the gradient of the cell that
    kernel offset ``(i, j)`` read. Each input cell receives the sum over the
    windows that read it; the loop runs over the ``kh·kw`` offsets, each step
    adding one contiguous ``(batch, out_h, out_w, channels)`` block. (Measured:
    this layout is ~3x faster than scattering from the row-major
    ``(batch·out_h·out_w, kh·kw·channels)`` matrix, whose per-offset blocks are
    strided.) ``out`` (``(batch, height, width, channels)``) is overwritten;
    without padding the sums go straight into it.
    """
    (t, b), (left, r) = pads
    batch, height, width, channels = out.shape
    padded = (batch, height + t + b, width + left + r, channels)
    dxp = out if padded == out.shape else empty(padded, out.dtype)
    dxp.fill(0)
    for i, j, (rows, cols) in offsets(kernel, strides, dilation, out_hw):
        dxp[:, rows, cols, :] += dcols[i * kernel[1] + j].reshape(batch, *out_hw, channels)
    if dxp is not out:
        out[...] = unpad(dxp, pads)
    return out


def rows(x: Array) -> Array:
    """The pixels of an image batch as the rows of a ``(batch·height·width, channels)`` matrix.

    A view when ``x`` is contiguous (the im2col matrix of a 1x1 convolution).
    """
    return x.reshape(-1, x.shape[-1])


def matmul(a: Array, b: Array, out: Array | None = None) -> Array:
    """``a @ b`` (stacked for 3-d ``b``), written into ``out`` when given (no temporary).

    A tall 2-d product with a thin ``b`` (``k·n <= 976``, e.g. the im2col matrix
    of a one-channel image) runs in blocks of at least 1024 rows with ``m·n·k
    <= 1e6`` each, which OpenBLAS computes by its small-matrix kernel (see
    :func:`split_bytes`). Measured ((86528, 10) @ (10, 16), float32): 0.63 ms
    as one product, 0.39 in blocks of 6000 rows.
    """
    if a.ndim == b.ndim == 2:
        rows = SMALL_GEMM // max(1, a.shape[1] * b.shape[1])
        if rows >= _MIN_BLOCK and a.shape[0] > rows:
            if out is None:
                out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
            for start in range(0, a.shape[0], rows):
                np.matmul(a[start : start + rows], b, out=out[start : start + rows])
            return out
    result: Array = np.matmul(a, b, out=out)
    return result


_TN_BLOCK = 512
_TN_MIN_K = 64


def matmul_tn(a: Array, b: Array) -> Array:
    """``aᵀ·b`` for tall ``a`` ``(m, k)`` and ``b`` ``(m, n)``: the weight gradient Xᵀ·δ.

    For ``k >= 64`` it is accumulated over blocks of 512 rows. Measured with
    OpenBLAS on this project's 2-core machine (CPU ms, m=25088, k=144, n=32,
    float32): one product 16.1 (1 thread) / 14.2 (2 threads); blocks of 512
    8.8 / 8.9; a stacked ``matmul`` of the same blocks 8.7 / 27 (the small
    products trip OpenBLAS's threading). The long reduction axis is what the
    single call handles poorly; for small ``k`` (a first conv layer, k=9) the
    single product was fastest then; with blocks of ``m·n·k <= 1e6`` rows (at
    least 1024; OpenBLAS's small-matrix kernel) it is faster still: 0.55 vs
    0.76 ms for m=86528, k=10, n=16. Equal to ``a.T @ b`` up to float rounding.
    """
    m, k = a.shape
    block = _TN_BLOCK
    if k < _TN_MIN_K:  # thin: blocks small enough for OpenBLAS's small-matrix kernel
        block = SMALL_GEMM // max(1, k * b.shape[1])
        if block < _MIN_BLOCK:
            block = m
    if m < 2 * block:
        out: Array = a.T @ b
        return out
    total: Array = a[:block].T @ b[:block]
    for start in range(block, m, block):
        total += a[start : start + block].T @ b[start : start + block]
    return total


SMALL_GEMM = 1_000_000  # m·n·k of the largest product OpenBLAS computes as a small matrix
_MIN_BLOCK = 1024  # rows: smaller blocks of a product cost more in calls than they gain
_SPLIT_TARGET = 1 << 22  # the bytes per chunk fnn.parallel.split aims at


def split_bytes(work_per_image: int) -> int:
    """``item_bytes`` for ``fnn.parallel.split`` so that a chunk's products stay small.

    ``work_per_image`` is ``m·n·k`` of one image's share of a chunk's matrix
    products (rows x c_in x c_out). OpenBLAS (NumPy's BLAS on x86-64) computes a
    product with ``m·n·k <= 1e6`` by its small-matrix kernel, without packing;
    above, it packs the operands first. Measured (ns per row of
    ``(m, 32) @ (32, 32)``, float32, one thread): 14-16 for 512-896 rows, 23 from
    1024 rows on; for ``(m, 16) @ (16, 32)`` the step is at 2048 rows. So chunks
    hold as many whole images as keep ``m·n·k`` at most 1e6 (at least one image).
    """
    images = max(1, SMALL_GEMM // max(1, work_per_image))
    return -(-_SPLIT_TARGET // images)


_FOLD = 64


def column_sums(a: Array) -> Array:
    """``Σ_rows a`` for a tall ``(m, n)`` matrix (bias gradients, batch statistics).

    The rows are first folded into lines of ``64·n`` values (a reshape), which
    NumPy sums with long inner loops, and the 64 partial sums are added last.
    Measured (ms, (25088, 32) float32): 0.13 vs 0.63 for ``a.sum(axis=0)``
    (whose inner loops are one row long); ``1ᵀ·a`` as a BLAS product takes 0.10
    with one BLAS thread but 8 with two on a busy machine. It is also more
    accurate than either (partial sums of m/64 terms).
    """
    return _folded(lambda x: x.sum(axis=0), a)


def column_dots(a: Array, b: Array) -> Array:
    """``Σ_rows a·b`` for tall ``(m, n)`` matrices: :func:`column_sums` of ``a·b``, bit for bit.

    The same folding, with each product summed as it is made (``einsum``)
    instead of stored first: measured ((8364, 32), one chunk of a batch-norm
    pass) 0.107 -> 0.082 ms in float32, 0.192 -> 0.136 in float64.
    """
    return _folded(lambda x, y: np.einsum("ij,ij->j", x, y), a, b)


def _folded(sum_rows: Callable[..., Array], *mats: Array) -> Array:
    """``sum_rows`` (a sum over the rows of its ``(m, n)`` arguments) with the rows folded.

    Lines of 64 rows are summed first (``sum_rows`` on ``(m // 64, 64·n)``
    reshapes), then their 64 partial sums, then the leftover rows.
    """
    m, n = mats[0].shape
    q = m // _FOLD
    if q == 0:
        return sum_rows(*mats)
    head = sum_rows(*(x[: q * _FOLD].reshape(q, _FOLD * n) for x in mats))
    total: Array = head.reshape(_FOLD, n).sum(axis=0)
    if m > q * _FOLD:
        total += sum_rows(*(x[q * _FOLD :] for x in mats))
    return total


_RUN_MAX = 256  # bytes: longer runs copied as values measured as fast or faster


def copy_runs(dst: Array, src: Array) -> None:
    """``dst[...] = src`` where both have the same shape and dtype and a contiguous last axis.

    NumPy's copy loop restarts for every run of the last axis, which costs more
    than copying a short run. A run of at most 256 bytes is therefore copied as
    one element of a NumPy void dtype, so that the loop steps over the runs
    instead: the same bytes. Measured (one thread, ms): max pooling's four
    window cells of 128x26x26x16 float32 (64-byte runs), 1.0-1.4 -> 0.5-0.7;
    max pooling's vjp + pullback (medians of 60 alternated runs) on
    128x28x28x32 (128-byte runs) 9.12 -> 8.37, on 128x11x11x32 1.28 -> 1.10,
    on 128x14x14x64 (256 bytes) 4.66 -> 4.52; runs of 512 bytes gained nothing
    more. Any other layout copies as usual. Only max pooling uses it.
    """
    item = src.dtype.itemsize
    c = src.shape[-1]
    same = dst.shape == src.shape and dst.dtype == src.dtype
    if same and 1 < c and c * item <= _RUN_MAX and src.strides[-1] == item == dst.strides[-1]:
        run = np.dtype((np.void, c * item))
        dst.view(run)[..., 0] = src.view(run)[..., 0]
    else:
        dst[...] = src
