"""The learning-rate range test: train briefly while the rate grows, watch the loss.

``lr_find`` trains a copy-free *value* of the network (fnn networks never
change) for ``steps`` mini-batches with a learning rate rising geometrically
from ``min_lr`` to ``max_lr`` (Smith, 2017; fastai's ``lr_find``), records the
loss at each rate, and suggests the rate where the smoothed loss falls fastest.
The network it was given is untouched: there is nothing to restore.

Example:
    >>> import numpy as np, fnn
    >>> from fnn import optim
    >>> from fnn.train import lr_find
    >>> x = np.random.default_rng(0).normal(size=(256, 2)).astype(np.float32)
    >>> y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    >>> net = fnn.init([fnn.Dense(16), fnn.Tanh(), fnn.Dense(2)], (2,), key=0)
    >>> found = lr_find(net, optim.sgd, fnn.losses.sparse_softmax_cross_entropy, (x, y),
    ...                 key=0, steps=40, batch_size=32)
    >>> len(found.lrs) == len(found.losses), 1e-7 <= found.suggestion <= 10.0
    (True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from fnn.losses import Loss
from fnn.network import Network, value_and_grad
from fnn.optim import _checks as optim_checks
from fnn.random import KeyLike, as_key, fold_in
from fnn.train._checks import Array, check_pair, check_positive_int, unpack
from fnn.train.batching import batches
from fnn.train.loop import OptimizerLike, check_optimizer

__all__ = ["LRFindResult", "lr_find"]


def _readonly_floats(values: object) -> Array:
    if not isinstance(values, list | tuple | np.ndarray):
        raise TypeError(f"fnn.train.LRFindResult: expected a list of numbers, got {values!r}")
    try:
        a = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"fnn.train.LRFindResult: expected numbers, got {values!r}") from None
    if a.ndim != 1:
        raise ValueError(f"fnn.train.LRFindResult: expected a 1-d sequence, got shape {a.shape}")
    a.setflags(write=False)
    return a


@attrs.frozen(eq=False)
class LRFindResult:
    """What `lr_find` saw: the rates tried, the loss at each, and a suggested rate.

    Attributes:
        lrs: the learning rate of each step, increasing (read-only float64).
        losses: the training loss of each step's batch, before its update.
        smoothed: the losses smoothed by a debiased exponential moving average.
        suggestion: the rate where the smoothed loss falls fastest per unit of
            ``log(lr)`` (measured over ±5% of the steps), between the end of the first
            tenth of the run, where the average still settles, and the smoothed
            minimum after it; a tenth of the rate at that minimum if the stretch is
            too short. A heuristic starting point (Smith, 2017), not a guarantee.
        diverged: whether the run stopped early because the loss blew up.
    """

    lrs: Array = attrs.field(converter=_readonly_floats)
    losses: Array = attrs.field(converter=_readonly_floats)
    smoothed: Array = attrs.field(converter=_readonly_floats)
    suggestion: float
    diverged: bool


@attrs.frozen
class _Ramp:
    """The schedule ``lr_t = min_lr · (max_lr / min_lr)^(t / (steps − 1))``."""

    min_lr: float
    max_lr: float
    steps: int

    def __call__(self, step: int) -> float:
        t = min(step, self.steps - 1) / (self.steps - 1)
        return float(self.min_lr * (self.max_lr / self.min_lr) ** t)


def _suggest(lrs: Array, smoothed: Array) -> float:
    """The rate of steepest descent of the smoothed loss (see `LRFindResult.suggestion`)."""
    n = len(lrs)
    first, w = n // 10, max(1, n // 20)
    finite = np.isfinite(smoothed[first:])
    if not finite.any():
        return float(lrs[0])
    last = first + int(np.argmin(np.where(finite, smoothed[first:], np.inf)))
    centre = np.arange(first + w, last - w + 1)
    if not len(centre):
        return float(max(lrs[last] / 10.0, lrs[0]))
    # The rates are geometric, so the slope per unit of log(lr) over ±w steps is
    # proportional to this difference.
    drop = smoothed[centre + w] - smoothed[centre - w]
    return float(lrs[int(centre[int(np.argmin(drop))])])


def lr_find(
    net: Network,
    opt_factory: Callable[[Any], Any],
    loss_fn: Loss,
    data: tuple[Array, Array],
    *,
    key: KeyLike,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    batch_size: int = 32,
    smoothing: float = 0.98,
    diverge: float = 4.0,
) -> LRFindResult:
    """Train for ``steps`` batches with a geometrically growing learning rate.

    Step ``t`` (0-based) uses ``lr_t = min_lr · (max_lr / min_lr)^(t / (steps −
    1))``: ``opt_factory`` is called once with that schedule (every
    ``fnn.optim`` optimizer takes one as ``lr``). The batches are shuffled
    mini-batches as in ``fit`` (epoch ``e`` shuffled with ``fold_in(key, e)``),
    repeated as needed. The loss of each batch is recorded before its update and
    smoothed, ``s_t = (β·a_{t−1} + (1 − β)·L_t) / (1 − β^{t+1})``; the run
    stops early when ``s_t > diverge · min(s)`` or the loss is not finite.

    Args:
        net: the network to probe; it is not changed (nothing in fnn changes).
        opt_factory: ``lr -> optimizer``, e.g. ``fnn.optim.adam`` or
            ``lambda lr: fnn.optim.sgd(lr, momentum=0.9)``.
        loss_fn: an ``fnn.losses.Loss``.
        data: ``(x, y)`` training data.
        key: shuffling and dropout key (or int seed).
        min_lr: the first rate, > 0.
        max_lr: the last rate, > ``min_lr``.
        steps: how many updates, >= 3.
        batch_size: examples per step.
        smoothing: ``β`` in [0, 1).
        diverge: stop when the smoothed loss exceeds this multiple of its minimum, > 1.

    Returns:
        An `LRFindResult` with the rates, the losses and the suggestion.

    Raises:
        TypeError: a wrong kind of network, factory, loss or data.
        ValueError: an argument is out of range, or x/y lengths differ.
    """
    who = "fnn.train.lr_find"
    if not isinstance(net, Network):
        raise TypeError(
            f"{who}: net must be an fnn.Network (from fnn.init), got {type(net).__name__}"
        )
    if not isinstance(loss_fn, Loss):
        raise TypeError(f"{who}: loss_fn must be an fnn.losses.Loss, got {type(loss_fn).__name__}")
    if not callable(opt_factory):
        raise TypeError(
            f"{who}: opt_factory must be a function lr -> optimizer such as fnn.optim.adam, "
            f"got {type(opt_factory).__name__}"
        )
    x, y = check_pair(who, *unpack(who, data, "data"))
    lo = optim_checks.number(who, "min_lr", min_lr, low=0.0, low_open=True)
    hi = optim_checks.number(who, "max_lr", max_lr, low=lo, low_open=True)
    n_steps = check_positive_int(who, "steps", steps, minimum=3)
    size = check_positive_int(who, "batch_size", batch_size)
    beta = optim_checks.number(who, "smoothing", smoothing, low=0.0, high=1.0, high_open=True)
    blowup = optim_checks.number(who, "diverge", diverge, low=1.0, low_open=True)
    k = as_key(key, who)
    ramp = _Ramp(lo, hi, n_steps)
    opt = check_optimizer(who, opt_factory(ramp))
    lrs, losses, smoothed = _run(who, net, opt, loss_fn, (x, y), k, ramp, size, beta, blowup)
    diverged = len(losses) < n_steps
    suggestion = _suggest(np.array(lrs), np.array(smoothed))
    return LRFindResult(lrs, losses, smoothed, suggestion, diverged)


def _run(
    who: str, net: Network, opt: OptimizerLike, loss_fn: Loss, data: tuple[Array, Array],
    key: Any, ramp: _Ramp, size: int, beta: float, blowup: float,
) -> tuple[list[float], list[float], list[float]]:
    state = opt.init(net)
    random_layers = any(layer.stochastic for layer in net.layers)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best, t, epoch = 0.0, math.inf, 0, 0
    while t < ramp.steps:
        epoch_key = fold_in(key, epoch)
        for xb, yb in batches(*data, size, key=fold_in(epoch_key, 0)):
            step_key = fold_in(fold_in(epoch_key, 1), t) if random_layers else None
            with np.errstate(all="ignore"):  # a blow-up is what this test looks for
                loss, grads, net_t = value_and_grad(
                    net, xb, yb, loss_fn, key=step_key, with_state=True
                )
            avg = beta * avg + (1.0 - beta) * loss
            s = avg / (1.0 - beta ** (t + 1))
            lrs.append(ramp(t))
            losses.append(loss)
            smoothed.append(s)
            if not math.isfinite(s) or s > blowup * best:
                return lrs, losses, smoothed
            best = min(best, s)
            with np.errstate(all="ignore"):
                net, state = opt.update(grads, state, net_t)
            t += 1
            if t == ramp.steps:
                break
        epoch += 1
    return lrs, losses, smoothed
