"""Convolution speed: fnn versus PyTorch eager on the CPU, with one and two threads.

Two training steps, float32, batch 128, run side by side in one process:

- ``cnn``: the Fashion-MNIST CNN of issue 15: 28x28x1 images, conv 3x3 1->16,
  ReLU, max-pool 2, conv 3x3 16->32, ReLU, max-pool 2, flatten, dense -> 10
  (valid padding), softmax cross-entropy, plain SGD.
- ``block``: a ResNet-style block on ``--block-hw`` x ``--block-hw`` x 32
  feature maps: ``relu(batchnorm(conv3x3(x))) + x`` (32->32 filters, same
  padding, BatchNorm in training mode), pulled back from a fixed random
  cotangent (the input gradient included, as inside a network), plain SGD on
  the conv and BatchNorm parameters.

Each measurement round enters ``fnn.threads(n, blas=1)`` (fnn's batch-split
kernels on ``n`` threads, BLAS single-threaded between them: the arrangement
``fnn.threads`` recommends for convolutional networks; ``--blas-threads-n``
gives BLAS ``n`` threads too) and ``torch.set_num_threads(n)`` for one thread
count, and runs one fnn step and one torch step of each model, timed one by
one; rounds cycle through the thread counts, so every contender sees the same
machine state, and each round runs the contenders in a new (seeded random)
order: what ran just before a step changes its time (two identical fnn CNN
steps measured 4% apart with one thread and 12% with two, CPU time, when
one always followed fnn's block step and the other torch's). The script
prints the median wall-clock ms per step, the ratios, and whether issue 15's
targets are met: fnn/torch <= 1.5 with one thread, <= 2.0 with two, and
fnn(1)/fnn(2) >= 1.3.

The interleaved run shares one process between the frameworks, and what one
framework's steps do to the C library's heap changes the other's page faults
(before fnn recycled its buffers, torch's steps in between halved fnn's CNN
step). ``--separate RUNS`` therefore also times each framework alone, in
``RUNS`` processes of its own (fnn and torch alternating, ``--rounds`` rounds
each), as a user runs it, and prints the same table and targets for that.

Run:
    python benchmarks/cnn.py                       # both models, 1 and 2 threads
    python benchmarks/cnn.py --separate 3          # also each framework in its own processes
    python benchmarks/cnn.py --rounds 60 --models cnn
    python benchmarks/cnn.py --profile             # also: where fnn's time goes
    python benchmarks/cnn.py --no-bench --example 40   # the CNN example's epoch time
    python benchmarks/cnn.py --compare             # also fnn with im2col only (before Winograd)

Wall-clock ratios decide the targets; the CPU time of the process
(``time.process_time``) is printed beside them: with one thread it hardly
depends on other programs' load, so it is the figure to trust on a shared
machine (with two threads it adds up both). The load average is printed with
every table: on a shared machine two-thread figures mean little while other
jobs run.

``--compare`` adds a third contender, fnn with every convolution computed by
im2col (``fnn.layers.conv._FORMULATION = "im2col"``: the formulation before
Winograd F(2x2, 3x3) and shifted products were added), timed in the same
rounds, so their gain is measured side by side.

``--profile`` prints, per layer and pass, the wall and CPU ms of the layer and
the CPU time spent in fnn's named kernel helpers (GEMM, im2col, col2im,
padding, pooling); see ``benchmarks/cnn_profile.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

import fnn
from fnn.layers import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, ReLU

BATCH, LR = 128, 0.01
Step = Callable[[], None]


def cnn_layers() -> list[Any]:
    """The issue's network (valid padding)."""
    return [
        Conv2D(16, 3, w_init="he_normal"),
        ReLU(),
        MaxPool2D(2),
        Conv2D(32, 3, w_init="he_normal"),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(10),
    ]


def fnn_cnn(x: np.ndarray, y: np.ndarray) -> Step:
    """One fnn training step of the CNN (the network value is threaded through)."""
    state = {"net": fnn.init(cnn_layers(), (28, 28, 1), key=0)}
    loss_fn = fnn.losses.sparse_softmax_cross_entropy

    def step() -> None:
        _, grads = fnn.value_and_grad(state["net"], x, y, loss_fn)
        state["net"] = fnn.sgd_step(state["net"], grads, lr=LR)

    return step


def fnn_block(x: np.ndarray, dy: np.ndarray) -> Step:
    """One fnn training step of ``relu(bn(conv(x))) + x`` from the layers' own vjps."""
    conv, _ = Conv2D(32, 3, padding="same", w_init="he_normal").init(0, x.shape[1:], x.dtype)
    bn, _ = BatchNorm().init(1, x.shape[1:], x.dtype)
    relu = ReLU()
    state = {"params": (conv, bn)}

    def step() -> None:
        conv, bn = state["params"]
        h, pb_conv = conv.vjp(x)
        h, pb_bn, bn_new = bn.vjp_with_state(h, training=True)
        h, pb_relu = relu.vjp(h)
        _ = h + x  # the block's output
        _, d = pb_relu(dy)
        g_bn, d = pb_bn(d)
        g_conv, d = pb_conv(d)
        _ = d + dy  # dL/dx through the conv path and the shortcut
        new = (conv, bn_new)
        state["params"] = fnn.tree.map(lambda p, g: p - p.dtype.type(LR) * g, new, (g_conv, g_bn))

    return step


def torch_steps(x: np.ndarray, y: np.ndarray, bx: np.ndarray, bdy: np.ndarray) -> dict[str, Step]:
    """The same two steps in PyTorch eager (NCHW views of the same NHWC data)."""
    try:
        import torch
    except ImportError:
        return {}
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 5 * 5, 10),
    )  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    xt, yt = torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(y)

    def cnn() -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()

    conv, bn = nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32)
    bopt = torch.optim.SGD([*conv.parameters(), *bn.parameters()], lr=LR)
    bxt = torch.from_numpy(bx).permute(0, 3, 1, 2).requires_grad_(True)
    bdyt = torch.from_numpy(bdy).permute(0, 3, 1, 2)

    def block() -> None:
        bopt.zero_grad()
        bxt.grad = None
        out = torch.relu(bn(conv(bxt))) + bxt
        out.backward(bdyt)
        bopt.step()

    return {"cnn": cnn, "block": block}


BLAS_THREADS: list[int | None] = [1]  # fnn.threads(n, blas=...): 1 unless --blas-threads-n


@contextlib.contextmanager
def limit(n: int) -> Iterator[None]:
    """``fnn.threads(n, blas=1)`` and, if installed, ``torch.set_num_threads(n)``."""
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]
    old = torch.get_num_threads() if torch is not None else 0
    if torch is not None:
        torch.set_num_threads(n)
    try:
        # fnn.threads(n) alone when BLAS gets n too (also runs on fnn versions without blas=)
        block = fnn.threads(n) if BLAS_THREADS[0] is None else fnn.threads(n, blas=BLAS_THREADS[0])
        with block:
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(old)


def im2col_only(step: Step) -> Step:
    """``step`` with every convolution computed by im2col (fnn before issue 15's follow-up)."""
    from fnn.layers import conv

    def run() -> None:
        saved, conv._FORMULATION = conv._FORMULATION, "im2col"
        try:
            step()
        finally:
            conv._FORMULATION = saved

    return run


def contenders(
    models: list[str], block_hw: int, compare: bool = False
) -> dict[tuple[str, str], Step]:
    """``{(model, framework): step}`` on fixed random data."""
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    bx = rng.standard_normal((BATCH, block_hw, block_hw, 32), dtype=np.float32)
    bdy = rng.standard_normal(bx.shape, dtype=np.float32)
    steps = {("cnn", "fnn"): fnn_cnn(x, y), ("block", "fnn"): fnn_block(bx, bdy)}
    if compare:
        steps[("cnn", "im2col")] = im2col_only(fnn_cnn(x, y))
        steps[("block", "im2col")] = im2col_only(fnn_block(bx, bdy))
    steps.update({(m, "torch"): s for m, s in torch_steps(x, y, bx, bdy).items()})
    return {k: s for k, s in steps.items() if k[0] in models}


Times = dict[tuple[str, str, int], list[float]]


def bench(
    models: list[str],
    counts: list[int],
    rounds: int,
    per_round: int,
    block_hw: int,
    compare: bool = False,
    only: str | None = None,
) -> tuple[Times, Times]:
    """Interleave every contender and thread count: ``(wall, cpu)`` seconds per step.

    With ``only`` (``"fnn"`` or ``"torch"``) just that framework's contenders run.
    """
    steps = contenders(models, block_hw, compare)
    if only is not None:
        steps = {k: s for k, s in steps.items() if (k[1] == "torch") == (only == "torch")}
    wall: dict[tuple[str, str, int], list[float]] = {}
    cpu: dict[tuple[str, str, int], list[float]] = {}
    items, shuffle = list(steps.items()), random.Random(0).shuffle
    for r in range(rounds + 1):  # round 0 warms up
        # a new order every round: what ran just before a step (its freed memory, its cache
        # footprint) measurably changes the step's time on a busy machine
        order = items.copy()
        shuffle(order)
        for n in counts:
            with limit(n):
                for _ in range(per_round):
                    for (model, fw), step in order:
                        t0, c0 = time.perf_counter(), time.process_time()
                        step()
                        if r > 0:
                            wall.setdefault((model, fw, n), []).append(time.perf_counter() - t0)
                            cpu.setdefault((model, fw, n), []).append(time.process_time() - c0)
    return wall, cpu


def separate(
    models: list[str], counts: list[int], rounds: int, runs: int, block_hw: int
) -> tuple[Times, Times]:
    """``bench`` with each framework alone in a process of its own, as a user runs it.

    ``runs`` child processes per framework, alternating fnn and torch, each
    running ``rounds`` rounds; their step times are pooled.
    """
    import subprocess
    import sys
    import tempfile

    wall: Times = {}
    cpu: Times = {}
    for i in range(runs):
        for only in ("fnn", "torch") if i % 2 == 0 else ("torch", "fnn"):
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                args = ["--only", only, "--json", out.name, "--rounds", str(rounds)]
                args += ["--models", *models, "--threads", *map(str, counts)]
                args += ["--block-hw", str(block_hw)]
                subprocess.run([sys.executable, __file__, *args], check=True)
                result = json.loads(Path(out.name).read_text())
            for model, fw, n, w, c in result:
                wall.setdefault((model, fw, n), []).extend(w)
                cpu.setdefault((model, fw, n), []).extend(c)
    return wall, cpu


def report(title: str, models: list[str], counts: list[int], wall: Times, cpu: Times) -> None:
    """Print medians, ratios and whether issue 15's targets are met."""
    med = {k: 1e3 * statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: 1e3 * statistics.median(v) for k, v in cpu.items()}
    steps = min(len(v) for v in wall.values())
    print(f"\n{title}\nmedian ms per step over {steps} steps (wall / process CPU); {load()}")
    for model in models:
        for n in counts:
            fnn_ms = f"{med[(model, 'fnn', n)]:7.2f} / {med_cpu[(model, 'fnn', n)]:7.2f}"
            line = f"  {model:<6} threads={n}: fnn {fnn_ms}"
            if (model, "torch", n) in med:
                torch_ms = f"{med[(model, 'torch', n)]:7.2f} / {med_cpu[(model, 'torch', n)]:7.2f}"
                ratio = med[(model, "fnn", n)] / med[(model, "torch", n)]
                ratio_cpu = med_cpu[(model, "fnn", n)] / med_cpu[(model, "torch", n)]
                line += f"   torch {torch_ms}   fnn/torch {ratio:5.2f} / {ratio_cpu:5.2f}"
            print(line)
            if (model, "im2col", n) in med:
                old = f"{med[(model, 'im2col', n)]:7.2f} / {med_cpu[(model, 'im2col', n)]:7.2f}"
                gain = med[(model, "im2col", n)] / med[(model, "fnn", n)]
                gain_cpu = med_cpu[(model, "im2col", n)] / med_cpu[(model, "fnn", n)]
                line = f"  {model:<6} threads={n}: fnn with im2col only {old}"
                line += f"   im2col/fnn {gain:5.2f} / {gain_cpu:5.2f}"
                if (model, "torch", n) in med:
                    ratio = med[(model, "im2col", n)] / med[(model, "torch", n)]
                    ratio_cpu = med_cpu[(model, "im2col", n)] / med_cpu[(model, "torch", n)]
                    line += f"   im2col/torch {ratio:5.2f} / {ratio_cpu:5.2f}"
                print(line)
    best = {k: 1e3 * min(v) for k, v in wall.items()}
    print("fastest step (minimum wall ms; on a busy machine, the closest to an unloaded run):")
    for model in models:
        for n in counts:
            line = f"  {model:<6} threads={n}: fnn {best[(model, 'fnn', n)]:7.2f}"
            if (model, "torch", n) in best:
                ratio = best[(model, "fnn", n)] / best[(model, "torch", n)]
                line += f"   torch {best[(model, 'torch', n)]:7.2f}   fnn/torch {ratio:5.2f}"
            print(line)
    print("targets (issue 15), on the medians:")
    for model in models:
        for n, bound in ((1, 1.5), (2, 2.0)):
            if (model, "torch", n) in med:
                ratio = med[(model, "fnn", n)] / med[(model, "torch", n)]
                verdict = "met" if ratio <= bound else "MISSED"
                what = f"fnn/torch with {n} thread(s) {ratio:5.2f} <= {bound}"
                print(f"  {model:<6} {what}: {verdict}")
        if (model, "fnn", 1) in med and (model, "fnn", 2) in med:
            gain = med[(model, "fnn", 1)] / med[(model, "fnn", 2)]
            verdict = "met" if gain >= 1.3 else "MISSED"
            print(f"  {model:<6} fnn 1 thread / 2 threads {gain:5.2f} >= 1.3: {verdict}")


def example_epoch(counts: list[int], steps: int, compare: bool = False) -> None:
    """Median training step of examples/mnist_cnn.py's network, extrapolated to one epoch.

    Adam (lr 1e-3), batch 128, dropout active, on Fashion-MNIST when it is
    installed (random images otherwise); one epoch of the example is 422 steps
    (54,000 training images). Thread counts (and with ``compare``, fnn with
    im2col only) alternate step by step.
    """
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "examples" / "mnist_cnn.py"
    spec = importlib.util.spec_from_file_location("mnist_cnn", path)
    example = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(example)  # type: ignore[union-attr]
    try:
        x, y = example.load()[:2]
    except Exception:  # no data set: random images time the same arithmetic
        rng = np.random.default_rng(0)
        x, y = rng.random((60000, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 60000)
    opt, loss_fn = fnn.optim.adam(1e-3), fnn.losses.sparse_softmax_cross_entropy
    runs = [(n, mode) for n in counts for mode in (["auto", "im2col"] if compare else ["auto"])]
    nets = {r: fnn.init(example.cnn(), (28, 28, 1), key=0) for r in runs}
    states = {r: opt.init(nets[r]) for r in runs}
    times: dict[tuple[int, str], list[float]] = {r: [] for r in runs}
    cpus: dict[tuple[int, str], list[float]] = {r: [] for r in runs}
    from fnn.layers import conv

    for i in range(steps + 2):
        xb, yb = x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]
        for r in runs[i % len(runs) :] + runs[: i % len(runs)]:
            saved, conv._FORMULATION = conv._FORMULATION, r[1]
            with limit(r[0]):
                t0, c0 = time.perf_counter(), time.process_time()
                key = fnn.random.fold_in(fnn.random.key(0), i)
                _, grads = fnn.value_and_grad(nets[r], xb, yb, loss_fn, key=key, training=True)
                nets[r], states[r] = opt.update(grads, states[r], nets[r])
                if i >= 2:
                    times[r].append(time.perf_counter() - t0)
                    cpus[r].append(time.process_time() - c0)
            conv._FORMULATION = saved
    print(f"\nexamples/mnist_cnn.py network, median of {steps} steps; {load()}")
    for n, mode in runs:
        med, cpu = statistics.median(times[(n, mode)]), statistics.median(cpus[(n, mode)])
        epoch = f"one epoch (422 steps) {422 * med:5.0f} s wall, {422 * cpu:5.0f} s CPU"
        what = f"threads={n}" + (", im2col only" if mode == "im2col" else "")
        print(f"  {what}: {1e3 * med:6.1f} ms/step wall, {1e3 * cpu:6.1f} CPU -> {epoch}")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=["cnn", "block"], default=["cnn", "block"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=20, help="measurement rounds (default 20)")
    parser.add_argument("--per-round", type=int, default=3, help="steps per contender and round")
    parser.add_argument("--block-hw", type=int, default=14, help="block feature-map size")
    parser.add_argument("--profile", action="store_true", help="per-layer kernel breakdown")
    parser.add_argument("--no-bench", action="store_true", help="only the profile")
    parser.add_argument(
        "--compare", action="store_true", help="also time fnn with im2col only (as before)"
    )
    parser.add_argument(
        "--example",
        type=int,
        default=0,
        metavar="STEPS",
        help="also time STEPS steps of examples/mnist_cnn.py's network, extrapolated to an epoch",
    )
    parser.add_argument(
        "--blas-threads-n",
        action="store_true",
        help="fnn.threads(n) with n BLAS threads too (default: fnn.threads(n, blas=1))",
    )
    parser.add_argument(
        "--separate",
        type=int,
        default=0,
        metavar="RUNS",
        help="also time each framework alone in RUNS processes of its own (alternating)",
    )
    parser.add_argument("--only", choices=["fnn", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.blas_threads_n:
        BLAS_THREADS[0] = None
    if args.json:  # a child of --separate: one framework's raw times, no report
        wall, cpu = bench(args.models, args.threads, args.rounds, args.per_round, args.block_hw,
                          only=args.only)
        rows = [[*k, wall[k], cpu[k]] for k in wall]
        with open(args.json, "w") as out:
            json.dump(rows, out)
        return
    if not args.no_bench:
        wall, cpu = bench(
            args.models, args.threads, args.rounds, args.per_round, args.block_hw, args.compare
        )
        report("fnn and torch interleaved in one process", args.models, args.threads, wall, cpu)
    if args.separate:
        wall, cpu = separate(args.models, args.threads, args.rounds, args.separate, args.block_hw)
        title = f"each framework alone in its own process ({args.separate} processes each)"
        report(title, args.models, args.threads, wall, cpu)
    if args.example:
        example_epoch(args.threads, args.example, args.compare)
    if args.profile:
        from cnn_profile import profile  # type: ignore[import-not-found]

        for n in args.threads:
            profile(args.models, n, args.block_hw, limit, load)


if __name__ == "__main__":
    main()
