"""``fit`` on a cluster: epochs of data-parallel steps, exact or sharded."""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

from fnn.distributed._cluster import (
    Array,
    Shards,
    check_int,
    check_net_loss,
    check_pair,
    check_shards,
    shard,
    split_sizes,
    workers_of,
)
from fnn.distributed._grad import broadcast, check_opt, combine, finite, shard_grad, sharded_grad
from fnn.losses import Loss
from fnn.network import Network
from fnn.random import Key, KeyLike, as_key, fold_in
from fnn.train import History, batches, evaluate

__all__ = ["fit"]


# ---------------------------------------------------------------------------
# fit: epochs of data-parallel steps.


def _split_batch(xb: Array, yb: Array, k: int) -> list[tuple[Array, Array]]:
    """``min(k, rows)`` contiguous blocks of a batch, sizes as ``np.array_split``."""
    out, start = [], 0
    for size in split_sizes(xb.shape[0], min(k, xb.shape[0])):
        out.append((xb[start : start + size], yb[start : start + size]))
        start += size
    return out


def _exact_epoch(
    client: Any, workers: list[str], net: Network, opt: Any, state: Any, loss_fn: Loss,
    data: tuple[Array, Array], batch_size: int, k: int, epoch_key: Key, epoch: int,
) -> tuple[Network, Any, float]:
    """``fnn.fit``'s epoch with each batch split across the workers."""
    who = "fnn.distributed.fit"
    shuffle_key, dropout_key = fold_in(epoch_key, 0), fold_in(epoch_key, 1)
    total, seen = 0.0, 0
    for s, (xb, yb) in enumerate(batches(*data, batch_size, key=shuffle_key)):
        pieces = _split_batch(xb, yb, k)
        places = [workers[i % len(workers)] for i in range(len(pieces))]
        net_f = broadcast(client, net, places)
        step_key = fold_in(dropout_key, s)
        futures = [
            client.submit(shard_grad, net_f, xp, yp, loss_fn, fold_in(step_key, i), True,
                          pure=False, workers=[w], allow_other_workers=True)
            for i, ((xp, yp), w) in enumerate(zip(pieces, places, strict=True))
        ]
        loss, grads, new_net = combine(net, client.gather(futures))
        finite(who, loss, f"epoch {epoch}, batch {s}")
        net, state = opt.update(grads, state, new_net)
        total, seen = total + loss * len(xb), seen + len(xb)
    return net, state, total / seen


def _sharded_epoch(
    client: Any, net: Network, opt: Any, state: Any, loss_fn: Loss, shards: Shards,
    batch_size: int, epoch_key: Key, epoch: int,
) -> tuple[Network, Any, float]:
    """One pass in which every shard shuffles its own rows and gives a slice to each step."""
    who = "fnn.distributed.fit"
    shuffle_key, dropout_key = fold_in(epoch_key, 0), fold_in(epoch_key, 1)
    steps = -(-shards.n // batch_size)
    offsets = [sum(shards.sizes[:i]) for i in range(shards.k)]
    total, seen = 0.0, 0
    for s in range(steps):
        net_f = broadcast(client, net, shards.workers)
        step_key = fold_in(dropout_key, s)
        futures = [
            client.submit(sharded_grad, net_f, xf, yf, loss_fn, fold_in(step_key, i),
                          fold_in(shuffle_key, i), steps, s, offsets[i], pure=False,
                          workers=[w], allow_other_workers=True)
            for i, ((xf, yf), w) in enumerate(zip(shards.parts, shards.workers, strict=True))
        ]
        results = [r for r in client.gather(futures) if r is not None]
        loss, grads, new_net = combine(net, results)
        finite(who, loss, f"epoch {epoch}, step {s}")
        net, state = opt.update(grads, state, new_net)
        rows = sum(r[0] for r in results)
        total, seen = total + loss * rows, seen + rows
    return net, state, total / seen


def _learning_rate(opt: Any, state: Any) -> float:
    """The lr the next update uses, as ``fnn.fit`` logs it (NaN if the optimizer cannot tell)."""
    optim = importlib.import_module("fnn.optim")
    if isinstance(opt, optim.Optimizer):
        return float(optim.learning_rate(opt, state))
    return math.nan


def _fit_data(
    who: str, client: Any, data: object, mode: str, k: int | None
) -> tuple[tuple[Array, Array] | None, Shards | None]:
    if mode not in ("exact", "sharded"):
        raise ValueError(f"{who}: mode must be 'exact' or 'sharded', got {mode!r}")
    if isinstance(data, Shards):
        if mode == "exact":
            raise TypeError(
                f"{who}: mode='exact' draws fnn.fit's batches on the driver and needs data=(x, y) "
                "as arrays; for data already on the workers use mode='sharded'"
            )
        return None, data
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise TypeError(f"{who}: data must be a pair (x, y) of NumPy arrays (or, sharded, Shards)")
    x, y = check_pair(who, data[0], data[1])
    if mode == "sharded":
        return (x, y), shard(client, x, y, k)
    return (x, y), None


def fit(
    client: Any,
    net: Network,
    opt: Any,
    loss_fn: Loss,
    data: tuple[Array, Array] | Shards,
    *,
    epochs: int,
    key: KeyLike,
    batch_size: int = 32,
    mode: Literal["exact", "sharded"] = "exact",
    k: int | None = None,
    opt_state: Any = None,
    validation: tuple[Array, Array] | None = None,
    metrics: Sequence[Callable[[Array, Array], float]] = (),
    train_metrics: bool = True,
    start_epoch: int = 0,
    eval_batch_size: int = 1024,
    progress: bool = False,
) -> tuple[Network, Any, History]:
    """Train ``net`` on a Dask cluster for ``epochs`` epochs; a pure function like ``fnn.fit``.

    ``mode="exact"``: the driver holds ``data`` and draws ``fnn.fit``'s batches
    (epoch ``e`` shuffles with ``fold_in(fold_in(key, e), 0)``); each batch is
    split into ``k`` contiguous pieces computed on the workers and combined by
    size, so the networks, optimizer states and losses equal ``fnn.fit``'s up to
    round-off (for the layers the module docstring calls exact). The batch
    travels to the workers every step: worth it when a step's arithmetic
    outweighs sending the batch and the network.

    ``mode="sharded"``: the data stays on the workers (pass `Shards`, or arrays
    to be sharded ``k`` ways). An epoch has ``S = ceil(N / batch_size)`` steps;
    in epoch ``e`` shard ``i`` permutes its rows with
    ``fold_in(fold_in(fold_in(key, e), 0), i)`` and cuts them, in that order,
    into ``S`` consecutive slices; step ``s`` combines slice ``s`` of every
    shard. A shard of ``n_i`` rows gives each step ``n_i // S`` rows, and its
    ``n_i mod S`` extra rows go to the steps after those that took the previous
    shards' extras, so every row is used once per epoch and every step sees
    ``floor(N/S)`` or ``ceil(N/S)`` rows (about ``batch_size``) drawn from all
    shards. The batches differ from ``fnn.fit``'s.

    In both modes step ``s`` gives shard ``i`` the dropout key
    ``fold_in(fold_in(fold_in(fold_in(key, e), 1), s), i)``, updates run on the
    driver, and after each epoch the validation data (and in exact mode, with
    ``train_metrics``, the training data) are evaluated on the driver.

    Args:
        client: a ``dask.distributed.Client``.
        net: the network to start from (unchanged).
        opt: an optimizer such as ``fnn.optim.adam(1e-3)``.
        loss_fn: an ``fnn.losses.Loss``.
        data: ``(x, y)`` arrays, or (sharded mode) `Shards`.
        epochs: epochs to run (``>= 0``).
        key: the run's key (or int seed).
        batch_size: rows per step.
        mode: ``"exact"`` or ``"sharded"``.
        k: pieces per batch (exact) or shards (sharded); default one per worker.
        opt_state: the state to resume from (``opt.init(net)`` if ``None``).
        validation: ``(x_val, y_val)`` evaluated after every epoch.
        metrics: functions ``(pred, y) -> float`` such as ``fnn.metrics.accuracy``.
        train_metrics: exact mode: also compute ``metrics`` on the training data.
        start_epoch: the index of the first epoch (for resuming).
        eval_batch_size: rows per forward pass during evaluation.
        progress: print one line per epoch.

    Returns:
        ``(net, opt_state, history)`` as ``fnn.fit`` returns them.

    Raises:
        TypeError, ValueError: bad arguments, named.
        FloatingPointError: a non-finite loss (names the epoch and step).

    Example:
        With ``client`` as in `shard`; ``docs/cluster.md`` runs the same:

        >>> import numpy as np, fnn
        >>> x, y = fnn.datasets.two_spirals(0, 100, noise=0.05)
        >>> net = fnn.init([fnn.Dense(16), fnn.ReLU(), fnn.Dense(2)], (2,), key=0)
        >>> loss_fn, opt = fnn.losses.sparse_softmax_cross_entropy, fnn.optim.adam(1e-2)
        >>> net2, state, history = fit(client, net, opt, loss_fn, (x, y), epochs=3,
        ...                            key=0, mode="exact")  # doctest: +SKIP
        >>> same = fnn.fit(net, opt, loss_fn, (x, y), epochs=3, key=0, progress=False)
        >>> fnn.tree.allclose(net2, same[0], rtol=1e-5)  # doctest: +SKIP
        True
    """
    who = "fnn.distributed.fit"
    workers = workers_of(who, client)
    net, loss_fn = check_net_loss(who, net, loss_fn)
    opt = check_opt(who, opt)
    n_epochs = check_int(who, "epochs", epochs, 0)
    first = check_int(who, "start_epoch", start_epoch, 0)
    size = check_int(who, "batch_size", batch_size, 1)
    eval_size = check_int(who, "eval_batch_size", eval_batch_size, 1)
    kk = len(workers) if k is None else check_int(who, "k", k, 1)
    run_key = as_key(key, who)
    if validation is not None:
        if not isinstance(validation, tuple | list) or len(validation) != 2:
            raise TypeError(f"{who}: validation must be a pair (x_val, y_val) of NumPy arrays")
        validation = check_pair(who, validation[0], validation[1])
    if not isinstance(metrics, tuple | list) or not all(callable(m) for m in metrics):
        raise TypeError(
            f"{who}: metrics must be a list of functions (pred, y) -> float such as "
            f"[fnn.metrics.accuracy], got {metrics!r}"
        )
    arrays, shards = _fit_data(who, client, data, mode, k)
    if shards is not None:
        check_shards(who, shards, net)
    state = opt.init(net) if opt_state is None else opt_state
    history = History()
    for epoch in range(first, first + n_epochs):
        t0, lr = time.perf_counter(), _learning_rate(opt, state)
        epoch_key = fold_in(run_key, epoch)
        if shards is None:
            net, state, train_loss = _exact_epoch(  # (_fit_data gives arrays when no shards)
                client, workers, net, opt, state, loss_fn, cast(tuple[Array, Array], arrays),
                size, kk, epoch_key, epoch,
            )
        else:
            net, state, train_loss = _sharded_epoch(
                client, net, opt, state, loss_fn, shards, size, epoch_key, epoch
            )
        logs = {"loss": train_loss}
        if train_metrics and metrics and shards is None and arrays is not None:
            train_logs = evaluate(net, *arrays, loss_fn, metrics, batch_size=eval_size)
            logs |= {n: v for n, v in train_logs.items() if n != "loss"}
        if validation is not None:
            val_logs = evaluate(net, *validation, loss_fn, metrics, batch_size=eval_size)
            logs |= {f"val_{n}": v for n, v in val_logs.items()}
        logs |= {} if math.isnan(lr) else {"lr": lr}
        seconds = time.perf_counter() - t0
        history = history.append(epoch, logs, seconds, 0)
        if progress:
            line = "  ".join(f"{n} {v:.4g}" for n, v in logs.items())
            print(f"epoch {epoch + 1}/{first + n_epochs}  {line}  ({seconds:.1f}s)", flush=True)
    return net, state, history
