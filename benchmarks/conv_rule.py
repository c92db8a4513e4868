"""Which convolution formulation is fastest on this machine, against fnn's rule.

For a grid of stride-1 convolutions (batch 128 on 7-14 pixel images, 32 on
28; 8-64 input channels, 16-128 output channels, "same" and "valid"
padding; 3x3 kernels, and with ``--all`` also 5x5 and dilation 2), times one
``vjp`` + pullback (CPU ms, one thread, median of ``--reps``) computed by
im2col, shifted products and (3x3 undilated) Winograd, and prints each time,
the fastest, the formulation fnn's automatic rule picks
(``fnn.layers._conv_rule``) and how much slower that pick is than the
fastest. The last lines summarise the rule: geometric mean and worst
slowdown over all shapes.

This is how the rule for BLAS kernels without small-matrix support was
measured (on a 2-core AMD EPYC, OpenBLAS 0.3.31, ``Haswell`` kernel: 228
shapes with ``--all``, the rule 0.6% slower than the fastest on average and
1.19x at worst). Run it on a new kind of machine to see whether the rule
still fits:

    python benchmarks/conv_rule.py            # 3x3 kernels, about 3 minutes
    python benchmarks/conv_rule.py --all      # also 5x5 and dilated, about 10
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time

import numpy as np

import fnn
from fnn.layers import _conv_rule, conv
from fnn.layers.conv import Conv2D

FORMS = ("im2col", "shifted", "winograd")


def cpu_ms(layer: Conv2D, x: np.ndarray, dy: np.ndarray, reps: int) -> float:
    """Median CPU ms of one vjp + pullback (the first run, a warm-up, dropped)."""
    times = []
    for _ in range(reps + 1):
        start = time.thread_time()
        _, pullback = layer.vjp(x)
        pullback(dy)
        times.append(time.thread_time() - start)
    return 1e3 * statistics.median(times[1:])


def shapes(everything: bool) -> list[tuple[int, int, int, str, int, int]]:
    """``(side, c_in, c_out, padding, kernel, dilation)`` cases of the sweep."""
    kernels = [(3, 1), (3, 2), (5, 1), (5, 2)] if everything else [(3, 1)]
    cases = []
    for side, c_in, c_out, pad, (k, d) in itertools.product(
        [7, 13, 14, 28], [8, 16, 32, 64], [16, 32, 64, 128], ["same", "valid"], kernels
    ):
        too_small = (side - (k - 1) * d) < 1 and pad == "valid"
        too_big = side == 28 and c_in * c_out > 2048
        if c_out >= c_in // 2 and not too_small and not too_big:
            cases.append((side, c_in, c_out, pad, k, d))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="also 5x5 kernels and dilation 2")
    parser.add_argument("--reps", type=int, default=6)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    small = _conv_rule.small_matrix_blas()
    print(f"BLAS with small-matrix kernels: {small} (the rule for {'it' if small else 'others'})")
    slowdowns = []
    with fnn.threads(1):
        for side, c_in, c_out, pad, k, d in shapes(args.all):
            batch = 128 if side <= 14 else 32
            x = rng.standard_normal((batch, side, side, c_in), dtype=np.float32)
            layer, _ = Conv2D(c_out, k, padding=pad, dilation=d).init(0, x.shape[1:], x.dtype)
            dy = rng.standard_normal(layer.forward(x).shape, dtype=np.float32)
            times = {}
            for form in FORMS if (k, d) == (3, 1) else FORMS[:2]:
                conv._FORMULATION = form
                times[form] = cpu_ms(layer, x, dy, args.reps)
            conv._FORMULATION = "auto"
            pick = layer._formulation(c_in, (side, side), layer._geometry((side, side))[0])
            best = min(times, key=times.__getitem__)
            slowdowns.append(times[pick] / times[best])
            cells = " ".join(f"{f} {t:7.2f}" for f, t in times.items())
            what = f"{side:2d}x{side:<2d} {c_in:3d}->{c_out:<3d} {pad:5} {k}x{k} d{d} b{batch:<3d}"
            print(f"{what} {cells}  fastest {best:8}  rule {pick:8} {slowdowns[-1]:5.2f}x")
    mean = math.exp(sum(map(math.log, slowdowns)) / len(slowdowns))
    near = sum(s <= 1.05 for s in slowdowns)
    print(f"rule over {len(slowdowns)} shapes: {mean:.3f}x the fastest on average (geometric),")
    print(f"  {max(slowdowns):.2f}x at worst, within 5% of the fastest on {near}")


if __name__ == "__main__":
    main()
