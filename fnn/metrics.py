"""Evaluation metrics: plain functions of predictions and targets, returning floats.

A metric is a function ``(pred, y) -> float``: ``accuracy``, ``mse``, ``mae``
and ``r2_score`` can be called directly or passed to ``fnn.fit(metrics=[...])``,
which logs them under their ``__name__`` (and ``val_<name>`` on validation
data). `Metric` gives a name to any other function, e.g. a lambda.

Conventions: the batch axis is first; a metric is the mean over examples
(``r2_score`` is a ratio over the whole batch). Targets are never broadcast
against predictions.

Example:
    >>> import numpy as np
    >>> from fnn import metrics
    >>> logits = np.array([[2.0, 0.1], [0.3, 0.9], [1.0, 0.0]])
    >>> metrics.accuracy(logits, np.array([0, 1, 1]))
    0.6666666666666666
    >>> metrics.accuracy.__name__
    'accuracy'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from fnn import _arrays

Array = np.ndarray

__all__ = [
    "Metric",
    "accuracy",
    "confusion_matrix",
    "higher_is_better",
    "mae",
    "mse",
    "r2_score",
    "top_k_accuracy",
]


def _check_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.isidentifier():
        raise ValueError(
            f"fnn.metrics.Metric: name must be a non-empty identifier such as 'accuracy', "
            f"got {value!r}; it becomes a key of the training history"
        )


def _check_callable(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise TypeError(
            f"fnn.metrics.Metric: fn must be a function (pred, y) -> float, "
            f"got {type(value).__name__}"
        )


@attrs.frozen
class Metric:
    """A named metric: ``metric(pred, y)`` returns a Python float.

    Wrap a function to give it a name in training logs, e.g. top-5 accuracy:
    ``Metric("top5", lambda p, y: top_k_accuracy(p, y, 5))``.

    Attributes:
        name: the key in ``fit``'s history (an identifier, e.g. ``"accuracy"``).
        fn: ``(pred, y) -> float`` on a batch.
        higher_is_better: ``True`` for scores (accuracy, R²), ``False`` for
            errors (MSE); early stopping uses it when its ``mode`` is ``"auto"``.

    Raises:
        ValueError: ``name`` is not an identifier.
        TypeError: ``fn`` is not callable.

    Example:
        >>> import numpy as np
        >>> top1 = Metric("top1", lambda p, y: top_k_accuracy(p, y, 1))
        >>> top1(np.array([[0.0, 1.0]]), np.array([1]))
        1.0
    """

    name: str = attrs.field(validator=_check_name)
    fn: Callable[[Array, Array], float] = attrs.field(validator=_check_callable, repr=False)
    higher_is_better: bool = attrs.field(default=True, kw_only=True)

    def __call__(self, pred: Array, y: Array) -> float:
        return float(self.fn(pred, y))


def _check_array(who: str, name: str, a: object) -> Array:
    a = _arrays.plain(who, name, a)
    if not isinstance(a, np.ndarray):
        raise TypeError(
            f"{who}: {name} must be a NumPy array, got {type(a).__name__}; use np.asarray"
        )
    if a.ndim == 0 or a.shape[0] == 0:
        raise ValueError(f"{who}: {name} must have a non-empty batch axis, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(
            f"{who}: {name} has shape {a.shape}, which holds no values per example; "
            "check the output layer size"
        )
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
            or a.dtype == np.bool_):
        raise TypeError(f"{who}: {name} must be numeric, got dtype {a.dtype}")
    return a


def _labels(who: str, y: object, batch: int, classes: int | None) -> Array:
    """Integer class labels of shape ``(batch,)`` from int labels or one-hot rows."""
    y = _check_array(who, "labels", y)
    if y.ndim == 2 and classes is not None and y.shape == (batch, classes):
        return np.asarray(y.argmax(axis=1))
    if y.shape != (batch,):
        raise ValueError(
            f"{who}: labels have shape {y.shape}; expected integer labels of shape ({batch},) "
            f"or one-hot rows of shape ({batch}, {classes}); "
            f"{'flatten them with y.ravel()' if y.size == batch else 'one label per example'}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{who}: labels must be integers, got dtype {y.dtype}; use y.astype(int)")
    if classes is not None and (y.min() < 0 or y.max() >= classes):
        raise ValueError(
            f"{who}: labels must be in 0..{classes - 1} for {classes} classes, "
            f"got values in {y.min()}..{y.max()}"
        )
    return y


def _predicted_classes(who: str, pred: object) -> tuple[Array, int | None]:
    """Predicted labels and the class count (``None`` for a single output column)."""
    pred = _check_array(who, "pred", pred)
    if pred.ndim == 2 and pred.shape[1] > 1:
        return np.asarray(pred.argmax(axis=1)), pred.shape[1]
    if pred.ndim == 1 or pred.shape[1:] == (1,):
        raise ValueError(
            f"{who}: pred has shape {pred.shape}, a single score per example; for binary "
            "outputs threshold first, e.g. accuracy of (p > 0.5).astype(int) against labels "
            "via np.mean, or give the network two output units"
        )
    raise ValueError(f"{who}: pred must have shape (batch, classes), got {pred.shape}")


def accuracy(pred: Array, labels: Array) -> float:
    """Fraction of examples whose arg-max class equals the label.

    ``accuracy = mean_i [argmax_c pred[i, c] == label_i]``.

    Args:
        pred: ``(batch, classes)`` logits or probabilities (same arg-max).
        labels: ``(batch,)`` integer labels or ``(batch, classes)`` one-hot rows.

    Returns:
        A float in [0, 1].

    Raises:
        TypeError: not NumPy arrays, or float labels.
        ValueError: shapes do not match, a single output column, or a label is
            out of range.

    Example:
        >>> import numpy as np
        >>> accuracy(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[1, 0], [1, 0]]))
        0.5
    """
    who = "fnn.metrics.accuracy"
    predicted, classes = _predicted_classes(who, pred)
    y = _labels(who, labels, predicted.shape[0], classes)
    return float((predicted == y).mean())


def top_k_accuracy(logits: Array, labels: Array, k: int) -> float:
    """Fraction of examples whose label is among the ``k`` highest scores.

    ``top_k(z, y) = mean_i [y_i ∈ argtop_k z[i, :]]``; ties are broken by
    position (NumPy's partition), so it equals :data:`accuracy` for ``k = 1``
    when the scores have no ties.

    Args:
        logits: ``(batch, classes)`` scores.
        labels: ``(batch,)`` integer labels or ``(batch, classes)`` one-hot rows.
        k: how many top classes count, ``1 <= k <= classes``.

    Returns:
        A float in [0, 1].

    Raises:
        TypeError: not arrays, float labels, or ``k`` not an int.
        ValueError: shapes, label range, or ``k`` out of ``1..classes``.

    Example:
        >>> import numpy as np
        >>> z = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])
        >>> top_k_accuracy(z, np.array([2, 1]), k=2)
        1.0
    """
    who = "fnn.metrics.top_k_accuracy"
    z = _check_array(who, "logits", logits)
    if z.ndim != 2:
        raise ValueError(f"{who}: logits must have shape (batch, classes), got {z.shape}")
    if z.dtype == np.bool_:
        raise TypeError(f"{who}: logits must be scores, got dtype bool; use z.astype(np.float32)")
    classes = z.shape[1]
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"{who}: k must be an int, got {type(k).__name__}")
    if not 1 <= k <= classes:
        raise ValueError(f"{who}: k must be in 1..{classes} for {classes} classes, got {k}")
    y = _labels(who, labels, z.shape[0], classes)
    top = np.argpartition(-z, k - 1, axis=1)[:, :k]
    return float((top == y[:, None]).any(axis=1).mean())


def confusion_matrix(labels: Array, predicted: Array, num_classes: int) -> Array:
    """Counts ``C[i, j]`` of examples with true class ``i`` predicted as ``j``.

    Rows are true classes, columns predictions (scikit-learn's layout); the
    diagonal holds the correct predictions and ``C.sum() == batch``.

    Args:
        labels: ``(batch,)`` true integer labels in ``0..num_classes-1``.
        predicted: ``(batch,)`` predicted integer labels, or ``(batch, classes)``
            scores whose arg-max is taken.
        num_classes: the number of classes.

    Returns:
        ``(num_classes, num_classes)`` int64 array.

    Raises:
        TypeError: not arrays, float labels, or ``num_classes`` not an int.
        ValueError: shapes differ or a label is outside ``0..num_classes-1``.

    Example:
        >>> import numpy as np
        >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2)
        array([[1, 0],
               [1, 1]])
    """
    who = "fnn.metrics.confusion_matrix"
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise TypeError(f"{who}: num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 1:
        raise ValueError(f"{who}: num_classes must be >= 1, got {num_classes}")
    pred = _check_array(who, "predicted", predicted)
    if pred.ndim == 2:
        if pred.shape[1] != num_classes:
            raise ValueError(
                f"{who}: predicted scores have {pred.shape[1]} columns but num_classes is "
                f"{num_classes}"
            )
        pred = np.asarray(pred.argmax(axis=1))
    true = _labels(who, labels, pred.shape[0], num_classes)
    pred = _labels(who, pred, true.shape[0], num_classes)
    flat = true.astype(np.int64) * num_classes + pred
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _same_shape(who: str, pred: object, y: object) -> tuple[Array, Array]:
    pred = _check_array(who, "pred", pred)
    y = _check_array(who, "y", y)
    if pred.shape != y.shape:
        hint = (
            " reshape the target with y.reshape(-1, 1)"
            if y.ndim == 1 and pred.shape == (y.shape[0], 1)
            else " targets are never broadcast"
        )
        raise ValueError(f"{who}: pred has shape {pred.shape} but y has {y.shape};{hint}")
    return pred.astype(np.float64, copy=False), y.astype(np.float64, copy=False)


@_arrays.underflow_retried
def mse(pred: Array, y: Array) -> float:
    """Mean squared error ``mean((pred − y)²)`` over every element, in float64.

    Args:
        pred: predictions of any shape ``(batch, ...)``.
        y: targets of exactly the same shape (never broadcast).

    Returns:
        A non-negative float.

    Raises:
        TypeError: not numeric NumPy arrays.
        ValueError: the shapes differ or the batch is empty.

    Example:
        >>> import numpy as np
        >>> mse(np.array([[1.0], [2.0]]), np.array([[3.0], [2.0]]))
        2.0
    """
    p, t = _same_shape("fnn.metrics.mse", pred, y)
    return float(np.mean((p - t) ** 2))


@_arrays.underflow_retried
def mae(pred: Array, y: Array) -> float:
    """Mean absolute error ``mean(|pred − y|)`` over every element, in float64.

    Args:
        pred: predictions of any shape ``(batch, ...)``.
        y: targets of exactly the same shape (never broadcast).

    Returns:
        A non-negative float.

    Raises:
        TypeError: not numeric NumPy arrays.
        ValueError: the shapes differ or the batch is empty.

    Example:
        >>> import numpy as np
        >>> mae(np.array([[1.0], [2.0]]), np.array([[3.0], [2.0]]))
        1.0
    """
    p, t = _same_shape("fnn.metrics.mae", pred, y)
    return float(np.mean(np.abs(p - t)))


@_arrays.underflow_retried
def r2_score(pred: Array, y: Array) -> float:
    """Coefficient of determination ``R² = 1 − Σ(pred − y)² / Σ(y − ȳ)²``.

    ``ȳ`` is the per-column mean of the targets over the batch, and both sums
    run over every element (the variance-weighted average over outputs). 1 is
    a perfect fit, 0 is as good as predicting the mean, negative is worse.

    Args:
        pred: ``(batch, ...)`` predictions.
        y: targets of the same shape.

    Returns:
        A float ``<= 1``.

    Raises:
        TypeError: not numeric NumPy arrays.
        ValueError: the shapes differ, or the targets are constant (R² is 0/0).

    Example:
        >>> import numpy as np
        >>> r2_score(np.array([[1.0], [2.0], [3.0]]), np.array([[1.0], [2.0], [4.0]]))
        0.7857142857142857
    """
    who = "fnn.metrics.r2_score"
    p, t = _same_shape(who, pred, y)
    ss_tot = float(((t - t.mean(axis=0)) ** 2).sum())
    if ss_tot == 0.0:
        raise ValueError(
            f"{who}: the targets are constant, so R² is undefined (0/0); "
            "use mse or mae, or evaluate on more than one distinct target"
        )
    return 1.0 - float(((p - t) ** 2).sum()) / ss_tot


LOWER_IS_BETTER: frozenset[Callable[[Array, Array], float]] = frozenset({mse, mae})
"""Metric functions where smaller values are better (early stopping's ``mode="auto"``)."""


def higher_is_better(metric: Callable[[Array, Array], float]) -> bool:
    """Whether larger values of ``metric`` are better (accuracy: yes, mse: no).

    A `Metric` says so itself; for plain functions, :data:`mse` and
    :data:`mae` are errors and everything else is taken as a score.

    Example:
        >>> higher_is_better(accuracy), higher_is_better(mse)
        (True, False)
    """
    if isinstance(metric, Metric):
        return metric.higher_is_better
    return metric not in LOWER_IS_BETTER
