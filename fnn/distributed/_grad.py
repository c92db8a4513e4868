"""Data-parallel gradients: per shard on the workers, combined by size on the driver."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fnn import tree
from fnn.distributed._cluster import (
    Array,
    Shards,
    check_net_loss,
    check_shards,
    workers_of,
)
from fnn.losses import Loss
from fnn.network import Network
from fnn.network import value_and_grad as local_value_and_grad
from fnn.random import Key, KeyLike, as_key, fold_in, generator

__all__ = ["step", "value_and_grad"]


# ---------------------------------------------------------------------------
# Gradients: per shard on the workers, combined on the driver.


def shard_grad(
    net: Network, x: Array, y: Array, loss_fn: Loss, key: Key | None, training: bool,
    rows: Array | None = None,
) -> tuple[int, float, Network, Network | None]:
    """On a worker: (rows used, loss, grads, updated net or None) for one shard."""
    if rows is not None:
        x, y = x[rows], y[rows]
    loss, grads, new_net = local_value_and_grad(
        net, x, y, loss_fn, key=key, training=training, with_state=True
    )
    stateful = any(tree.state_mask(net))
    return int(x.shape[0]), float(loss), grads, new_net if stateful else None


def slice_sizes(n: int, steps: int, offset: int) -> list[int]:
    """Rows a shard of ``n`` rows gives to each of ``steps`` steps.

    Each step gets ``n // steps`` rows, and the ``n % steps`` extra rows go to
    the steps ``offset, offset + 1, ...`` (cyclically). With ``offset`` the rows
    of the shards before this one, the extras of all shards tile the steps in
    turn, so every step of the epoch gets ``floor(N / steps)`` or
    ``ceil(N / steps)`` rows in total and none is empty.

    Example:
        >>> slice_sizes(5, 3, 0), slice_sizes(4, 3, 5)
        ([2, 2, 1], [1, 1, 2])
    """
    base, extra = divmod(n, steps)
    return [base + (1 if (t - offset) % steps < extra else 0) for t in range(steps)]


def sharded_grad(
    net: Network, x: Array, y: Array, loss_fn: Loss, key: Key | None, shuffle_key: Key,
    steps: int, step: int, offset: int,
) -> tuple[int, float, Network, Network | None] | None:
    """On a worker: slice ``step`` of this shard's shuffled rows (`slice_sizes`), None if empty."""
    sizes = slice_sizes(x.shape[0], steps, offset)
    start = sum(sizes[:step])
    if sizes[step] == 0:
        return None
    order = generator(shuffle_key).permutation(x.shape[0])
    return shard_grad(net, x, y, loss_fn, key, True, order[start : start + sizes[step]])


def _weighted_sum(arrays: Sequence[Array], weights: Sequence[float]) -> Array:
    """``Σ w_i · a_i`` in the order given, in the arrays' dtype (a fresh array)."""
    dt = arrays[0].dtype.type
    out: Array = arrays[0] * dt(weights[0])
    for a, w in zip(arrays[1:], weights[1:], strict=True):
        out += a * dt(w)
    return out


def combine(
    net: Network, results: Sequence[tuple[int, float, Network, Network | None]]
) -> tuple[float, Network, Network]:
    """Size-weighted loss, gradient and state of per-shard results, in shard order."""
    total = sum(r[0] for r in results)
    weights = [r[0] / total for r in results]
    loss = 0.0
    for w, r in zip(weights, results, strict=True):
        loss += w * r[1]
    grads = tree.map(lambda *gs: _weighted_sum(gs, weights), *[r[2] for r in results])
    if results[0][3] is None:
        return loss, grads, net
    state = iter(tree.state_mask(net))

    def leaf(p: Array, *news: Array) -> Array:
        return _weighted_sum(news, weights) if next(state) else p

    return loss, grads, tree.map(leaf, net, *[r[3] for r in results])


def broadcast(client: Any, value: object, workers: Sequence[str]) -> Any:
    """A future of ``value`` copied to each of ``workers`` (sent once per worker)."""
    return client.scatter(value, workers=sorted(set(workers)), broadcast=True, hash=False)


def _gather_grads(
    client: Any, net: Network, shards: Shards, loss_fn: Loss, key: Key | None, training: bool
) -> list[tuple[int, float, Network, Network | None]]:
    net_f = broadcast(client, net, shards.workers)
    futures = [
        client.submit(
            shard_grad, net_f, xf, yf, loss_fn, None if key is None else fold_in(key, i),
            training, pure=False, workers=[w], allow_other_workers=True,
        )
        for i, ((xf, yf), w) in enumerate(zip(shards.parts, shards.workers, strict=True))
    ]
    return list(client.gather(futures))


def value_and_grad(
    client: Any,
    net: Network,
    shards: Shards,
    loss_fn: Loss,
    key: KeyLike | None = None,
    *,
    training: bool = True,
    with_state: bool = False,
) -> Any:
    """The loss over all shards and its gradient, computed on the workers.

    Shard ``i`` (``n_i`` rows) computes ``(L_i, ∇L_i)`` with ``fnn.value_and_grad``
    on its worker, with the key ``fold_in(key, i)``; the driver returns
    ``L = Σ (n_i/N)·L_i`` and ``∇L = Σ (n_i/N)·∇L_i`` added in shard order, so
    the result is deterministic and equals the one-process value on all rows up
    to round-off (see the module docstring for BatchNorm and dropout).

    Args:
        client: a ``dask.distributed.Client``.
        net: a built network (sent to each worker once per call).
        shards: the data, from `shard`.
        loss_fn: an ``fnn.losses.Loss`` (a mean over the batch).
        key: for random layers in training mode.
        training: training mode (default ``True``).
        with_state: also return the network with combined non-trainable state.

    Returns:
        ``(loss, grads)`` or ``(loss, grads, new_net)``; ``grads`` is a read-only
        `Network` like ``net``.

    Raises:
        TypeError, ValueError: bad arguments (named), or a shard's error from its
            worker (the same type as ``fnn.value_and_grad`` raises).

    Example:
        With ``client`` and ``shards`` as in `shard`:

        >>> import fnn
        >>> net = fnn.init([fnn.Dense(2)], (3,), key=0, dtype="float64")
        >>> loss, grads = value_and_grad(client, net, shards, fnn.losses.mse)  # doctest: +SKIP
        >>> grads.layers[0].w.shape, grads.layers[0].w.flags.writeable  # doctest: +SKIP
        ((3, 2), False)
    """
    who = "fnn.distributed.value_and_grad"
    workers_of(who, client)
    net, loss_fn = check_net_loss(who, net, loss_fn)
    shards = check_shards(who, shards, net)
    k = None if key is None else as_key(key, who)
    results = _gather_grads(client, net, shards, loss_fn, k, bool(training))
    loss, grads, new_net = combine(net, results)
    return (loss, grads, new_net) if with_state else (loss, grads)


def check_opt(who: str, opt: object) -> Any:
    if not (callable(getattr(opt, "init", None)) and callable(getattr(opt, "update", None))):
        raise TypeError(
            f"{who}: opt must be an optimizer with init(params) and update(grads, state, params), "
            f"such as fnn.optim.sgd(0.01), got {type(opt).__name__}"
        )
    return opt


def finite(who: str, loss: float, where: str) -> float:
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"{who}: non-finite loss ({loss}) at {where}; lower the learning rate or clip the "
            "gradients (fnn.value_and_grad(..., check_finite=True) on one process names the layer)"
        )
    return loss


def step(
    client: Any,
    net: Network,
    opt: Any,
    opt_state: Any,
    shards: Shards,
    loss_fn: Loss,
    *,
    key: KeyLike | None = None,
) -> tuple[Network, Any, float]:
    """One data-parallel optimizer step on all the shards' rows.

    ``(L, ∇L, net') = value_and_grad(client, net, shards, loss_fn, key, with_state=True)``
    on the workers, then ``opt.update(∇L, opt_state, net')`` on the driver.

    Args:
        client: a ``dask.distributed.Client``.
        net: the current network.
        opt: an optimizer such as ``fnn.optim.adam(1e-3)``.
        opt_state: its state (``None``: ``opt.init(net)``).
        shards: the data, from `shard`.
        loss_fn: an ``fnn.losses.Loss``.
        key: for random layers (dropout).

    Returns:
        ``(new_net, new_opt_state, loss)``; the inputs are unchanged.

    Raises:
        TypeError, ValueError: bad arguments, named.
        FloatingPointError: the loss is NaN or infinite.

    Example:
        With ``client`` and ``shards`` as in `shard`:

        >>> import fnn
        >>> net = fnn.init([fnn.Dense(1)], (3,), key=0, dtype="float64")
        >>> opt, state = fnn.optim.sgd(0.1), None
        >>> for _ in range(10):  # doctest: +SKIP
        ...     net, state, loss = step(client, net, opt, state, shards, fnn.losses.mse)
    """
    who = "fnn.distributed.step"
    opt = check_opt(who, opt)
    workers_of(who, client)
    net, loss_fn = check_net_loss(who, net, loss_fn)
    shards = check_shards(who, shards, net)
    k = None if key is None else as_key(key, who)
    state = opt.init(net) if opt_state is None else opt_state
    loss, grads, new_net = combine(net, _gather_grads(client, net, shards, loss_fn, k, True))
    finite(who, loss, "this step")
    new_params, new_state = opt.update(grads, state, new_net)
    return new_params, new_state, loss
