"""fnn.distributed on a local 2-worker Dask cluster: sweep speed-up and per-step overhead.

Two measurements, each side by side in one run (interleaved rounds, medians):

1. **Sweep speed-up.** ``--configs`` (default 8) trainings of a 784-64-10 MLP
   (synthetic 10-class data, Adam, a fixed number of steps each), first one
   after the other in this process, then with ``fnn.distributed.sweep`` on a
   ``fnn.distributed.local_cluster(--workers)`` (single-threaded worker processes).
   Both sides use one BLAS thread per training. Target: >= 1.7x for 8 configs
   on 2 workers (2 free cores). The script also checks the two runs gave the
   same bits.
2. **Per-step overhead** of data-parallel training on the 784-256-128-10 MLP
   at batch 1024 (float32, SGD): one process (value_and_grad + update, one
   BLAS thread), ``fnn.distributed.step`` on a batch sharded across the
   workers (data resident, the network sent each step), and
   ``fnn.distributed.fit(mode="exact")`` (the batch is sent each step too).
   The overhead is the data-parallel step minus half the one-process step
   (the ideal with 2 workers).

Timings mean something only on an otherwise idle machine: the script prints
the load average before and after; rerun it when the load is near 0.

    python benchmarks/distributed.py                 # both parts, 3 rounds
    python benchmarks/distributed.py --rounds 5 --sweep-steps 600 --steps 40
    python benchmarks/distributed.py --part sweep    # or --part step
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, and this file's name would
# hide the `distributed` package: take the folder off before anything imports it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import numpy as np  # noqa: E402

import fnn  # noqa: E402
from fnn import distributed as fd  # noqa: E402
from fnn.random import Key, fold_in  # noqa: E402

CE = fnn.losses.sparse_softmax_cross_entropy


def toy_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of 784 float32 features in ten Gaussian classes, and int64 labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, 784)).astype(np.float32)
    y = rng.integers(0, 10, n)
    return centres[y] + rng.normal(scale=4.0, size=(n, 784)).astype(np.float32), y


def train_config(config: dict[str, Any], key: Key) -> float:
    """One sweep run: a 784-<width>-10 MLP trained for ``steps`` Adam steps; its final loss."""
    x, y = toy_data(config["rows"])
    net = fnn.init([fnn.Dense(config["width"]), fnn.ReLU(), fnn.Dense(10)], (784,),
                   key=fold_in(key, 0))
    epochs = -(-config["steps"] * 128 // config["rows"])
    _, _, hist = fnn.fit(net, fnn.optim.adam(config["lr"]), CE, (x, y), epochs=epochs,
                         key=fold_in(key, 1), batch_size=128, progress=False)
    return hist.loss[-1]


def bench_sweep(client: Any, n_configs: int, rounds: int, steps: int) -> None:
    configs = [{"lr": lr, "width": 64, "rows": 4096, "steps": steps}
               for lr in np.geomspace(1e-4, 1e-2, n_configs)]
    seq_t, par_t, same = [], [], True
    for _ in range(rounds):
        t0 = time.perf_counter()
        with fnn.threads(1):
            seq = [train_config(c, fold_in(fnn.random.key(0), i)) for i, c in enumerate(configs)]
        seq_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        trials = fd.sweep(client, configs, train_config, key=0, progress=False)
        par_t.append(time.perf_counter() - t0)
        same = same and [t.value for t in trials] == seq
    s, p = statistics.median(seq_t), statistics.median(par_t)
    n_workers = len(client.nthreads())
    print(f"\n== sweep: {n_configs} configs (784-64-10, {steps} Adam steps of 128 each), "
          f"{rounds} rounds, medians")
    print(f"  sequential (1 process, 1 BLAS thread)   {s:8.2f} s")
    print(f"  fnn.distributed.sweep on {n_workers} workers      {p:8.2f} s")
    print(f"  speed-up                                {s / p:8.2f} x   (target >= 1.7x)")
    print(f"  results identical bit for bit: {same}")


def bench_step(client: Any, rounds: int, steps: int) -> None:
    batch = 1024
    x, y = toy_data(batch * 4, seed=1)
    xb, yb = x[:batch], y[:batch]
    net = fnn.init([fnn.Dense(256), fnn.ReLU(), fnn.Dense(128), fnn.ReLU(), fnn.Dense(10)],
                   (784,), key=0)
    opt = fnn.optim.sgd(0.01)
    shards = fd.shard(client, xb, yb)

    def local() -> None:
        n, s = net, opt.init(net)
        with fnn.threads(1):
            for _ in range(steps):
                _, g, new = fnn.value_and_grad(n, xb, yb, CE, with_state=True)
                n, s = opt.update(g, s, new)

    def data_parallel() -> None:
        n, s = net, None
        for _ in range(steps):
            n, s, _ = fd.step(client, n, opt, s, shards, CE)

    def exact() -> None:  # 4 batches of 1024 per epoch, sent to the workers each step
        epochs = -(-steps // 4)
        fd.fit(client, net, opt, CE, (x, y), epochs=epochs, key=0, batch_size=batch)

    runs: dict[str, list[float]] = {"one process": [], "distributed.step": [],
                                    "distributed.fit exact": []}
    data_parallel()  # warm up: imports and caches on the workers
    for _ in range(rounds):
        for name, fn, n_steps in (("one process", local, steps),
                                  ("distributed.step", data_parallel, steps),
                                  ("distributed.fit exact", exact, 4 * -(-steps // 4))):
            t0 = time.perf_counter()
            fn()
            runs[name].append((time.perf_counter() - t0) / n_steps * 1e3)
    one = statistics.median(runs["one process"])
    n_workers = len(client.nthreads())
    print(f"\n== one training step, 784-256-128-10 float32, batch {batch} split over "
          f"{n_workers} workers, SGD; {rounds} rounds of {steps} steps, median ms/step")
    print(f"  {'':24}{'ms/step':>9}{'vs one':>9}{'overhead vs ideal':>19}")
    for name, times in runs.items():
        ms = statistics.median(times)
        ideal = one / n_workers
        over = "" if name == "one process" else f"{ms - ideal:+9.1f} ms"
        print(f"  {name:24}{ms:9.1f}{ms / one:8.2f}x{over:>19}")
    print(f"  (ideal with {n_workers} workers: {one / n_workers:.1f} ms/step, no communication)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["sweep", "step", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--configs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sweep-steps", type=int, default=300, help="Adam steps per config")
    parser.add_argument("--steps", type=int, default=20, help="training steps per timing round")
    args = parser.parse_args()
    from distributed import Client

    print(f"fnn {fnn.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    with fd.local_cluster(args.workers) as cluster, Client(cluster) as client:
        print(f"local cluster of {args.workers} workers started in "
              f"{time.perf_counter() - t0:.1f} s")
        if args.part in ("sweep", "both"):
            bench_sweep(client, args.configs, args.rounds, args.sweep_steps)
        if args.part in ("step", "both"):
            bench_step(client, args.rounds, args.steps)
    print(f"\nload average after: {os.getloadavg()[0]:.2f} "
          "(figures from a loaded machine understate the speed-up)")
    if _autogroup() and os.getloadavg()[0] > (os.cpu_count() or 1):
        print("note: Linux autogroup scheduling is on and the machine is busy: this session's "
              "processes share one CPU share, so running on more workers cannot speed it up "
              "until the other work stops")


def _autogroup() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


if __name__ == "__main__":
    main()
