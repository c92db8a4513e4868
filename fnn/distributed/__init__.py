"""fnn's pure functions over a Dask cluster: data-parallel training and sweeps.

A gradient is a value, so it can be computed on any machine and summed. This
module runs fnn on `Dask distributed <https://distributed.dask.org>`_, an
optional extra (``pip install "fnn[dask]"``); ``distributed`` is imported only
when a function here needs it.

- `local_cluster` starts a ``LocalCluster`` of single-threaded worker
  processes whose memory allocator is left as fnn needs it.
- `shard` scatters contiguous row blocks of ``(x, y)`` to the workers.
- `value_and_grad` computes each shard's loss and gradient on the worker that
  holds it and combines them on the driver by shard size, in shard order. fnn's
  losses are batch means, so with ``n_i`` rows in shard ``i`` and ``N = Σ n_i``::

      L = Σ_i (n_i / N) · L_i,    ∇L = Σ_i (n_i / N) · ∇L_i

  which equals the one-process result up to round-off (the terms are added
  in a fixed order, so the same inputs give the same bits).
- `step` is one optimizer step on that gradient; `fit` trains for epochs,
  either ``mode="exact"`` (the driver draws ``fnn.fit``'s batches and splits
  each across the workers: the same batches and numbers as ``fnn.fit``) or
  ``mode="sharded"`` (the data stays on the workers; each shuffles its own
  shard and every step combines one slice of each).
- `sweep` runs one training per configuration on a Dask client or on any
  ``concurrent.futures`` executor (a ``ProcessPoolExecutor`` needs no Dask).

**What is not exact.** A data-parallel step equals a one-process step wherever
the result depends on the batch only through a mean over its rows. Two things
do not:

- *BatchNorm* normalises each shard with that shard's own batch statistics,
  so in training mode the loss and gradients differ from a one-process step
  over the whole batch (they are those of ``k`` smaller batches). The running
  statistics kept are the size-weighted mean of the shards' updated ones:
  ``running_mean`` then equals the one-process value up to round-off (the
  weighted mean of shard means is the batch mean), while ``running_var`` is
  ``momentum·old + (1 − momentum)·Σ (n_i/N)·var_i``, the pooled within-shard
  variance, which misses the spread between the shard means. Every
  non-trainable (state) leaf is combined the same way.
- *Dropout* draws shard ``i``'s masks from ``fold_in(key, i)``, so the masks
  differ from those a single process draws for the whole batch (they are as
  random and as reproducible: the same key gives the same bits).

With one shard, or a network without such layers, results equal one process.

Example:
    >>> import numpy as np, fnn
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> from fnn import distributed
    >>> def train(config, key):
    ...     return config["lr"] * 10
    >>> with ThreadPoolExecutor(2) as pool:
    ...     trials = distributed.sweep(pool, [{"lr": 0.1}, {"lr": 0.2}], train, key=0,
    ...                                progress=False, blas_threads=None)
    >>> [t.value for t in trials]
    [1.0, 2.0]
"""

from fnn.distributed._cluster import Shards, local_cluster, shard
from fnn.distributed._fit import fit
from fnn.distributed._grad import step, value_and_grad
from fnn.distributed._sweep import SweepError, Trial, sweep

__all__ = [
    "Shards",
    "SweepError",
    "Trial",
    "fit",
    "local_cluster",
    "shard",
    "step",
    "sweep",
    "value_and_grad",
]
