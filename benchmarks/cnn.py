"""Benchmark: one CNN training step in fnn versus PyTorch eager on the CPU.

The step: batch 128 of 28x28x1 images, conv 3x3 1->16 (same), ReLU, max-pool 2,
conv 3x3 16->32 (same), ReLU, max-pool 2, flatten, dense -> 10, softmax
cross-entropy, plain SGD. float32 throughout. The two frameworks run
interleaved in one process (fnn step, torch step, fnn step, ...) so that both
see the same machine state; threads are limited the same way for both
(threadpoolctl for NumPy's BLAS, ``torch.set_num_threads`` for PyTorch).

Run:  python benchmarks/cnn.py [--steps 30] [--threads 1 2] [--profile]

Prints the median milliseconds per step of each and the ratio fnn / torch, in
wall-clock time and in CPU time of this process (``time.process_time``; with
one thread it is robust to other programs competing for the cores, with two it
adds up both threads).
``--profile`` also prints where fnn's time goes, per layer and pass.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

import fnn
from fnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

BATCH = 128


def fnn_step_fn(seed: int) -> Callable[[np.ndarray, np.ndarray], float]:
    """A closure running one fnn training step (the network value is threaded through)."""
    layers = [
        Conv2D(16, 3, padding="same", w_init="he_normal"),
        ReLU(),
        MaxPool2D(2),
        Conv2D(32, 3, padding="same", w_init="he_normal"),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(10),
    ]
    state = {"net": fnn.init(layers, (28, 28, 1), key=seed)}

    def step(x: np.ndarray, y: np.ndarray) -> float:
        loss_fn = fnn.losses.sparse_softmax_cross_entropy
        loss, grads = fnn.value_and_grad(state["net"], x, y, loss_fn)
        state["net"] = fnn.sgd_step(state["net"], grads, lr=0.01)
        return float(loss)

    return step


def torch_step_fn(seed: int) -> Callable[[np.ndarray, np.ndarray], float] | None:
    """The same step in PyTorch eager (NCHW), or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(seed)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def step(x: np.ndarray, y: np.ndarray) -> float:
        xt = torch.from_numpy(x).permute(0, 3, 1, 2)  # the same NHWC data as fnn gets
        opt.zero_grad()
        loss = loss_fn(model(xt), torch.from_numpy(y))
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


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
    """Interleave fnn and torch steps; print medians and the ratio."""
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    runners = {"fnn": fnn_step_fn(0), "torch": torch_step_fn(0)}
    names = [name for name, fn in runners.items() if fn is not None]
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    with threads(n_threads):
        for i in range(warmup + steps):
            for name in names:
                t0, c0 = time.perf_counter(), time.process_time()
                runners[name](x, y)  # type: ignore[misc]
                if i >= warmup:
                    wall[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.process_time() - c0)
    for label, times in (("wall", wall), ("cpu", cpu)):
        med = {name: 1e3 * statistics.median(ts) for name, ts in times.items()}
        line = f"threads={n_threads} {label:>4}: fnn {med['fnn']:.1f} ms/step"
        if "torch" in med:
            ratio = med["fnn"] / med["torch"]
            line += f", torch {med['torch']:.1f} ms/step, ratio fnn/torch {ratio:.2f}"
        print(line, flush=True)


def profile(n_threads: int, steps: int = 10) -> None:
    """Median time of each layer's forward+vjp and pullback in the fnn step."""
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 28, 28, 1), dtype=np.float32)
    net = fnn.init(
        [
            Conv2D(16, 3, padding="same"),
            ReLU(),
            MaxPool2D(2),
            Conv2D(32, 3, padding="same"),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dense(10),
        ],
        (28, 28, 1),
        key=0,
    )
    fwd: dict[int, list[float]] = {i: [] for i in range(len(net.layers))}
    bwd: dict[int, list[float]] = {i: [] for i in range(len(net.layers))}
    with threads(n_threads):
        for _ in range(steps):
            h, pbs = x, []
            for i, layer in enumerate(net.layers):
                t0 = time.process_time()
                h, pb = layer.vjp(h, need_dx=i > 0)
                fwd[i].append(time.process_time() - t0)
                pbs.append(pb)
            dy = rng.standard_normal(h.shape).astype(np.float32)
            for i in range(len(net.layers) - 1, -1, -1):
                t0 = time.process_time()
                _, dx = pbs[i](dy)
                bwd[i].append(time.process_time() - t0)
                if dx is not None:
                    dy = dx
    print(f"profile (threads={n_threads}), median CPU ms: layer  forward  backward")
    for i, layer in enumerate(net.layers):
        f, b = 1e3 * statistics.median(fwd[i]), 1e3 * statistics.median(bwd[i])
        print(f"  {layer.name:<36} {f:7.2f} {b:8.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    for n in args.threads:
        bench(n, args.steps)
        if args.profile:
            profile(n)


if __name__ == "__main__":
    main()
