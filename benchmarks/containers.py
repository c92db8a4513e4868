"""What containers and the short layer form cost per training step, measured side by side.

Three pairs, each measured in this one process, interleaved round after round
(so that machine noise hits both sides alike), reporting the median
microseconds per call and the ratio:

- ``flat`` vs ``nested``: ``fnn.value_and_grad`` of an MLP (Dense-ReLU x3,
  Dense) as a flat network and with every Dense-ReLU pair wrapped in
  ``fnn.Sequential`` inside one more ``fnn.Sequential`` (the same arithmetic,
  two container levels of plumbing);
- ``full`` vs ``short``: ``vjp`` plus pullback of a ReLU written with the full
  protocol (forward/vjp by hand) and fnn's own ReLU, written in the short form
  (``apply``/``backward``, checks supplied by the base class);
- ``resnet block``: ``value_and_grad`` of one residual block of
  ``examples/resnet_fashion.py`` (conv-BN-ReLU-conv-BN plus identity) flat as
  a Sequential vs inside a ``Residual`` (the only difference is the sum).

Times are CPU time (``time.process_time``) with one BLAS thread, minimum of
each round's inner loop, median over rounds.

    python benchmarks/containers.py             # 7 rounds
    python benchmarks/containers.py --rounds 15
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import attrs
import numpy as np

import fnn
from fnn.layers import Layer
from fnn.layers._base import Array, Pullback, check_cotangent, check_input


@attrs.frozen(eq=False)
class FullReLU(Layer):
    """ReLU written with the full protocol, as fnn 0.1.0 wrote its activations."""

    def forward(self, x: Array, *, key: object = None, training: bool = False) -> Array:
        out: Array = np.maximum(check_input(self, x, None, "(batch, ...)"), 0)
        return out

    def vjp(
        self, x: Array, *, key: object = None, training: bool = False, need_dx: bool = True
    ) -> tuple[Array, Pullback]:
        y = self.forward(x)

        def pullback(dy: Array) -> tuple[Layer, Array | None]:
            dy = check_cotangent(self, dy, y)
            return self, (dy * (x > 0) if need_dx else None)

        return y, pullback


def per_call(fn: Callable[[], object], n: int) -> float:
    """Microseconds of CPU time per call: the best of 3 inner loops of ``n`` calls."""
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t) / n * 1e6)
    return best


def main(rounds: int = 7) -> None:
    rng = np.random.default_rng(0)
    loss = fnn.losses.sparse_softmax_cross_entropy
    x = rng.normal(size=(32, 64)).astype(np.float32)
    labels = rng.integers(0, 10, 32)
    flat_layers = [fnn.Dense(64), fnn.ReLU()] * 3 + [fnn.Dense(10)]
    flat = fnn.init(flat_layers, (64,), key=0)
    nested = fnn.init(
        [fnn.Sequential([fnn.Sequential([fnn.Dense(64), fnn.ReLU()]) for _ in range(3)]),
         fnn.Dense(10)],
        (64,),
        key=0,
    )
    images = rng.random((32, 14, 14, 16)).astype(np.float32)
    body = [fnn.Conv2D(16, 3, padding="same", use_bias=False), fnn.BatchNorm(), fnn.ReLU(),
            fnn.Conv2D(16, 3, padding="same", use_bias=False), fnn.BatchNorm()]
    head = [fnn.GlobalAvgPool2D(), fnn.Dense(10)]
    plain_block = fnn.init([fnn.Sequential(body), *head], (14, 14, 16), key=0)
    res_block = fnn.init([fnn.Residual(body), *head], (14, 14, 16), key=0)
    dy = rng.normal(size=x.shape).astype(np.float32)

    def relu_step(layer: Layer) -> Callable[[], object]:
        def step() -> object:
            _, pullback = layer.vjp(x)
            return pullback(dy)

        return step

    pairs = {
        "MLP value_and_grad": (
            ("flat", lambda: fnn.value_and_grad(flat, x, labels, loss), 300),
            ("nested", lambda: fnn.value_and_grad(nested, x, labels, loss), 300),
        ),
        "ReLU vjp + pullback": (
            ("full", relu_step(FullReLU()), 3000),
            ("short", relu_step(fnn.ReLU()), 3000),
        ),
        "conv block value_and_grad": (
            ("sequential", lambda: fnn.value_and_grad(plain_block, images, labels, loss), 5),
            ("residual", lambda: fnn.value_and_grad(res_block, images, labels, loss), 5),
        ),
    }
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for what, sides in pairs.items():
            for side, fn, n in sides:
                times.setdefault(f"{what}: {side}", []).append(per_call(fn, n))
    print(f"median CPU microseconds per call over {rounds} rounds (one BLAS thread)")
    for what, ((a, _, _), (b, _, _)) in pairs.items():
        ta = statistics.median(times[f"{what}: {a}"])
        tb = statistics.median(times[f"{what}: {b}"])
        print(f"  {what:<28} {a} {ta:9.1f}   {b} {tb:9.1f}   ratio {tb / ta:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with fnn.threads(1):
        main(args.rounds)
