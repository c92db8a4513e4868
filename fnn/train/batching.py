"""Mini-batches of a dataset, shuffled by an explicit key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from fnn.random import KeyLike, as_key, generator
from fnn.train._checks import Array, check_pair, check_positive_int, take

__all__ = ["batches"]


def batches(
    x: Array,
    y: Array | tuple[Array, ...],
    batch_size: int,
    *,
    key: KeyLike | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[Array, Any]]:
    """Split ``(x, y)`` into consecutive mini-batches, shuffled by ``key``.

    With a key, example order is the permutation ``π = permutation(key, n)`` and
    batch ``i`` holds ``π[i·B : (i+1)·B]`` (fancy indexing: each example is
    copied once per epoch). Without a key, batches are views in order (no
    copy). The same key always gives the same batches.

    Args:
        x: ``(n, ...)`` inputs.
        y: ``(n, ...)`` targets, or a tuple of such arrays (such as ``(labels,
            mask)`` for a masked loss), each batched like ``x``.
        batch_size: ``B >= 1``.
        key: shuffling key (``None``: keep the order).
        drop_last: drop the last batch when it has fewer than ``B`` examples.

    Returns:
        An iterator of ``(x_batch, y_batch)``; ``ceil(n / B)`` batches (or
        ``floor`` with ``drop_last``).

    Raises:
        TypeError: ``x`` or ``y`` is not an array, or ``batch_size`` not an int.
        ValueError: lengths differ, empty data, or ``batch_size < 1``.

    Example:
        >>> import numpy as np
        >>> [xb.tolist() for xb, _ in batches(np.arange(5), np.arange(5), 2)]
        [[0, 1], [2, 3], [4]]
        >>> sorted(int(v) for xb, _ in batches(np.arange(5), np.arange(5), 2, key=0) for v in xb)
        [0, 1, 2, 3, 4]
    """
    who = "fnn.batches"
    x, y = check_pair(who, x, y)
    size = check_positive_int(who, "batch_size", batch_size)
    order = None if key is None else generator(as_key(key, who)).permutation(x.shape[0])
    return _batch_iter(x, y, size, order, drop_last)


def _batch_iter(
    x: Array, y: Any, size: int, order: Array | None, drop_last: bool
) -> Iterator[tuple[Array, Any]]:
    n = x.shape[0]
    stop = n - n % size if drop_last else n
    # Rows of a C-ordered x are gathered with np.take: the same C-ordered copy as x[idx]
    # (other layouts keep x[idx], whose result's layout np.take might not match) and,
    # for batches of images or feature vectors, measurably faster.
    rows = x.ndim > 1 and x.flags.c_contiguous
    for i in range(0, stop, size):
        if order is None:
            yield x[i : i + size], take(y, slice(i, i + size))
        else:
            idx = order[i : i + size]
            yield (np.take(x, idx, axis=0) if rows else x[idx]), take(y, idx)


