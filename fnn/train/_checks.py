"""Argument checks shared by the training modules (not public API)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fnn import _arrays
from fnn import metrics as fnn_metrics

Array = np.ndarray
MetricFn = Callable[[Array, Array], float]


def check_pair(who: str, x: object, y: object, what: str = "data") -> tuple[Array, Array]:
    x, y = _arrays.plain(who, "x", x), _arrays.plain(who, "y", y)
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        bad = type(x if not isinstance(x, np.ndarray) else y).__name__
        raise TypeError(
            f"{who}: {what} must be a pair of NumPy arrays (x, y), got {bad}; "
            "convert with np.asarray"
        )
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(
            f"{who}: {what} x and y need a batch axis, got shapes {x.shape} and {y.shape}"
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{who}: {what} x has {x.shape[0]} examples but y has {y.shape[0]}; "
            "x and y must have the same length along the first (batch) axis"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{who}: {what} is empty; pass at least one example")
    return x, y


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

