"""Benchmark: one training step of sequence models in fnn versus PyTorch eager on the CPU.

Two character-level language models at batch 64, context 16, d_model 64,
vocabulary 27, float32, each step being the whole network's forward pass, a
masked ``sparse_softmax_cross_entropy`` over the (batch, time) positions (random
word lengths 1-16; the padding masked), the backward pass and an Adam update:

- ``lstm``: ``Embedding(27, 64)``, ``LSTM(64)``, ``Dense(27)``.
- ``transformer``: ``Embedding(27, 64)``, ``PositionalEmbedding(16)``, two
  pre-norm causal blocks, each ``Residual([LayerNorm(), MultiHeadAttention(4,
  causal=True)])`` then ``Residual([LayerNorm(), Dense(256), GELU(), Dense(64)])``,
  a final ``LayerNorm()`` and ``Dense(27)``.

fnn's step is ``fnn.value_and_grad`` then ``opt.update`` (``fnn.optim.adam``);
PyTorch's is ``zero_grad``, forward, ``F.cross_entropy(ignore_index=-100)``,
``backward`` and ``torch.optim.Adam.step`` on the same architecture
(``nn.MultiheadAttention`` with a causal mask, ``GELU(approximate="tanh")``).
fnn and torch run interleaved in one process (fnn step, torch step, ...) so
both see the same machine state, with threads limited alike (threadpoolctl for
NumPy's BLAS, ``torch.set_num_threads``). Prints the median wall and CPU
milliseconds per step, the ratio fnn / torch, and the load average (the
machine may be shared: compare ratios, not absolute times). The target of
issue 11 is a transformer step within 2x of PyTorch.

Measured with ``OPENBLAS_NUM_THREADS=1 python benchmarks/sequence.py --threads 1
--profile`` (torch 2.13.0 CPU, 30 steps after 3 warm-up ones, machine shared:
2 cores, another training job on one), median wall ms per step::

    lstm        fnn  5.09, torch  3.78, ratio fnn/torch 1.35
    transformer fnn 22.78, torch 16.17, ratio fnn/torch 1.41

The profile of that run splits fnn's transformer step (19.6 CPU ms, forward +
backward of every instance): Dense 5.5, GELU 4.8, MultiHeadAttention 3.9,
LayerNorm 3.2, the optimizer update 0.9, plumbing 0.7, the loss 0.3, the
embeddings 0.3.

Run:  python benchmarks/sequence.py [--steps 30] [--threads 1 2] [--profile] [--scatter]

``--profile`` splits fnn's transformer step (one thread) by where the CPU time
goes: each layer's forward and backward (timed inside the network), the loss,
the optimizer update, and the rest (network and container plumbing: input
checks, pullback checks, tree building). ``--scatter`` (alone) times the ways
of computing an embedding's weight gradient (a scatter-add over repeated ids)
for ``(64, 16)`` ids and ``dim`` 64: ``np.add.at``, a sort + ``np.add.reduceat``,
and the two methods of ``fnn.layers.embedding.scatter_add_rows``
(``np.bincount``, one-hot product), best of five runs of 200 calls, one thread.
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

import fnn

BATCH, CONTEXT, D_MODEL, HEADS, HIDDEN, VOCAB = 64, 16, 64, 4, 256, 27
LR = 1e-3
Step = Callable[[], Any]
Data = tuple[np.ndarray, np.ndarray, np.ndarray]


def data(seed: int = 0) -> Data:
    """Ids ``(64, 16)``, next-id labels with -100 at padding, and the mask (random lengths)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, CONTEXT + 1, BATCH)
    keep = np.arange(CONTEXT) < lengths[:, None]
    x = np.where(keep, rng.integers(0, VOCAB, (BATCH, CONTEXT)), 0)
    y = np.where(keep, rng.integers(0, VOCAB, (BATCH, CONTEXT)), -100)
    return x, y, keep


def lstm_layers() -> list[fnn.Layer]:
    return [fnn.Embedding(VOCAB, D_MODEL), fnn.LSTM(D_MODEL), fnn.Dense(VOCAB)]


def transformer_layers() -> list[fnn.Layer]:
    def block() -> list[fnn.Layer]:
        return [
            fnn.Residual([fnn.LayerNorm(), fnn.MultiHeadAttention(HEADS, causal=True)]),
            fnn.Residual([fnn.LayerNorm(), fnn.Dense(HIDDEN), fnn.GELU(), fnn.Dense(D_MODEL)]),
        ]

    return [
        fnn.Embedding(VOCAB, D_MODEL),
        fnn.PositionalEmbedding(CONTEXT),
        *block(),
        *block(),
        fnn.LayerNorm(),
        fnn.Dense(VOCAB),
    ]


MODELS = {"lstm": lstm_layers, "transformer": transformer_layers}


def fnn_step(name: str, batch: Data) -> Step:
    """One training step of model ``name``; each call trains the network further."""
    net = fnn.init(MODELS[name](), (CONTEXT,), key=0)
    opt = fnn.optim.adam(LR)
    state = opt.init(net)
    x, y, keep = batch
    loss = fnn.losses.sparse_softmax_cross_entropy

    def step() -> float:
        nonlocal net, state
        value, grads = fnn.value_and_grad(net, x, (y, keep), loss)
        net, state = opt.update(grads, state, net)
        return float(value)

    return step


def torch_steps(batch: Data) -> dict[str, Step] | None:
    """The same two training steps in PyTorch eager, or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    nn, functional = torch.nn, torch.nn.functional
    causal = torch.triu(torch.ones(CONTEXT, CONTEXT, dtype=torch.bool), 1)

    class LSTMModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(VOCAB, D_MODEL)
            self.lstm = nn.LSTM(D_MODEL, D_MODEL, batch_first=True)
            self.out = nn.Linear(D_MODEL, VOCAB)

        def forward(self, x: Any) -> Any:
            return self.out(self.lstm(self.emb(x))[0])

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(D_MODEL), nn.LayerNorm(D_MODEL)
            self.mha = nn.MultiheadAttention(D_MODEL, HEADS, batch_first=True)
            self.mlp = nn.Sequential(
                nn.Linear(D_MODEL, HIDDEN), nn.GELU(approximate="tanh"), nn.Linear(HIDDEN, D_MODEL)
            )

        def forward(self, h: Any) -> Any:
            a = self.ln1(h)
            h = h + self.mha(a, a, a, attn_mask=causal, need_weights=False)[0]
            return h + self.mlp(self.ln2(h))

    class Transformer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(VOCAB, D_MODEL)
            self.pos = nn.Parameter(torch.zeros(CONTEXT, D_MODEL))
            self.blocks = nn.Sequential(Block(), Block())
            self.ln = nn.LayerNorm(D_MODEL)
            self.out = nn.Linear(D_MODEL, VOCAB)

        def forward(self, x: Any) -> Any:
            return self.out(self.ln(self.blocks(self.emb(x) + self.pos)))

    xt = torch.from_numpy(batch[0])
    yt = torch.from_numpy(batch[1])

    def make(model: Any) -> Step:
        opt = torch.optim.Adam(model.parameters(), lr=LR)

        def step() -> float:
            opt.zero_grad()
            logits = model(xt)
            loss = functional.cross_entropy(logits.reshape(-1, VOCAB), yt.reshape(-1))
            loss.backward()
            opt.step()
            return float(loss.item())

        return step

    return {"lstm": make(LSTMModel()), "transformer": make(Transformer())}


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
    batch = data()
    theirs = torch_steps(batch) or {}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"threads={n_threads}, load average at start {load:.2f}", flush=True)
    for model in MODELS:
        runners = {"fnn": fnn_step(model, batch)}
        runners |= {"torch": theirs[model]} if model in theirs else {}
        wall: dict[str, list[float]] = {name: [] for name in runners}
        cpu: dict[str, list[float]] = {name: [] for name in runners}
        with threads(n_threads):
            for i in range(warmup + steps):
                for name, run in runners.items():
                    t0, c0 = time.perf_counter(), time.process_time()
                    run()
                    if i >= warmup:
                        wall[name].append(time.perf_counter() - t0)
                        cpu[name].append(time.process_time() - c0)
        for label, times in (("wall", wall), ("cpu", cpu)):
            med = {name: 1e3 * statistics.median(ts) for name, ts in times.items()}
            line = f"  {model:<11} {label:>4}: fnn {med['fnn']:6.2f} ms"
            if "torch" in med:
                ratio = med["fnn"] / med["torch"]
                line += f", torch {med['torch']:6.2f} ms, ratio fnn/torch {ratio:.2f}"
            print(line, flush=True)


@contextlib.contextmanager
def timed_classes(classes: list[type], table: dict[str, list[float]]) -> Iterator[None]:
    """Patch each class's ``vjp`` so every call adds its forward and backward CPU time to
    ``table`` under the class name (summed over the instances of one step); restore after."""
    saved = {cls: cls.__dict__.get("vjp") for cls in classes}

    def patched(cls: type) -> Callable[..., Any]:
        vjp = cls.vjp  # type: ignore[attr-defined]

        def timed_vjp(self: Any, x: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            y, pullback = vjp(self, x, **kwargs)
            table[f"{cls.__name__} forward"][-1] += time.process_time() - t0

            def timed_pullback(dy: Any) -> Any:
                t1 = time.process_time()
                out = pullback(dy)
                table[f"{cls.__name__} backward"][-1] += time.process_time() - t1
                return out

            return y, timed_pullback

        return timed_vjp

    for cls in classes:
        table[f"{cls.__name__} forward"], table[f"{cls.__name__} backward"] = [], []
        cls.vjp = patched(cls)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for cls, old in saved.items():
            if old is None:
                del cls.vjp  # type: ignore[attr-defined]
            else:
                cls.vjp = old  # type: ignore[attr-defined]


def profile(steps: int = 30, warmup: int = 3) -> None:
    """Median CPU ms of each part of fnn's transformer step (one thread): the leaf layers'
    forward and backward (by class, over all instances), the loss, the optimizer update, and
    what is left: the network's and containers' plumbing (input and pullback checks, the
    chain of pullbacks, building gradient trees)."""
    x, y, keep = data()
    net = fnn.init(transformer_layers(), (CONTEXT,), key=0)
    opt = fnn.optim.adam(LR)
    state = opt.init(net)
    loss = fnn.losses.sparse_softmax_cross_entropy
    table: dict[str, list[float]] = {"loss": [], "optimizer update": [], "whole step": []}

    def loss_fn(pred: Any, target: Any) -> Any:
        t0 = time.process_time()
        out = loss.fn(pred, target)
        table["loss"][-1] += time.process_time() - t0
        return out

    timed_loss = fnn.losses.Loss(loss.name, loss_fn)
    leaf_classes = [
        fnn.Embedding, fnn.PositionalEmbedding, fnn.LayerNorm, fnn.MultiHeadAttention,
        fnn.Dense, fnn.GELU,
    ]
    with threads(1), timed_classes(leaf_classes, table):
        for _ in range(warmup + steps):
            for times in table.values():
                times.append(0.0)
            t0 = time.process_time()
            _, grads = fnn.value_and_grad(net, x, (y, keep), timed_loss)
            t1 = time.process_time()
            net, state = opt.update(grads, state, net)
            t2 = time.process_time()
            table["optimizer update"][-1] = t2 - t1
            table["whole step"][-1] = t2 - t0
    med = {k: 1e3 * statistics.median(v[warmup:]) for k, v in table.items()}
    whole = med.pop("whole step")
    print("profile of fnn's transformer step (threads=1), median CPU ms per step:")
    for k, v in med.items():
        print(f"  {k:<40} {v:7.3f}")
    rest = whole - sum(med.values())
    print(f"  {'rest: network and container plumbing':<40} {rest:7.3f}")
    print(f"  {'whole step':<40} {whole:7.3f}")


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
        profile(args.steps)


if __name__ == "__main__":
    main()
