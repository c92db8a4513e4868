"""Loss and metrics of a network on a dataset, in evaluation mode."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fnn.losses import Loss
from fnn.network import Network, forward
from fnn.train._checks import Array, MetricFn, check_pair, check_positive_int, metric_names

__all__ = ["evaluate"]


def evaluate(
    net: Network,
    x: Array,
    y: Array,
    loss_fn: Loss,
    metrics: Sequence[MetricFn] = (),
    *,
    batch_size: int = 1024,
) -> dict[str, float]:
    """The loss and metrics of ``net`` on ``(x, y)`` in evaluation mode.

    Predictions are computed in chunks of ``batch_size`` (``training=False``:
    no dropout, batch-norm running statistics), joined, and scored once, so the
    result does not depend on ``batch_size``.

    Args:
        net: a built network.
        x: ``(n, *input_shape)`` inputs.
        y: ``(n, ...)`` targets as ``loss_fn`` expects them.
        loss_fn: an ``fnn.losses.Loss``.
        metrics: functions ``(pred, y) -> float`` such as ``fnn.metrics.accuracy``.
        batch_size: examples per forward pass (memory only).

    Returns:
        ``{"loss": ..., <metric name>: ...}`` as Python floats.

    Raises:
        TypeError: bad data or metric objects.
        ValueError: lengths differ or shapes do not fit the network.

    Example:
        >>> import numpy as np, fnn
        >>> net = fnn.init([fnn.Dense(2)], (3,), key=0)
        >>> logs = evaluate(net, np.ones((4, 3)), np.array([0, 1, 0, 1]),
        ...                 fnn.losses.sparse_softmax_cross_entropy, [fnn.metrics.accuracy])
        >>> sorted(logs), logs["accuracy"]
        (['accuracy', 'loss'], 0.5)
    """
    who = "fnn.evaluate"
    if not isinstance(loss_fn, Loss):
        raise TypeError(f"{who}: loss_fn must be an fnn.losses.Loss, got {type(loss_fn).__name__}")
    x, y = check_pair(who, x, y)
    size = check_positive_int(who, "batch_size", batch_size)
    names = metric_names(who, metrics)
    pred = _predict(net, x, size)
    logs = {"loss": loss_fn(pred, y)}
    for name, m in zip(names, metrics, strict=True):
        logs[name] = float(m(pred, y))
    return logs


def _predict(net: Network, x: Array, batch_size: int) -> Array:
    if x.shape[0] <= batch_size:
        return forward(net, x)
    chunks = [forward(net, x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return np.concatenate(chunks)


