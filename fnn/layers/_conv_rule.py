"""Which formulation computes a stride-1 convolution: im2col, shifted products or Winograd.

The three give the same convolution (up to float rounding); which is fastest
depends on the shape and on the BLAS underneath. Two rules, each what measured
fastest (vjp + pullback, one thread, CPU time) on one kind of BLAS kernel:

- **Small-matrix BLAS** (OpenBLAS on AVX-512 cores: ``SkylakeX``, ``Cooperlake``,
  ``SapphireRapids``). OpenBLAS multiplies small matrices there without packing
  them first, measured at 14-16 ns per row of ``(m, 32) @ (32, 32)`` up to 896
  rows, so the many short products of shifted products are cheap. Measured
  over 75 shapes (batch 64-128, c_in 1-128, c_out 8-128, images 7-56, 3x3 and
  5x5 kernels, dilation 1 and 2; the table is in ``docs/math/conv.md``).
- **Every other BLAS** (OpenBLAS's ``Haswell`` kernel on an AMD EPYC, MKL,
  anything threadpoolctl cannot name). Measured over 228 shapes on a 2-core
  AMD EPYC with OpenBLAS 0.3.31's ``Haswell`` kernel
  (``benchmarks/conv_rule.py --all``): shifted products lost to im2col or Winograd
  almost everywhere there (up to 1.6x slower on 3x3 kernels), Winograd won
  from 16 input channels on; this rule's choice was on average 0.6% slower
  than the fastest of the three (at most 1.19x), against 8.4% (at most 1.61x)
  for the small-matrix rule on that machine.

The choice depends only on the layer, the input's shape and the BLAS kernel
the process loaded, so a given machine always computes a given layer the same
way (and bits stay reproducible for a fixed BLAS kernel, as before).
"""

from __future__ import annotations

import functools

from fnn.layers import _im2col as ops
from fnn.layers import _shifted as sh

__all__ = ["choose", "small_matrix_blas"]

_SMALL_MATRIX_CORES = frozenset({"skylakex", "cooperlake", "sapphirerapids"})


@functools.cache
def small_matrix_blas() -> bool:
    """Whether NumPy's BLAS is OpenBLAS on a core with its small-matrix kernels.

    Asked of threadpoolctl once per process; ``False`` without threadpoolctl
    (``pip install "fnn[threads]"``) or for any other BLAS.
    """
    try:
        import threadpoolctl  # type: ignore[import-untyped]
    except ImportError:
        return False
    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") == "blas" and info.get("internal_api") == "openblas":
            core = str(info.get("architecture") or "").lower()
            return core in _SMALL_MATRIX_CORES
    return False


def choose(
    kernel: tuple[int, int],
    dilation: tuple[int, int],
    c_in: int,
    c_out: int,
    in_hw: tuple[int, int],
    pads: ops.Pads,
) -> str:
    """``"winograd"``, ``"shifted"`` or ``"im2col"`` for a stride-1 convolution.

    Both rules take im2col for 1x1 kernels (their im2col matrix is ``x``
    itself) and fewer than 8 input channels (a first layer on 1-3 colour
    channels: its im2col matrix is small, the products of the others thin).
    """
    if kernel == (1, 1) or c_in < 8:
        return "im2col"
    g = sh.grid(in_hw, pads, kernel, dilation)
    (oh, ow), outputs = g.out_hw, g.out_hw[0] * g.out_hw[1]
    grid_waste = g.hp * g.wp / outputs - 1  # rows of the flat grid per output, minus 1
    # Winograd computes 2x2 blocks on tiles; the thresholds below were measured when its
    # kernels also computed one spare column per row of tiles, so that is counted here
    tiles = 4 * -(-oh // 2) * (-(-ow // 2) + 1) / outputs if kernel == (3, 3) else 0.0
    winograd = kernel == (3, 3) and dilation == (1, 1)
    if small_matrix_blas():
        return _small_matrix_rule(winograd, c_in, c_out, tiles, grid_waste)
    return _generic_rule(winograd, c_in, c_out, tiles, grid_waste)


def _small_matrix_rule(
    winograd: bool, c_in: int, c_out: int, tiles: float, grid_waste: float
) -> str:
    """The rule measured with OpenBLAS's small-matrix kernels (AVX-512 cores).

    - Winograd for 3x3 kernels with ``c_in >= 32``, ``c_out >= c_in`` and
      ``c_in·c_out >= 2048`` (32 -> 64, 64 -> 64, 128 -> 128), when its tiles
      waste at most 40%: 1.05-1.5x as fast as im2col, and as fast as shifted
      products or up to 1.2x faster;
    - shifted products otherwise, when the flat grid wastes at most 50% and
      ``c_out <= 2·c_in``, or ``c_out <= 4·c_in`` on grids wasting at most 30%:
      1.2-2.6x as fast as im2col (1.56x for 32 -> 32 on 14x14);
    - im2col for the rest (e.g. 8 -> 32 or 16 -> 64 on 13x13 valid, where
      shifted products ran 0.9x as fast).
    """
    if winograd and c_in >= 32 and c_out >= c_in and c_in * c_out >= 2048 and tiles <= 1.4:
        return "winograd"
    if grid_waste <= 0.5 and (c_out <= 2 * c_in or (c_out <= 4 * c_in and grid_waste <= 0.3)):
        return "shifted"
    return "im2col"


def _generic_rule(winograd: bool, c_in: int, c_out: int, tiles: float, grid_waste: float) -> str:
    """The rule measured without small-matrix kernels (OpenBLAS ``Haswell`` on AMD EPYC).

    - Winograd for undilated 3x3 kernels from 16 input channels when its tiles
      waste at most 35%, or at most 40% from 32 channels in and out (11x11
      outputs): 1.1-1.5x as fast as im2col (1.35x for 32 -> 32 on 14x14);
      other undilated 3x3 kernels (7x7 images, whose tiles waste 63-92%) by
      im2col, within 11% of the fastest;
    - shifted products for other kernels (5x5, dilated) from 16 input channels
      with ``c_out <= c_in`` on grids wasting at most 40%: up to 1.5x as fast
      as im2col (28x28 images);
    - im2col for the rest (8 input channels; more outputs than inputs, where
      shifted products ran 1.2-6x slower).
    """
    if winograd:
        fits = tiles <= 1.35 or (tiles <= 1.4 and c_in >= 32 and c_out >= 32)
        return "winograd" if c_in >= 16 and fits else "im2col"
    if c_in >= 16 and c_out <= c_in and grid_waste <= 0.4:
        return "shifted"
    return "im2col"
