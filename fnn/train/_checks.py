"""Argument checks shared by the training modules (not public API)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fnn import _arrays
from fnn import metrics as fnn_metrics

Array = np.ndarray
MetricFn = Callable[[Array, Array], float]


def check_pair(who: str, x: object, y: object, what: str = "data") -> tuple[Array, Any]:
    """``(x, y)`` checked: arrays with a batch axis of one length; ``y`` may be a tuple of
    such arrays (such as ``(labels, mask)`` for the masked losses), batched together."""
    x = _arrays.plain(who, "x", x)
    parts = y if isinstance(y, tuple) and y else (y,)
    parts = tuple(_arrays.plain(who, "y", part) for part in parts)
    if not isinstance(x, np.ndarray) or not all(isinstance(p, np.ndarray) for p in parts):
        bad = next(v for v in (x, *parts) if not isinstance(v, np.ndarray))
        raise TypeError(
            f"{who}: {what} must be a pair of NumPy arrays (x, y), got {type(bad).__name__}; "
            "convert with np.asarray (y may also be a tuple of arrays, such as (labels, mask))"
        )
    shapes = " and ".join(str(p.shape) for p in (x, *parts))
    if x.ndim == 0 or any(p.ndim == 0 for p in parts):
        raise ValueError(f"{who}: {what} x and y need a batch axis, got shapes {shapes}")
    for p in parts:
        if x.shape[0] != p.shape[0]:
            raise ValueError(
                f"{who}: {what} x has {x.shape[0]} examples but y has {p.shape[0]}; "
                "x and y must have the same length along the first (batch) axis"
            )
    if x.shape[0] == 0:
        raise ValueError(f"{who}: {what} is empty; pass at least one example")
    return x, parts if isinstance(y, tuple) and y else parts[0]


def take(y: Any, index: Any) -> Any:
    """``y[index]``, or the tuple of each part's ``[index]`` for a tuple ``y``."""
    if isinstance(y, tuple):
        return tuple(part[index] for part in y)
    return y[index]


def check_positive_int(who: str, name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{who}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{who}: {name} must be >= {minimum}, got {value}")
    return int(value)



def metric_names(who: str, metrics: object) -> list[str]:
    if not isinstance(metrics, tuple | list):
        raise TypeError(
            f"{who}: metrics must be a list of functions such as [fnn.metrics.accuracy], "
            f"got {type(metrics).__name__}"
        )
    return [metric_name(who, m) for m in metrics]


def metric_name(who: str, m: object) -> str:
    if isinstance(m, fnn_metrics.Metric):
        return m.name
    name = getattr(m, "__name__", None)
    if not callable(m) or not isinstance(name, str) or not name.isidentifier():
        raise TypeError(
            f"{who}: each metric must be a function (pred, y) -> float with a name, such as "
            f"fnn.metrics.accuracy, got {m!r}; wrap lambdas as fnn.metrics.Metric('name', fn)"
        )
    return name



def unpack(who: str, pair: object, what: str) -> tuple[object, object]:
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise TypeError(
            f"{who}: {what} must be a pair (x, y) of NumPy arrays, got {type(pair).__name__}"
        )
    return pair[0], pair[1]

