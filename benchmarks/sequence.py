"""Benchmark: forward + backward of sequence layers in fnn versus PyTorch eager on the CPU.

Two steps at batch 64, context 16, d_model 64, float32, each the forward pass
and the backward pass to the input and every parameter for a random
cotangent (no loss, no optimizer update: the layer-level part of a training
step; the whole network step with containers and a loss comes with part 2 of
issue 11):

- ``lstm``: ``LSTM(64)`` over ``(64, 16, 64)``, every step's output.
- ``block``: a pre-norm causal transformer block,
  ``h = x + MHA(LN(x))``, ``y = h + Dense(64)(GELU(Dense(256)(LN(h))))``
  with 4 heads; the residual additions (and their backward) are written out
  by hand here, since fnn's ``Residual`` container is not merged yet.

fnn and torch run interleaved in one process (fnn step, torch step, ...) so
both see the same machine state, with threads limited alike (threadpoolctl
for NumPy's BLAS, ``torch.set_num_threads``). Prints the median wall and CPU
milliseconds per step, the ratio fnn / torch, and the load average (the
machine may be shared: compare ratios, not absolute times).

Run:  python benchmarks/sequence.py [--steps 30] [--threads 1 2] [--profile] [--scatter]

``--profile`` prints the median CPU time of each fnn layer's forward and
backward in the block and the LSTM. ``--scatter`` (alone) times the ways of computing
an embedding's weight gradient (a scatter-add over repeated ids) for ``(64,
16)`` ids and ``dim`` 64: ``np.add.at``, a sort + ``np.add.reduceat``, and the
two methods of ``fnn.layers.embedding.scatter_add_rows`` (``np.bincount``,
one-hot product), best of five runs of 200 calls, one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from fnn.layers import GELU, LSTM, Dense, LayerNorm, MultiHeadAttention

BATCH, CONTEXT, D_MODEL, HEADS, HIDDEN = 64, 16, 64, 4, 256
F32 = np.dtype(np.float32)
Step = Callable[[np.ndarray, np.ndarray], Any]


def fnn_lstm() -> Step:
    layer, _ = LSTM(D_MODEL).init(0, (CONTEXT, D_MODEL), F32)

    def step(x: np.ndarray, dy: np.ndarray) -> Any:
        _, pullback = layer.vjp(x)
        return pullback(dy)

    return step


def fnn_block_layers() -> list[Any]:
    """The block's layers, built: ln1, attention, ln2, dense1, gelu, dense2."""
    shape = (CONTEXT, D_MODEL)
    ln1, _ = LayerNorm().init(0, shape, F32)
    mha, _ = MultiHeadAttention(HEADS, causal=True).init(1, shape, F32)
    ln2, _ = LayerNorm().init(2, shape, F32)
    d1, hidden = Dense(HIDDEN).init(3, shape, F32)
    d2, _ = Dense(D_MODEL).init(4, hidden, F32)
    return [ln1, mha, ln2, d1, GELU(), d2]


def fnn_block() -> Step:
    ln1, mha, ln2, d1, gelu, d2 = fnn_block_layers()

    def step(x: np.ndarray, dy: np.ndarray) -> Any:
        a, pb_ln1 = ln1.vjp(x)
        a, pb_mha = mha.vjp(a)
        h = x + a
        m, pb_ln2 = ln2.vjp(h)
        m, pb_d1 = d1.vjp(m)
        m, pb_gelu = gelu.vjp(m)
        m, pb_d2 = d2.vjp(m)
        _ = h + m  # the block's output
        grads = []
        g = dy
        for pb in (pb_d2, pb_gelu, pb_d1, pb_ln2):
            dlayer, g = pb(g)
            grads.append(dlayer)
        dh = dy + g
        g = dh
        for pb in (pb_mha, pb_ln1):
            dlayer, g = pb(g)
            grads.append(dlayer)
        return grads, dh + g

    return step


def torch_steps() -> dict[str, Step] | None:
    """The same two steps in PyTorch eager, or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    nn = torch.nn
    lstm = nn.LSTM(D_MODEL, D_MODEL, batch_first=True)
    ln1, ln2 = nn.LayerNorm(D_MODEL), nn.LayerNorm(D_MODEL)
    mha = nn.MultiheadAttention(D_MODEL, HEADS, batch_first=True)
    mlp = nn.Sequential(
        nn.Linear(D_MODEL, HIDDEN), nn.GELU(approximate="tanh"), nn.Linear(HIDDEN, D_MODEL)
    )
    mask = torch.triu(torch.ones(CONTEXT, CONTEXT, dtype=torch.bool), 1)
    modules = [lstm, ln1, ln2, mha, mlp]

    def lstm_step(x: np.ndarray, dy: np.ndarray) -> Any:
        for m in modules:
            m.zero_grad()
        xt = torch.from_numpy(x).requires_grad_()
        y, _ = lstm(xt)
        y.backward(torch.from_numpy(dy))
        return xt.grad

    def block_step(x: np.ndarray, dy: np.ndarray) -> Any:
        for m in modules:
            m.zero_grad()
        xt = torch.from_numpy(x).requires_grad_()
        a = ln1(xt)
        h = xt + mha(a, a, a, attn_mask=mask, need_weights=False)[0]
        y = h + mlp(ln2(h))
        y.backward(torch.from_numpy(dy))
        return xt.grad

    return {"lstm": lstm_step, "block": block_step}


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Limit NumPy's BLAS (threadpoolctl, if installed) and torch to ``n`` threads."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limiter: Any = contextlib.nullcontext()
        print("  (threadpoolctl not installed: NumPy's BLAS threads are not limited)")
    else:
        limiter = threadpool_limits(limits=n)
    try:
        import torch

        old = torch.get_num_threads()
        torch.set_num_threads(n)
    except ImportError:
        torch = None  # type: ignore[assignment]
    try:
        with limiter:
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(old)


def bench(n_threads: int, steps: int, warmup: int = 3) -> None:
    """Interleave fnn and torch steps of each model; print medians and ratios."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, CONTEXT, D_MODEL)).astype(np.float32)
    dy = rng.standard_normal((BATCH, CONTEXT, D_MODEL)).astype(np.float32)
    ours = {"lstm": fnn_lstm(), "block": fnn_block()}
    theirs = torch_steps() or {}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"threads={n_threads}, load average at start {load:.2f}", flush=True)
    for model in ours:
        runners = {"fnn": ours[model]} | ({"torch": theirs[model]} if model in theirs else {})
        wall: dict[str, list[float]] = {name: [] for name in runners}
        cpu: dict[str, list[float]] = {name: [] for name in runners}
        with threads(n_threads):
            for i in range(warmup + steps):
                for name, run in runners.items():
                    t0, c0 = time.perf_counter(), time.process_time()
                    run(x, dy)
                    if i >= warmup:
                        wall[name].append(time.perf_counter() - t0)
                        cpu[name].append(time.process_time() - c0)
        for label, times in (("wall", wall), ("cpu", cpu)):
            med = {name: 1e3 * statistics.median(ts) for name, ts in times.items()}
            line = f"  {model:<5} {label:>4}: fnn {med['fnn']:6.2f} ms"
            if "torch" in med:
                ratio = med["fnn"] / med["torch"]
                line += f", torch {med['torch']:6.2f} ms, ratio fnn/torch {ratio:.2f}"
            print(line, flush=True)


def profile(n_threads: int, steps: int = 20) -> None:
    """Median CPU milliseconds of each fnn layer's forward (vjp) and backward (pullback).

    The block's layers are timed as a plain chain (without the residual additions)
    on their real inputs; the LSTM on its own.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, CONTEXT, D_MODEL)).astype(np.float32)
    lstm, _ = LSTM(D_MODEL).init(0, (CONTEXT, D_MODEL), F32)
    chains = [fnn_block_layers(), [lstm]]
    names = [layer.name for chain in chains for layer in chain]
    fwd: dict[int, list[float]] = {i: [] for i in range(len(names))}
    bwd: dict[int, list[float]] = {i: [] for i in range(len(names))}
    with threads(n_threads):
        for _ in range(steps):
            offset = 0
            for chain in chains:
                h, pbs = x, []
                for i, layer in enumerate(chain):
                    t0 = time.process_time()
                    h, pb = layer.vjp(h)
                    fwd[offset + i].append(time.process_time() - t0)
                    pbs.append(pb)
                g = rng.standard_normal(h.shape).astype(np.float32)
                for i in range(len(chain) - 1, -1, -1):
                    t0 = time.process_time()
                    _, g = pbs[i](g)
                    bwd[offset + i].append(time.process_time() - t0)
                offset += len(chain)
    print(f"profile (threads={n_threads}), median CPU ms:  forward  backward")
    for i, name in enumerate(names):
        f, b = 1e3 * statistics.median(fwd[i]), 1e3 * statistics.median(bwd[i])
        print(f"  {name:<42} {f:7.2f} {b:8.2f}")


def scatter(vocabs: tuple[int, ...] = (27, 128, 1000)) -> None:
    """Microseconds per scatter-add of (64·16, 64) float32 rows into ``vocab`` rows."""
    import timeit

    from fnn.layers.embedding import scatter_add_rows

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((BATCH * CONTEXT, D_MODEL)).astype(np.float32)

    def add_at(ids: np.ndarray, vocab: int) -> np.ndarray:
        out = np.zeros((vocab, D_MODEL), np.float32)
        np.add.at(out, ids, rows)
        return out

    def sort_reduceat(ids: np.ndarray, vocab: int) -> np.ndarray:
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        starts = np.flatnonzero(np.concatenate(([True], sorted_ids[1:] != sorted_ids[:-1])))
        out = np.zeros((vocab, D_MODEL), np.float32)
        out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
        return out

    methods: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
        "np.add.at": add_at,
        "sort+reduceat": sort_reduceat,
        "np.bincount": lambda ids, v: scatter_add_rows(ids, rows, v, method="bincount"),
        "one-hot product": lambda ids, v: scatter_add_rows(ids, rows, v, method="one_hot"),
    }
    print("scatter-add, (64, 16) ids, dim 64, float32, best of 5 x 200 calls, us per call")
    with threads(1):
        for vocab in vocabs:
            ids = rng.integers(0, vocab, BATCH * CONTEXT)
            expected = add_at(ids, vocab)
            cells = []
            for name, fn in methods.items():
                np.testing.assert_allclose(fn(ids, vocab), expected, rtol=1e-4, atol=1e-4)
                call = functools.partial(fn, ids, vocab)
                t = min(timeit.repeat(call, number=200, repeat=5)) / 200
                cells.append(f"{name} {1e6 * t:7.1f}")
            print(f"  vocab {vocab:>5}: " + ",  ".join(cells), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--scatter", action="store_true")
    args = parser.parse_args(argv)
    if args.scatter:
        scatter()
        return
    for n in args.threads:
        bench(n, args.steps)
        if args.profile:
            profile(n)


if __name__ == "__main__":
    main()
