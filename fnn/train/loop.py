"""The pure fit loop: epochs of shuffled mini-batch steps, evaluation, stopping rules.

``fit`` is a function from one training state to the next: it takes a network
and an optimizer state and returns new ones, with a :class:`History` of what
happened. Nothing is mutated. Every epoch ``e`` uses the key
``fold_in(key, e)``: its first child shuffles the data, its second is folded
with the step number to give each step's dropout key. So training for
``N1 + N2`` epochs at once is bit for bit the same as training ``N1`` epochs
and resuming with the returned network and optimizer state and
``start_epoch=N1``.

The loop is short on purpose; written out by hand it is::

    for epoch in range(epochs):
        k_shuffle, k_drop = fnn.random.split(fnn.random.fold_in(key, epoch))
        for step, (xb, yb) in enumerate(batches(x, y, batch_size, key=k_shuffle)):
            loss, grads, net = fnn.value_and_grad(
                net, xb, yb, loss_fn, key=fnn.random.fold_in(k_drop, step), with_state=True
            )
            net, opt_state = opt.update(grads, opt_state, net)

Example:
    >>> import numpy as np, fnn
    >>> from fnn import optim, parallel
    >>> from fnn.train import fit
    >>> x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    >>> y = (x[:, 0] > 0).astype(np.int64)
    >>> net = fnn.init([fnn.Dense(8), fnn.Tanh(), fnn.Dense(2)], (2,), key=0)
    >>> opt = optim.sgd(0.5)
    >>> net2, state, hist = fit(net, opt, fnn.losses.sparse_softmax_cross_entropy, (x, y),
    ...                         epochs=5, key=1, batch_size=16, progress=False)
    >>> hist.epochs, hist.loss[-1] < hist.loss[0]
    ((0, 1, 2, 3, 4), True)
"""

from __future__ import annotations

import math
import time
import types
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

import attrs
import numpy as np

from fnn import _arrays, optim, parallel
from fnn import metrics as fnn_metrics
from fnn.losses import Loss
from fnn.network import Network, value_and_grad
from fnn.random import Key, KeyLike, as_key, fold_in
from fnn.train._checks import (
    Array,
    MetricFn,
    check_pair,
    check_positive_int,
    metric_name,
    metric_names,
    unpack,
)
from fnn.train.batching import batches
from fnn.train.callbacks import EarlyStopping, EpochRecord, Signal
from fnn.train.evaluation import evaluate
from fnn.train.history import History
from fnn.train.progress import Progress

__all__ = ["OptimizerLike", "fit"]


class OptimizerLike(Protocol):
    """What ``fit`` needs of an optimizer (``fnn.optim`` objects qualify)."""

    def init(self, params: Any) -> Any: ...  # pragma: no cover

    def update(
        self, grads: Any, state: Any, params: Any
    ) -> tuple[Any, Any]: ...  # pragma: no cover


@attrs.define
class _Tracker:
    """Early-stopping bookkeeping, local to one ``fit`` call."""

    rule: EarlyStopping
    lower_is_better: bool
    best: float = math.nan
    best_epoch: int | None = None
    best_net: Any = None
    best_state: Any = None
    wait: int = 0

    def update(self, epoch: int, value: float, net: Network, state: Any) -> bool:
        d = self.rule.min_delta
        if self.best_epoch is None:
            improved = math.isfinite(value)
        elif self.lower_is_better:
            improved = value < self.best - d
        else:
            improved = value > self.best + d
        if improved:
            self.best, self.best_epoch, self.best_net, self.best_state = value, epoch, net, state
            self.wait = 0
            return False
        self.wait += 1
        return self.wait >= self.rule.patience


def _make_tracker(
    who: str, rule: EarlyStopping | None, names: Sequence[str], metrics: Sequence[MetricFn]
) -> _Tracker | None:
    if rule is None:
        return None
    if not isinstance(rule, EarlyStopping):
        raise TypeError(
            f"{who}: early_stopping must be fnn.train.EarlyStopping(...), got {type(rule).__name__}"
        )
    if rule.monitor not in names:
        raise ValueError(
            f"{who}: early stopping monitors {rule.monitor!r}, which this run does not log; "
            f"it logs {sorted(names)} (val_* names need validation=(x_val, y_val))"
        )
    if rule.mode != "auto":
        return _Tracker(rule, rule.mode == "min")
    base = rule.monitor.removeprefix("val_")
    by_name = {metric_name(who, m): m for m in metrics}
    lower = base == "loss" or (
        base in by_name and not fnn_metrics.higher_is_better(by_name[base])
    )
    return _Tracker(rule, lower)


def _run_callbacks(
    who: str, callbacks: Sequence[Callable[[EpochRecord], Signal | None]], record: EpochRecord
) -> bool:
    stop = False
    for cb in callbacks:
        signal = cb(record)
        if signal is not None and not isinstance(signal, Signal):
            raise TypeError(
                f"{who}: callback {getattr(cb, '__name__', cb)!r} returned {signal!r}; "
                "a callback returns None to continue or fnn.train.STOP to stop"
            )
        stop = stop or signal is Signal.STOP
    return stop


def _learning_rate(opt: OptimizerLike, state: Any) -> float:
    """The lr the next update uses; NaN when the optimizer cannot tell."""
    if isinstance(opt, optim.Optimizer):
        try:
            return optim.learning_rate(opt, state)
        except ValueError:  # no scale_by_learning_rate in the chain
            return math.nan
    return math.nan


def check_optimizer(who: str, opt: object) -> OptimizerLike:
    if isinstance(opt, optim.GradientTransformation):
        return optim.Optimizer(opt)  # a bare transformation: apply its updates
    if not (callable(getattr(opt, "init", None)) and callable(getattr(opt, "update", None))):
        raise TypeError(
            f"{who}: opt must be an optimizer with init(params) and update(grads, state, params), "
            f"such as fnn.optim.sgd(0.01), got {type(opt).__name__}"
        )
    return opt  # type: ignore[return-value]


def _monitors(who: str, opt: OptimizerLike, logged: Sequence[str]) -> tuple[str, ...]:
    """The metrics the optimizer observes (reduce_on_plateau), checked to be logged."""
    if not isinstance(opt, optim.Optimizer):
        return ()
    names = opt.tx.monitors()
    for name in names:
        if name not in logged:
            raise ValueError(
                f"{who}: the optimizer's reduce_on_plateau monitors {name!r}, which this run does "
                f"not log; it logs {sorted(logged)} (val_* names need validation=(x_val, y_val))"
            )
    return names


def _initial_state(opt: OptimizerLike, net: Network, opt_state: Any) -> Any:
    if opt_state is None:
        return opt.init(net)
    if isinstance(opt, optim.Optimizer) and isinstance(opt_state, optim.OptState):
        return optim.migrate(opt_state, opt, net)  # a checkpoint written by fnn 0.1.0
    return opt_state


_FIX = (
    "Lower the learning rate, clip the gradients, or pass on_nonfinite='skip' to skip such "
    "batches"
)


def _nonfinite_error(
    who: str, net: Network, xb: Array, yb: Array, loss_fn: Loss, key: Key | None, where: str,
    cause: float | FloatingPointError,
) -> FloatingPointError:
    """Say what went wrong at ``where``: ``cause`` is the non-finite loss or the error raised.

    An error from fnn's own ``check_finite`` already names the layer. Otherwise the batch is
    recomputed with IEEE arithmetic (NumPy's errors ignored) and finite checks, to name the
    layer where NaN/inf first appears; and an error NumPy raised because ``np.errstate`` is
    set to raise ("overflow encountered in exp") is reported as such, not as a NaN loss.
    """
    if isinstance(cause, FloatingPointError) and not _from_numpy(cause):
        return FloatingPointError(f"{who}: non-finite value at {where}: {cause}. {_FIX}")
    found, quiet_loss = None, math.nan
    with np.errstate(all="ignore"):
        try:
            quiet_loss = value_and_grad(net, xb, yb, loss_fn, key=key, check_finite=True)[0]
        except FloatingPointError as err:
            found = str(err)
    if not isinstance(cause, FloatingPointError):
        return FloatingPointError(
            f"{who}: non-finite loss at {where}: {found or f'the loss is {cause}'}. {_FIX}"
        )
    head = (
        f"{who}: NumPy raised FloatingPointError ({cause}) at {where}: np.errstate or np.seterr "
        "is set to raise"
    )
    if found is not None:
        return FloatingPointError(f"{head}; with IEEE arithmetic: {found}. {_FIX}")
    return FloatingPointError(
        f"{head}; with IEEE arithmetic (NumPy's errors ignored) the loss ({quiet_loss:.6g}) and "
        "every activation and gradient are finite, so no value became NaN or inf: the operation "
        "recovered. Relax that category around fit (e.g. np.errstate(over='ignore')), or find "
        "the operation in the traceback"
    )


def _from_numpy(err: FloatingPointError) -> bool:
    """NumPy's own errors read like 'overflow encountered in exp'; fnn's name their caller."""
    return " encountered in " in str(err)


def _train_epoch(
    who: str,
    net: Network,
    opt: OptimizerLike,
    opt_state: Any,
    loss_fn: Loss,
    data: tuple[Array, Array],
    batch_size: int,
    epoch_key: Key,
    epoch: int,
    on_nonfinite: str,
    check_finite: bool,
    tick: Callable[[], None],
    check_x: bool,
) -> tuple[Network, Any, float, int]:
    """One pass over the data: returns (net, opt_state, mean loss, skipped batches).

    ``check_x``: scan each batch of x for NaN/inf. Every example is in some batch of
    every epoch, so ``fit`` scans in its first epoch only (x does not change).
    """
    shuffle_key, dropout_key = fold_in(epoch_key, 0), fold_in(epoch_key, 1)
    random_layers = any(layer.stochastic for layer in net.layers)
    total, seen, skipped = 0.0, 0, 0
    for step, (xb, yb) in enumerate(batches(*data, batch_size, key=shuffle_key)):
        step_key = fold_in(dropout_key, step) if random_layers else None
        try:
            loss, grads, new_net = value_and_grad(
                net, xb, yb, loss_fn, key=step_key, with_state=True, check_finite=check_finite,
                check_values=check_x,
            )
        except FloatingPointError as err:
            if on_nonfinite == "raise":
                # From check_finite, or from NumPy itself under np.seterr(all="raise").
                where = f"epoch {epoch}, batch {step}"
                raise _nonfinite_error(who, net, xb, yb, loss_fn, step_key, where, err) from err
            loss = math.nan
        if not math.isfinite(loss):
            if on_nonfinite == "raise":
                where = f"epoch {epoch}, batch {step}"
                raise _nonfinite_error(who, net, xb, yb, loss_fn, step_key, where, loss)
            skipped += 1
            tick()
            continue
        net, opt_state = opt.update(grads, opt_state, new_net)
        total, seen = total + loss * len(xb), seen + len(xb)
        tick()
    return net, opt_state, (total / seen if seen else math.nan), skipped


@_arrays.ignoring_underflow
def fit(
    net: Network,
    opt: OptimizerLike,
    loss_fn: Loss,
    data: tuple[Array, Array],
    *,
    epochs: int,
    key: KeyLike,
    batch_size: int = 32,
    opt_state: Any = None,
    validation: tuple[Array, Array] | None = None,
    metrics: Sequence[MetricFn] = (),
    early_stopping: EarlyStopping | None = None,
    callbacks: Sequence[Callable[[EpochRecord], Signal | None]] = (),
    progress: bool = True,
    start_epoch: int = 0,
    on_nonfinite: Literal["raise", "skip"] = "raise",
    check_finite: bool = False,
    train_metrics: bool = True,
    eval_batch_size: int = 1024,
    threads: int | None = None,
) -> tuple[Network, Any, History]:
    """Train ``net`` with ``opt`` on ``data`` for ``epochs`` epochs; a pure function.

    Each step computes ``(L, ∇L, net') = value_and_grad(net, x_b, y_b)`` in
    training mode (keeping updated batch-norm statistics in ``net'``) and then
    ``(net, opt_state) = opt.update(∇L, opt_state, net')``. Epoch ``e`` shuffles
    with ``fold_in(fold_in(key, e), 0)`` and step ``s`` of it gets the dropout
    key ``fold_in(fold_in(fold_in(key, e), 1), s)``, so resuming with the
    returned values and ``start_epoch`` reproduces an uninterrupted run bit for
    bit. After each epoch the validation data (and, with ``train_metrics``, the
    training data) are evaluated in evaluation mode.

    Speed: the steps are NumPy matrix products, so the BLAS thread count
    matters. For small networks, or on a machine shared with other work, one
    BLAS thread is often several times faster than two (OpenBLAS threads spin
    while waiting). ``threads=n`` runs the whole call inside ``fnn.threads(n)``
    and restores the previous counts afterwards; with ``threads=None`` (the
    default) fnn leaves BLAS as it finds it (see ``benchmarks/mlp.py`` for
    measurements). The last bits of the results can differ between thread
    counts (a product split across threads sums in another order); for one
    count, the same arguments give the same bits.

    Args:
        net: the network to start from (unchanged).
        opt: an optimizer such as ``fnn.optim.adam(1e-3)``, or a gradient
            transformation (its updates are added to the params). A
            ``fnn.optim.reduce_on_plateau`` in it sees each epoch's metrics
            (``fnn.optim.observe``) after the epoch is evaluated.
        loss_fn: an ``fnn.losses.Loss``.
        data: ``(x, y)``, ``x`` of shape ``(n, *input_shape)``, ``y`` of ``(n, ...)``,
            or ``y = (labels, mask)`` for a masked loss (batched together).
        epochs: how many epochs to run (``>= 0``).
        key: the run's key (or int seed): shuffling and dropout.
        batch_size: examples per step (the last batch may be smaller).
        opt_state: the optimizer state to resume from (``opt.init(net)`` if ``None``;
            a 0.1.0 ``OptState`` is converted with ``fnn.optim.migrate``).
        validation: ``(x_val, y_val)`` evaluated at the end of every epoch.
        metrics: functions ``(pred, y) -> float`` such as ``fnn.metrics.accuracy``.
        early_stopping: an :class:`EarlyStopping` rule.
        callbacks: functions of an :class:`EpochRecord` returning ``None`` or
            :data:`STOP`; called after every epoch, in order.
        progress: show a tqdm bar on a terminal (plain lines otherwise).
        start_epoch: the index of the first epoch (for resuming).
        on_nonfinite: ``"raise"`` a ``FloatingPointError`` naming the epoch,
            batch and layer, or ``"skip"`` the batch without updating (which
            turns on ``check_finite``, so non-finite gradients are caught too).
        check_finite: check every activation and gradient for NaN/inf at every
            step (5-15% slower on small MLPs). By default only the loss is
            checked each step (free); a non-finite loss is then recomputed with
            the full check to name the layer. A gradient that overflows while
            the loss stays finite shows up one step later, in the loss.
        train_metrics: also compute ``metrics`` on the training data.
        eval_batch_size: examples per forward pass during evaluation.
        threads: run with this many BLAS threads (and fnn kernel threads), as
            ``with fnn.threads(threads):`` around the call; needs threadpoolctl
            (``pip install "fnn[threads]"``). ``None`` changes nothing.

    Returns:
        ``(net, opt_state, history)``: the trained network, the optimizer state
        to resume from, and the :class:`History`. With early stopping and
        ``restore_best``, the network and state of the best epoch.

    Raises:
        TypeError: a wrong kind of network, optimizer, loss, data or metric,
            or ``threads`` not an int.
        ValueError: ``epochs < 0``, ``batch_size < 1``, ``threads < 1``, x/y lengths differ,
            or early stopping or ``reduce_on_plateau`` monitors a name this run does not log.
        FloatingPointError: a non-finite loss with ``on_nonfinite="raise"``.
        ImportError: ``threads`` is set and threadpoolctl is not installed.

    Example:
        >>> import numpy as np, fnn
        >>> from fnn import optim, parallel
        >>> x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
        >>> y = x.sum(axis=1, keepdims=True)
        >>> net = fnn.init([fnn.Dense(1)], (3,), key=0)
        >>> net2, state, hist = fit(net, optim.sgd(0.1), fnn.losses.mse, (x, y),
        ...                         epochs=20, key=0, batch_size=8, progress=False)
        >>> round(hist.loss[-1], 4)
        0.0
    """
    if threads is not None:  # the same call (every argument) inside fnn.threads(threads)
        with parallel.threads(check_positive_int("fnn.fit", "threads", threads)):
            return fit(**{**locals(), "threads": None})
    who = "fnn.fit"
    opt, (x, y), val = _check_inputs(who, net, opt, loss_fn, data, validation, on_nonfinite)
    n_epochs = check_positive_int(who, "epochs", epochs, minimum=0)
    first = check_positive_int(who, "start_epoch", start_epoch, minimum=0)
    size = check_positive_int(who, "batch_size", batch_size)
    eval_size = check_positive_int(who, "eval_batch_size", eval_batch_size)
    k = as_key(key, who)
    names = metric_names(who, metrics)
    logged = ["loss", *(names if train_metrics else [])]
    logged += [] if val is None else ["val_loss", *(f"val_{n}" for n in names)]
    tracker = _make_tracker(who, early_stopping, logged, metrics)
    observes = _monitors(who, opt, logged)
    state = _initial_state(opt, net, opt_state)
    bar = Progress(progress, first + n_epochs, -(-len(x) // size))
    history, stop_reason = History(), None
    for epoch in range(first, first + n_epochs):
        t0, lr = time.perf_counter(), _learning_rate(opt, state)
        bar.start(epoch + 1)
        net, state, train_loss, skipped = _train_epoch(
            who, net, opt, state, loss_fn, (x, y), size, fold_in(k, epoch), epoch,
            on_nonfinite, check_finite or on_nonfinite == "skip", bar.step, epoch == first,
        )
        logs = {"loss": train_loss}
        if train_metrics and metrics:
            train_logs = evaluate(net, x, y, loss_fn, metrics, batch_size=eval_size)
            logs |= {n: v for n, v in train_logs.items() if n != "loss"}
        if val is not None:
            val_logs = evaluate(net, *val, loss_fn, metrics, batch_size=eval_size)
            logs |= {f"val_{n}": v for n, v in val_logs.items()}
        logs |= {} if math.isnan(lr) else {"lr": lr}
        if observes:  # reduce_on_plateau sees the epoch's metrics
            state = optim.observe(opt, state, logs)
        seconds = time.perf_counter() - t0
        history = history.append(epoch, logs, seconds, skipped)
        bar.end(epoch + 1, logs, seconds)
        record = EpochRecord(epoch, types.MappingProxyType(dict(logs)), net, state, history)
        if tracker is not None and tracker.update(epoch, logs[tracker.rule.monitor], net, state):
            stop_reason = "early_stopping"
        if _run_callbacks(who, callbacks, record):
            stop_reason = stop_reason or "callback"
        if stop_reason is not None:
            break
    history = attrs.evolve(history, stop_reason=stop_reason)
    if tracker is None:
        return net, state, history
    history = attrs.evolve(history, best_epoch=tracker.best_epoch)
    if tracker.rule.restore_best and tracker.best_epoch is not None:
        history = attrs.evolve(history, restored_epoch=tracker.best_epoch)
        return tracker.best_net, tracker.best_state, history
    return net, state, history


def _check_inputs(
    who: str, net: object, opt: object, loss_fn: object, data: object, validation: object,
    on_nonfinite: object,
) -> tuple[OptimizerLike, tuple[Array, Array], tuple[Array, Array] | None]:
    """Validate fit's objects and data before any work; return the typed values."""
    if not isinstance(net, Network):
        raise TypeError(
            f"{who}: net must be an fnn.Network (from fnn.init), got {type(net).__name__}"
        )
    if not isinstance(loss_fn, Loss):
        raise TypeError(f"{who}: loss_fn must be an fnn.losses.Loss, got {type(loss_fn).__name__}")
    if on_nonfinite not in ("raise", "skip"):
        raise ValueError(f"{who}: on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
    train = check_pair(who, *unpack(who, data, "data"))
    val = None if validation is None else check_pair(who, *unpack(who, validation, "validation"))
    return check_optimizer(who, opt), train, val


