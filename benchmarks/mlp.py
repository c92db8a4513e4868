"""MLP training speed: fnn's loop and fit vs a hand-written NumPy loop (vs PyTorch), one run.

Networks 784-256-128-10 and 784-32-16-10 (ReLU, softmax cross-entropy on
integer labels), batch 128, plain SGD, float32, on Fashion-MNIST. Every
contender starts from the same weights and visits the examples in the same
shuffled order:

- ``numpy``: the math written by hand on raw arrays, updated in place;
- ``fnn loop``: ``fnn.batches`` + ``fnn.value_and_grad`` + ``fnn.sgd_step``;
- ``fnn fit``: ``fnn.fit`` with ``fnn.optim.sgd`` (no metrics, no validation);
- ``torch``: PyTorch eager (``nn.Linear`` + ``F.cross_entropy`` + ``optim.SGD``),
  when torch is importable, with one thread.

Each timed run trains ``--epochs`` epochs (default 2, shuffled as ``fit``
shuffles) and the table shows seconds per epoch: ``fit`` scans x for NaN/inf in
its first epoch only (x cannot change during a fit), while the loop's
``value_and_grad`` must scan every batch it is given; ``--epochs 1`` times the
case where that saving does not apply.

The contenders run interleaved (one run each, round after round) so that
machine noise hits them alike, all inside ``fnn.threads(1)`` (one BLAS thread,
and torch limited to one), timed with ``time.thread_time``: the CPU time of the
one thread doing the work, so time spent waiting for a core on a shared
machine is not counted (wall-clock medians there vary by 2x from run to run).
The script prints median seconds per epoch and the ratios the project tracks,
with their targets:

- ``loop / numpy``: <= 1.15 on 784-32-16-10, <= 1.05 on 784-256-128-10;
- ``fit / loop``: <= 1.05;
- one ``fnn.optim.adam`` update / a hand NumPy Adam update (new arrays, as a
  functional update must make): <= 1.10 (from ``benchmarks/optim_adam.py``).

``--breakdown`` prints where the microseconds of one step go (medians of
interleaved timings), ``--profile`` a cProfile of fit.

    python benchmarks/mlp.py                      # full epochs, 5 rounds
    python benchmarks/mlp.py --steps 100 --rounds 9
    python benchmarks/mlp.py --breakdown
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
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import fnn
from fnn import optim
from fnn.train import batches, fit

sys.path.insert(0, str(Path(__file__).parent))
import optim_adam

BATCH, LR, SEED = 128, 0.1, 0
ARCHS = {"784-32-16-10": (32, 16), "784-256-128-10": (256, 128)}
TARGETS = {"784-32-16-10": 1.15, "784-256-128-10": 1.05}
FIT_TARGET, ADAM_TARGET = 1.05, 1.10
CE = fnn.losses.sparse_softmax_cross_entropy


def load_train() -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST training images as (60000, 784) float32 in [0, 1] and int64 labels."""
    try:
        from fnn import datasets

        d = datasets.fashion_mnist()
        x, y = d.x_train, d.y_train
    except (ImportError, AttributeError, OSError, ValueError):  # read the IDX files directly
        root = Path("/usr/share/datasets/fashion-mnist")
        with gzip.open(root / "train-images-idx3-ubyte.gz") as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        with gzip.open(root / "train-labels-idx1-ubyte.gz") as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8)
    return (x.reshape(len(x), -1) / np.float32(255)).astype(np.float32), y.astype(np.int64)


def build(hidden: tuple[int, int]) -> fnn.Network:
    layers = [fnn.Dense(hidden[0]), fnn.ReLU(), fnn.Dense(hidden[1]), fnn.ReLU(), fnn.Dense(10)]
    return fnn.init(layers, (784,), key=SEED)


def fit_epochs(net: fnn.Network, x: np.ndarray, y: np.ndarray, epochs: int) -> fnn.Network:
    return fit(net, optim.sgd(LR), CE, (x, y), epochs=epochs, key=SEED, batch_size=BATCH,
               progress=False, train_metrics=False)[0]


def loop_epoch(net: fnn.Network, x: np.ndarray, y: np.ndarray, key: fnn.random.Key) -> fnn.Network:
    for xb, yb in batches(x, y, BATCH, key=key):
        _, grads = fnn.value_and_grad(net, xb, yb, CE)
        net = fnn.sgd_step(net, grads, LR)
    return net


def shuffle_key(epoch: int) -> fnn.random.Key:
    """The key fit shuffles epoch ``epoch`` with."""
    return fnn.random.fold_in(fnn.random.fold_in(fnn.random.key(SEED), epoch), 0)


def loop_epochs(net: fnn.Network, x: np.ndarray, y: np.ndarray, epochs: int) -> fnn.Network:
    for e in range(epochs):
        net = loop_epoch(net, x, y, shuffle_key(e))
    return net


def numpy_step(params: list[np.ndarray], xb: np.ndarray, yb: np.ndarray) -> None:
    """Hand-written forward, backward and SGD for Dense-ReLU-Dense-ReLU-Dense, in place."""
    w1, b1, w2, b2, w3, b3 = params
    lr = np.float32(LR)
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


def numpy_epoch(params: list[np.ndarray], x: np.ndarray, y: np.ndarray, order: np.ndarray) -> None:
    for i in range(0, len(x), BATCH):
        idx = order[i : i + BATCH]
        numpy_step(params, x[idx], y[idx])


def torch_epoch_fn(net: fnn.Network) -> Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
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


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each contender, run round after round in turn."""
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for label, run in contenders.items():
            t0 = time.thread_time()
            run()
            times[label].append(time.thread_time() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench(x: np.ndarray, y: np.ndarray, rounds: int, epochs: int) -> None:
    orders = [fnn.random.generator(shuffle_key(e)).permutation(len(x)) for e in range(epochs)]
    steps = -(-len(x) // BATCH)
    print(f"\none BLAS thread (fnn.threads(1)), {len(x)} examples = {steps} steps of {BATCH}, "
          f"runs of {epochs} epochs, {rounds} rounds interleaved, median CPU s per epoch")
    print(f"{'network':<16}{'numpy':>8}{'loop':>8}{'fit':>8}{'torch':>8}"
          f"{'loop/np':>9}{'target':>8}{'fit/loop':>10}{'target':>8}{'torch/np':>9}")
    for name, hidden in ARCHS.items():
        net = build(hidden)
        def numpy_run(net: fnn.Network = net) -> None:
            params = numpy_params(net)
            for order in orders:
                numpy_epoch(params, x, y, order)

        contenders: dict[str, Callable[[], object]] = {
            "numpy": numpy_run,
            "loop": lambda: loop_epochs(net, x, y, epochs),  # noqa: B023
            "fit": lambda: fit_epochs(net, x, y, epochs),  # noqa: B023
        }
        torch_epoch = torch_epoch_fn(net)
        if torch_epoch is not None:
            contenders["torch"] = lambda: [torch_epoch(x, y, o) for o in orders]  # noqa: B023
        med = {k: v / epochs for k, v in interleaved(contenders, rounds).items()}
        med.setdefault("torch", float("nan"))
        loop_np, fit_loop = med["loop"] / med["numpy"], med["fit"] / med["loop"]
        print(f"{name:<16}{med['numpy']:>8.3f}{med['loop']:>8.3f}{med['fit']:>8.3f}"
              f"{med['torch']:>8.3f}{loop_np:>9.3f}{'<= ' + str(TARGETS[name]):>8}"
              f"{fit_loop:>10.3f}{'<= ' + str(FIT_TARGET):>8}{med['torch'] / med['numpy']:>9.2f}")


def bench_adam(rounds: int) -> None:
    med = optim_adam.medians(rounds=max(rounds, 7), number=20)
    print(f"\none Adam update, 784-256-128-10 float32, median CPU us/update: fnn {med['fnn']:.0f}, "
          f"numpy new arrays {med['numpy new']:.0f}, numpy in place {med['numpy inplace']:.0f}")
    print(f"  adam / numpy new: {med['fnn'] / med['numpy new']:.3f} (target <= {ADAM_TARGET}); "
          f"adam / numpy in place: {med['fnn'] / med['numpy inplace']:.3f}")


def breakdown(x: np.ndarray, y: np.ndarray, rounds: int) -> None:
    """Median microseconds of the pieces of one step on one batch, timed interleaved."""
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x))[:BATCH]
    xb, yb = x[idx], y[idx]
    number = 50
    for name, hidden in ARCHS.items():
        net = build(hidden)
        _, g = fnn.value_and_grad(net, xb, yb, CE)
        sgd = optim.sgd(LR)
        state = sgd.init(net)
        logits = fnn.forward(net, xb)
        params = numpy_params(net)
        pieces: dict[str, Callable[[], object]] = {
            "numpy step (hand, in place)": lambda: numpy_step(params, x[idx], y[idx]),  # noqa: B023
            "batch gather x[idx], y[idx]": lambda: (x[idx], y[idx]),
            "input checks (prepare_input)": lambda: fnn.network.prepare_input("b", net, xb),  # noqa: B023
            "  of which the NaN/inf scan": lambda: fnn._arrays.all_finite(xb),
            "loss + dloss (label checks in)": lambda: CE.value_and_grad(logits, yb),  # noqa: B023
            "value_and_grad": lambda: fnn.value_and_grad(net, xb, yb, CE),  # noqa: B023
            "sgd_step": lambda: fnn.sgd_step(net, g, LR),  # noqa: B023
            "optim.sgd update": lambda: sgd.update(g, state, net),  # noqa: B023
            "tree.flatten(net)": lambda: fnn.tree.flatten(net),  # noqa: B023
        }
        times: dict[str, list[float]] = {k: [] for k in pieces}
        for _ in range(rounds * 3):
            for label, run in pieces.items():
                t0 = time.thread_time()
                for _ in range(number):
                    run()
                times[label].append((time.thread_time() - t0) / number * 1e6)
        print(f"\nbreakdown, {name}, batch {BATCH}, one BLAS thread (median CPU us)")
        for label, ts in times.items():
            print(f"  {label:<34}{statistics.median(ts):>9.1f}")


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


def profile(x: np.ndarray, y: np.ndarray) -> None:
    net = build(ARCHS["784-32-16-10"])
    n = 200 * BATCH
    prof = cProfile.Profile()
    prof.enable()
    fit_epochs(net, x[:n], y[:n], 1)
    prof.disable()
    print("\ncProfile: fnn.fit, 784-32-16-10, 200 steps, one BLAS thread")
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=0, help="steps per epoch (0: full epoch)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed run")
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    x, y = load_train()
    if args.steps:
        x, y = x[: args.steps * BATCH], y[: args.steps * BATCH]
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} (timings are noisy on a shared machine)")
    with fnn.threads(1):
        check_same_math(x, y)
        if args.profile:
            profile(x, y)
            return
        if args.breakdown:
            breakdown(x, y, args.rounds)
            return
        bench(x, y, args.rounds, args.epochs)
        bench_adam(args.rounds)


if __name__ == "__main__":
    main()
