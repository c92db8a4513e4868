"""The two helpers every training script needs: a train/validation split and one-hot rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fnn import _arrays
from fnn.datasets._checks import positive as _positive
from fnn.random import KeyLike, as_key, generator
from fnn.tree import readonly

__all__ = ["one_hot", "train_val_split"]

def train_val_split(
    x: np.ndarray, y: np.ndarray, *, val_fraction: float, key: KeyLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split examples at random into training and validation parts.

    ``n_val = ceil(val_fraction · n)`` examples, chosen by a permutation from
    ``key``, go to validation; the rest to training. Both parts keep the
    original order of their examples. Same key, same split.

    Args:
        x: ``(n, ...)`` inputs.
        y: ``(n, ...)`` targets.
        val_fraction: in (0, 1).
        key: an ``fnn.random.Key`` or int seed.

    Returns:
        ``(x_train, y_train, x_val, y_val)``, read-only copies.

    Raises:
        TypeError: ``x`` or ``y`` is not an array.
        ValueError: different lengths, ``val_fraction`` outside (0, 1), or a part
            would be empty.

    Example:
        >>> x, y = np.arange(10).reshape(5, 2), np.arange(5)
        >>> x_tr, y_tr, x_va, y_va = train_val_split(x, y, val_fraction=0.4, key=0)
        >>> len(y_tr), len(y_va), sorted(y_tr.tolist() + y_va.tolist())
        (3, 2, [0, 1, 2, 3, 4])
    """
    who = "fnn.datasets.train_val_split"
    x, y = _arrays.plain(who, "x", x), _arrays.plain(who, "y", y)
    for name, a in (("x", x), ("y", y)):
        if not isinstance(a, np.ndarray) or a.ndim == 0:
            raise TypeError(f"{who}: {name} must be an array with a batch axis, got {a!r:.60}")
    if len(x) != len(y):
        raise ValueError(
            f"{who}: x has {len(x)} examples but y has {len(y)}; both need the batch axis first"
        )
    if isinstance(val_fraction, bool) or not 0 < val_fraction < 1:
        raise ValueError(f"{who}: val_fraction must be in (0, 1), got {val_fraction!r}")
    n = len(x)
    n_val = math.ceil(val_fraction * n)
    if n_val >= n:
        raise ValueError(
            f"{who}: val_fraction={val_fraction} of {n} examples leaves no training examples"
        )
    perm = generator(as_key(key, who)).permutation(n)
    val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    return readonly(x[train]), readonly(y[train]), readonly(x[val]), readonly(y[val])


def one_hot(labels: np.ndarray, num_classes: int, dtype: Any = np.float32) -> np.ndarray:
    """One-hot rows: ``out[..., c] = 1`` where ``labels == c``, else 0.

    Args:
        labels: integer array of any shape, values in ``[0, num_classes)``.
        num_classes: the number of classes.
        dtype: dtype of the result.

    Returns:
        A read-only array of shape ``(*labels.shape, num_classes)``.

    Raises:
        TypeError: ``labels`` is not an integer array.
        ValueError: a label is out of range, or ``num_classes`` is not a positive int.

    Example:
        >>> one_hot(np.array([1, 0]), 2, dtype=np.int64).tolist()
        [[0, 1], [1, 0]]
    """
    who = "fnn.datasets.one_hot"
    num_classes = _positive(who, "num_classes", num_classes)
    labels = np.asarray(_arrays.plain(who, "labels", labels))
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"{who}: labels must be integers, got dtype {labels.dtype}; "
            "use labels.astype(np.int64) if they are whole numbers"
        )
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{who}: label {labels[where]} at index {where} is outside [0, {num_classes}); "
            "check num_classes or the labels"
        )
    out = labels[..., None] == np.arange(num_classes)
    return readonly(out.astype(dtype))
