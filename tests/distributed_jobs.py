"""Functions the distributed tests send to worker processes.

They live in a small module of their own so that a worker process (spawned,
not forked) can import them by name without importing pytest or Hypothesis.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

import fnn
from fnn.random import Key, fold_in


def toy_data(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Three-class data in four dimensions, the same every call."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return x, y


def train_small(config: dict[str, Any], key: Key) -> tuple[float, fnn.Network]:
    """A short fnn.fit run of an MLP of the config's width and learning rate."""
    x, y = toy_data()
    net = fnn.init([fnn.Dense(config["width"]), fnn.Tanh(), fnn.Dense(3)], (4,),
                   key=fold_in(key, 0), dtype=np.float64)
    net, _, hist = fnn.fit(net, fnn.optim.sgd(config["lr"]),
                           fnn.losses.sparse_softmax_cross_entropy, (x, y), epochs=2,
                           key=fold_in(key, 1), batch_size=16, progress=False)
    return hist.loss[-1], net


def fail_on_odd(config: int, key: Key) -> int:
    """Raises for odd configs, returns the config squared otherwise."""
    if config % 2:
        raise ValueError(f"odd config {config}")
    return config * config


def blas_threads(config: Any, key: Key) -> list[int]:
    """The BLAS thread counts this process runs with right now."""
    import threadpoolctl

    return [d["num_threads"] for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"]


def worker_blas_threads() -> list[int]:
    """The same, for Client.run (no arguments)."""
    return blas_threads(None, fnn.random.key(0))


def die_once(config: tuple[str, str], key: Key) -> str:
    """Kill this worker process the first time a "die" config runs (a marker file remembers)."""
    kind, marker = config
    if kind == "die" and not Path(marker).exists():
        Path(marker).write_text("died once")
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.2)
    return kind


def die_always(config: str, key: Key) -> str:
    """Kill this worker process for the "die" config; others sleep a little and return."""
    if config == "die":
        time.sleep(0.3)  # let a sibling config finish first
        os.kill(os.getpid(), signal.SIGKILL)
    return config


def sleep_then(config: float, key: Key) -> float:
    """Sleep ``config`` seconds, then return it."""
    time.sleep(config)
    return config
