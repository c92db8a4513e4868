"""One epoch of MLP training on Fashion-MNIST: fnn vs a hand-written NumPy loop (vs PyTorch).

Networks 784-256-128-10 and 784-32-16-10 (ReLU, softmax cross-entropy on
integer labels), batch 128, plain SGD, float32. Every contender starts from the
same weights and visits the examples in the same shuffled order:

- ``fnn fit``: ``fnn.fit`` with ``fnn.optim.sgd`` (no metrics, no validation);
- ``fnn loop``: ``fnn.batches`` + ``fnn.value_and_grad`` + ``fnn.sgd_step``;
- ``numpy``: the same math written by hand on raw arrays, updated in place;
- ``torch``: PyTorch eager (``nn.Linear`` + ``F.cross_entropy`` + ``optim.SGD``),
  when torch is importable, with ``torch.set_num_threads`` equal to the BLAS limit.

The contenders run interleaved (one epoch each, round after round) so that
machine noise hits them alike; the script prints median seconds per epoch and
ratios to the NumPy loop, once per BLAS thread count (via threadpoolctl).

    python benchmarks/mlp.py                   # full epochs, 5 rounds, 1 and 2 threads
    python benchmarks/mlp.py --steps 50 --rounds 3
    python benchmarks/mlp.py --profile         # cProfile of fnn's per-step overhead
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import itertools
import os
import platform
import pstats
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np

import fnn
from fnn.train import batches, fit

BATCH, LR, SEED = 128, 0.1, 0
ARCHS = {"784-256-128-10": (256, 128), "784-32-16-10": (32, 16)}
CE = fnn.losses.sparse_softmax_cross_entropy


def load_train() -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST training images as (60000, 784) float32 in [0, 1] and int64 labels."""
    try:
        from fnn import datasets

        d = datasets.fashion_mnist()
        x, y = d.x_train, d.y_train
    except (ImportError, AttributeError):  # fnn.datasets not available: read the IDX files
        root = Path("/usr/share/datasets/fashion-mnist")
        with gzip.open(root / "train-images-idx3-ubyte.gz") as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        with gzip.open(root / "train-labels-idx1-ubyte.gz") as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8)
    return (x.reshape(len(x), -1) / np.float32(255)).astype(np.float32), y.astype(np.int64)


def build(hidden: tuple[int, int]) -> fnn.Network:
    layers = [fnn.Dense(hidden[0]), fnn.ReLU(), fnn.Dense(hidden[1]), fnn.ReLU(), fnn.Dense(10)]
    return fnn.init(layers, (784,), key=SEED)


def has_sgd() -> bool:
    try:
        from fnn.optim import sgd  # noqa: F401
    except ImportError:
        return False
    return True


def fit_epoch(net: fnn.Network, x: np.ndarray, y: np.ndarray, key: int) -> fnn.Network:
    from fnn.optim import sgd

    return fit(net, sgd(LR), CE, (x, y), epochs=1, key=key, batch_size=BATCH,
                         progress=False)[0]


def loop_epoch(net: fnn.Network, x: np.ndarray, y: np.ndarray, key: fnn.random.Key) -> fnn.Network:
    for xb, yb in batches(x, y, BATCH, key=key):
        _, grads = fnn.value_and_grad(net, xb, yb, CE)
        net = fnn.sgd_step(net, grads, LR)
    return net


def numpy_epoch(params: list[np.ndarray], x: np.ndarray, y: np.ndarray, order: np.ndarray) -> None:
    """Hand-written forward, backward and SGD for Dense-ReLU-Dense-ReLU-Dense, in place."""
    w1, b1, w2, b2, w3, b3 = params
    lr = np.float32(LR)
    for i in range(0, len(x), BATCH):
        idx = order[i : i + BATCH]
        xb, yb = x[idx], y[idx]
        h1 = xb @ w1 + b1
        a1 = np.maximum(h1, 0)
        h2 = a1 @ w2 + b2
        a2 = np.maximum(h2, 0)
        z = a2 @ w3 + b3
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(yb)), yb] -= 1
        d3 = p / np.float32(len(yb))
        d2 = (d3 @ w3.T) * (h2 > 0)
        d1 = (d2 @ w2.T) * (h1 > 0)
        w3 -= lr * (a2.T @ d3)
        b3 -= lr * d3.sum(axis=0)
        w2 -= lr * (a1.T @ d2)
        b2 -= lr * d2.sum(axis=0)
        w1 -= lr * (xb.T @ d1)
        b1 -= lr * d1.sum(axis=0)


def torch_epoch_fn(net: fnn.Network) -> Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None:
    try:
        import torch
    except ImportError:
        return None
    dims = [784] + [layer.units for layer in net.layers if isinstance(layer, fnn.Dense)]
    linears = [torch.nn.Linear(a, b) for a, b in itertools.pairwise(dims)]
    dense = [layer for layer in net.layers if isinstance(layer, fnn.Dense)]
    with torch.no_grad():
        for lin, layer in zip(linears, dense, strict=True):
            lin.weight.copy_(torch.from_numpy(np.array(layer.w.T)))
            lin.bias.copy_(torch.from_numpy(np.array(layer.b)))
    relu = torch.nn.ReLU
    model = torch.nn.Sequential(linears[0], relu(), linears[1], relu(), linears[2])
    opt = torch.optim.SGD(model.parameters(), lr=LR)

    def epoch(x: np.ndarray, y: np.ndarray, order: np.ndarray) -> None:
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        torder = torch.from_numpy(order)
        for i in range(0, len(x), BATCH):
            idx = torder[i : i + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(tx[idx]), ty[idx])
            loss.backward()
            opt.step()

    return epoch


def numpy_params(net: fnn.Network) -> list[np.ndarray]:
    return [np.array(a) for layer in net.layers if isinstance(layer, fnn.Dense)
            for a in (layer.w, layer.b)]


def bench(x: np.ndarray, y: np.ndarray, threads: int, rounds: int) -> None:
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    fit_key = fnn.random.key(SEED)
    shuffle_key = fnn.random.fold_in(fnn.random.fold_in(fit_key, 0), 0)  # what fit uses
    order = fnn.random.generator(shuffle_key).permutation(len(x))
    print(f"\nBLAS threads = {threads}, torch threads = {threads}, {len(x)} examples, "
          f"batch {BATCH}, {rounds} rounds (median s/epoch)")
    print(f"{'network':<16}{'fnn fit':>9}{'fnn loop':>10}{'numpy':>8}{'torch':>8}"
          f"{'fit/np':>8}{'loop/np':>8}{'torch/np':>9}")
    for name, hidden in ARCHS.items():
        med = bench_arch(build(hidden), x, y, order, shuffle_key, rounds)
        print(f"{name:<16}{med['fit']:>9.3f}{med['loop']:>10.3f}{med['numpy']:>8.3f}"
              f"{med['torch']:>8.3f}{med['fit'] / med['numpy']:>8.2f}"
              f"{med['loop'] / med['numpy']:>8.2f}{med['torch'] / med['numpy']:>9.2f}")


def bench_arch(
    net: fnn.Network, x: np.ndarray, y: np.ndarray, order: np.ndarray,
    shuffle_key: fnn.random.Key, rounds: int,
) -> dict[str, float]:
    """Median seconds per epoch of each contender, interleaved round by round."""
    torch_epoch = torch_epoch_fn(net)
    contenders: dict[str, Callable[[], object]] = {
        "loop": lambda: loop_epoch(net, x, y, shuffle_key),
        "numpy": lambda: numpy_epoch(numpy_params(net), x, y, order),
    }
    if has_sgd():
        contenders["fit"] = lambda: fit_epoch(net, x, y, SEED)
    if torch_epoch is not None:
        contenders["torch"] = lambda: torch_epoch(x, y, order)
    times: dict[str, list[float]] = {"fit": [], "loop": [], "numpy": [], "torch": []}
    for _ in range(rounds):
        for label, run in contenders.items():
            t0 = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - t0)
    return {k: statistics.median(v) if v else float("nan") for k, v in times.items()}


def check_same_math(x: np.ndarray, y: np.ndarray) -> None:
    """fnn's loop and the NumPy loop reach the same weights (float32 rounding apart)."""
    net = build(ARCHS["784-32-16-10"])
    n = 20 * BATCH
    key = fnn.random.key(1)
    order = fnn.random.generator(key).permutation(n)
    params = numpy_params(net)
    numpy_epoch(params, x[:n], y[:n], order)
    trained = numpy_params(loop_epoch(net, x[:n], y[:n], key))
    err = max(float(np.abs(a - b).max()) for a, b in zip(params, trained, strict=True))
    print(f"same math: max |w_fnn - w_numpy| after 20 steps = {err:.2e}")


def profile(x: np.ndarray, y: np.ndarray, threads: int) -> None:
    from threadpoolctl import threadpool_limits

    net = build(ARCHS["784-32-16-10"])
    n = 200 * BATCH
    with threadpool_limits(threads):
        prof = cProfile.Profile()
        prof.enable()
        fit_epoch(net, x[:n], y[:n], SEED)
        prof.disable()
    print(f"\ncProfile: fnn.fit, 784-32-16-10, 200 steps, {threads} BLAS thread(s)")
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=0, help="steps per epoch (0: full epoch)")
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    x, y = load_train()
    if args.steps:
        x, y = x[: args.steps * BATCH], y[: args.steps * BATCH]
    from threadpoolctl import threadpool_info, threadpool_limits

    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    for info in threadpool_info():
        print(f"  {info.get('internal_api')} {info.get('version')} {info.get('architecture')} "
              f"threads={info.get('num_threads')} ({Path(info.get('filepath', '')).name})")
    check_same_math(x, y)
    if args.profile:
        for t in args.threads:
            profile(x, y, t)
        return
    for t in args.threads:
        with threadpool_limits(t) if t else nullcontext():
            bench(x, y, t, args.rounds)


if __name__ == "__main__":
    main()
