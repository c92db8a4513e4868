"""Cost of one Adam update: ``fnn.optim.adam`` vs plain NumPy loops over the arrays.

Network 784-256-128-10 (ReLU), float32, 235,146 parameters in 6 arrays. Contenders:

- ``fnn``: ``opt.update(grads, state, net)`` with ``opt = fnn.optim.adam(1e-3)``, the chain
  ``scale_by_adam`` then ``scale_by_learning_rate`` (one flatten, checks, read-only outputs);
- ``numpy new``: a loop over the 6 arrays that allocates new arrays, as fnn must;
- ``numpy inplace``: the same loop writing into preallocated buffers (the floor).

Each round times a batch of updates for every contender in turn, so machine noise
hits them alike, with ``time.thread_time`` (CPU time: waiting for a core on a
shared machine is not counted); the script prints the median microseconds per
update and the ratios to the NumPy loops. Adam is elementwise, so BLAS threads
do not matter.

    python benchmarks/optim_adam.py
    python benchmarks/optim_adam.py --rounds 11 --number 50
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import numpy as np

import fnn
import fnn.optim

B1, B2, EPS, LR = 0.9, 0.999, 1e-8, 1e-3


def numpy_new(ps: list[np.ndarray], gs: list[np.ndarray], ms: list[np.ndarray],
              vs: list[np.ndarray], t: int) -> tuple[list[np.ndarray], ...]:
    """Functional NumPy Adam: new lists of new arrays."""
    f = np.float32
    c1, c2 = f(1.0 / (1.0 - B1**t)), f(1.0 / math.sqrt(1.0 - B2**t))
    new_p, new_m, new_v = [], [], []
    for p, g, m, v in zip(ps, gs, ms, vs, strict=True):
        m2 = f(B1) * m + f(1 - B1) * g
        v2 = f(B2) * v + f(1 - B2) * (g * g)
        new_p.append(p - f(LR) * c1 * m2 / (np.sqrt(v2) * c2 + f(EPS)))
        new_m.append(m2)
        new_v.append(v2)
    return new_p, new_m, new_v


def numpy_inplace(ps: list[np.ndarray], gs: list[np.ndarray], ms: list[np.ndarray],
                  vs: list[np.ndarray], tmp: list[np.ndarray], t: int) -> None:
    """In-place NumPy Adam with preallocated scratch arrays."""
    f = np.float32
    c1, c2 = f(LR / (1.0 - B1**t)), f(1.0 / math.sqrt(1.0 - B2**t))
    for p, g, m, v, s in zip(ps, gs, ms, vs, tmp, strict=True):
        m *= f(B1)
        np.multiply(g, f(1 - B1), out=s)
        m += s
        v *= f(B2)
        np.multiply(g, g, out=s)
        s *= f(1 - B2)
        v += s
        np.sqrt(v, out=s)
        s *= c2
        s += f(EPS)
        np.divide(m, s, out=s)
        s *= c1
        p -= s


def medians(rounds: int = 7, number: int = 30) -> dict[str, float]:
    """Median microseconds per update of each contender, timed interleaved."""
    net = fnn.init(
        [fnn.Dense(256), fnn.ReLU(), fnn.Dense(128), fnn.ReLU(), fnn.Dense(10)], (784,), key=0
    )
    rng = np.random.default_rng(0)
    grads = fnn.tree.map(lambda p: rng.standard_normal(p.shape).astype(p.dtype), net)
    opt = fnn.optim.adam(LR)
    state = opt.init(net)

    ps = [p.copy() for p in fnn.tree.leaves(net)]
    gs = fnn.tree.leaves(grads)
    ms = [np.zeros_like(p) for p in ps]
    vs = [np.zeros_like(p) for p in ps]
    tmp = [np.empty_like(p) for p in ps]

    def run_fnn() -> None:
        n, s = net, state
        for _ in range(number):
            n, s = opt.update(grads, s, n)

    def run_new() -> None:
        p, m, v = ps, ms, vs
        for t in range(1, number + 1):
            p, m, v = numpy_new(p, gs, m, v, t)

    def run_inplace() -> None:
        for t in range(1, number + 1):
            numpy_inplace(ps, gs, ms, vs, tmp, t)

    contenders: dict[str, Callable[[], None]] = {
        "fnn": run_fnn, "numpy new": run_new, "numpy inplace": run_inplace
    }
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for f in contenders.values():  # warm-up
        f()
    for _ in range(rounds):
        for name, f in contenders.items():
            t0 = time.thread_time()
            f()
            times[name].append((time.thread_time() - t0) / number * 1e6)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=30, help="updates per timing")
    args = parser.parse_args()
    with fnn.threads(1):
        med = medians(args.rounds, args.number)
    print(f"Adam update, 784-256-128-10 float32 (235,146 parameters), "
          f"median of {args.rounds} rounds x {args.number} updates")
    for name, m in med.items():
        print(f"  {name:14s} {m:8.1f} us/update")
    print(f"  ratio fnn / numpy new:     {med['fnn'] / med['numpy new']:.2f}")
    print(f"  ratio fnn / numpy inplace: {med['fnn'] / med['numpy inplace']:.2f}")


if __name__ == "__main__":
    main()
