"""Where fnn's convolution-network time goes: per layer and pass, GEMM versus copies.

Used by ``python benchmarks/cnn.py --profile``. Each layer's ``vjp`` (forward)
and pullback (backward) is timed: median wall ms and CPU ms of the process
(``time.process_time``, which other programs' load changes less; with two
threads it adds up both). fnn's named array helpers in ``fnn.layers._im2col``
and ``fnn.layers._pool_ops`` are wrapped with per-thread CPU timers
(``time.thread_time``) and grouped into categories: GEMM (products), im2col,
col2im, padding, pooling, and Winograd's transforms ("wino", its input
phases under "pad"). "rest" is the CPU time not spent in a wrapped helper
(element-wise ufuncs such as ReLU, BatchNorm and the bias add, column sums,
reshapes, checks, thread hand-offs; for shifted products the padded grid and
the additions of their products; before issue 15 also the products written
inline with ``@``). A helper called inside another wrapped helper counts for
the outer one only.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

import fnn
from fnn.layers import BatchNorm, Conv2D, ReLU
from fnn.layers import _im2col as ops
from fnn.layers import _pool_ops as pool_ops
from fnn.layers import _winograd as winograd

# helper name -> category; names missing from the module are skipped
CATEGORIES = {
    "matmul": "gemm",
    "matmul_tn": "gemm",
    "im2col": "im2col",
    "col2im": "col2im",
    "pad": "pad",
    "pad_into": "pad",
    "max_pool_tiles": "pool",
    "max_pool_tiles_grad": "pool",
    "max_pool_tiles_masks": "pool",
    "tiles": "pool",
    "_to_phases": "pad",
    "_input_transform": "wino",
    "_output_transform": "wino",
    "_output_transform_adjoint": "wino",
    "_input_transform_adjoint": "wino",
}
COLUMNS = ["gemm", "im2col", "col2im", "pad", "pool", "wino"]

_local = threading.local()
_spent: dict[str, float] = defaultdict(float)


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    category = CATEGORIES[name]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "inside", False):
            return fn(*args, **kwargs)
        _local.inside = True
        t0 = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _spent[category] += time.thread_time() - t0
            _local.inside = False

    return wrapper


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """Wrap fnn's named array helpers with timers for the block."""
    saved = [
        (module, name, getattr(module, name))
        for module in (ops, pool_ops, winograd)
        for name in CATEGORIES
        if hasattr(module, name)
    ]
    for module, name, fn in saved:
        setattr(module, name, _timed(name, fn))
    try:
        yield
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)


class Table:
    """Median wall ms per (row, pass) and per helper category."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)

    def time(self, row: str, phase: str, fn: Callable[[], Any]) -> Any:
        _spent.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        sample = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, **_spent}
        self.rows[(row, phase)].append(sample)
        return out

    def print(self, title: str) -> None:
        keys = ["wall", "cpu", *COLUMNS]
        print(f"\n{title}\n  {'layer':<30}{'pass':<5}", end="")
        print("".join(f"{c:>7}" for c in [*keys, "rest"]))
        sums: dict[str, float] = defaultdict(float)
        for (row, phase), samples in self.rows.items():
            med = {k: 1e3 * statistics.median(s.get(k, 0.0) for s in samples) for k in keys}
            med["rest"] = med["cpu"] - sum(med[c] for c in COLUMNS)
            for k, v in med.items():
                sums[k] += v
            cells = "".join(f"{med[c]:7.2f}" for c in [*keys, "rest"])
            print(f"  {row[:29]:<30}{phase[:4]:<5}{cells}")
        cells = "".join(f"{sums[c]:7.2f}" for c in [*keys, "rest"])
        print(f"  {'sum of medians':<35}{cells}")


def profile_cnn(table: Table, steps: int) -> None:
    from cnn import cnn_layers  # type: ignore[import-not-found]

    rng = np.random.default_rng(0)
    x = rng.random((128, 28, 28, 1), dtype=np.float32)
    net = fnn.init(cnn_layers(), (28, 28, 1), key=0)
    dy0 = rng.standard_normal((128, 10)).astype(np.float32)
    for _ in range(steps):
        h, pbs = x, []
        for i, layer in enumerate(net.layers):
            run = functools.partial(layer.vjp, h, need_dx=i > 0)
            h, pb = table.time(f"{i}:{layer.name}", "forward", run)
            pbs.append(pb)
        dy = dy0
        for i in range(len(net.layers) - 1, -1, -1):
            run = functools.partial(pbs[i], dy)
            _, dx = table.time(f"{i}:{net.layers[i].name}", "backward", run)
            dy = dx if dx is not None else dy


def profile_block(table: Table, steps: int, hw: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, hw, hw, 32), dtype=np.float32)
    dy = rng.standard_normal(x.shape, dtype=np.float32)
    conv, _ = Conv2D(32, 3, padding="same").init(0, x.shape[1:], x.dtype)
    bn, _ = BatchNorm().init(0, x.shape[1:], x.dtype)
    relu = ReLU()
    for _ in range(steps):
        h, pb_c = table.time(conv.name, "forward", functools.partial(conv.vjp, x))
        run = functools.partial(bn.vjp_with_state, h, training=True)
        h, pb_b, _ = table.time("BatchNorm", "forward", run)
        h, pb_r = table.time("ReLU", "forward", functools.partial(relu.vjp, h))
        table.time("residual add", "forward", functools.partial(np.add, h, x))
        _, d = table.time("ReLU", "backward", functools.partial(pb_r, dy))
        _, d = table.time("BatchNorm", "backward", functools.partial(pb_b, d))
        _, d = table.time(conv.name, "backward", functools.partial(pb_c, d))
        table.time("residual add", "backward", functools.partial(np.add, d, dy))


def profile(
    models: list[str],
    n_threads: int,
    block_hw: int,
    limit: Callable[[int], contextlib.AbstractContextManager[None]],
    load: Callable[[], str],
    steps: int = 15,
) -> None:
    """Print the per-layer, per-pass table of each model, inside ``limit(n_threads)``."""
    for model in models:
        table = Table()
        with limit(n_threads), instrumented():
            if model == "cnn":
                profile_cnn(table, steps)
            else:
                profile_block(table, steps, block_hw)
        what = "CNN" if model == "cnn" else f"ResNet block {block_hw}x{block_hw}x32"
        table.print(f"profile {what}, threads={n_threads}, median ms; {load()}")
