"""Generated toy problems: XOR, the tutorial's linear regression, two spirals.

Random ones take an explicit key: the same key gives the same data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fnn import _arrays
from fnn.datasets._checks import positive as _positive
from fnn.random import KeyLike, as_key, generator
from fnn.tree import readonly

__all__ = ["linear_regression", "two_spirals", "xor"]

def xor(dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points: ``x`` ``(4, 2)`` in {0, 1}², ``y = x₀ XOR x₁`` of shape ``(4, 1)``.

    Example:
        >>> x, y = xor()
        >>> x.tolist()
        [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    """
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    y = np.array([[0], [1], [1], [0]], dtype=dtype)
    return readonly(x), readonly(y)


@_arrays.underflow_retried
def linear_regression(
    key: KeyLike,
    n: int = 1000,
    *,
    low: int = 0,
    high: int = 100,
    bias: float = 0.0,
    dtype: Any = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's regression toy: integer inputs and ``target = x + 2y + 3z + bias``.

    ``x`` has three columns of integers drawn uniformly from ``[low, high)``
    (0-99 by default); the classic extrapolation check draws a validation set
    from ``low=5000, high=10000``. The target is exact (no noise).

    Args:
        key: an ``fnn.random.Key`` or int seed; same key, same data.
        n: number of rows.
        low, high: the integer range of the inputs.
        bias: added to every target (0 by default, as in the tutorial).
        dtype: dtype of both arrays.

    Returns:
        ``(x, y)`` of shapes ``(n, 3)`` and ``(n, 1)``.

    Raises:
        ValueError: ``n`` not a positive int or ``low >= high``.

    Example:
        >>> x, y = linear_regression(0, 2)
        >>> bool((y[:, 0] == x[:, 0] + 2 * x[:, 1] + 3 * x[:, 2]).all())
        True
    """
    who = "fnn.datasets.linear_regression"
    n = _positive(who, "n", n)
    if not low < high:
        raise ValueError(f"{who}: need low < high, got low={low}, high={high}")
    if isinstance(bias, bool) or not isinstance(bias, int | float | np.integer | np.floating):
        raise TypeError(f"{who}: bias must be a real number, got {bias!r}")
    if not math.isfinite(_arrays.real(bias)):
        raise ValueError(f"{who}: bias must be a finite number, got {_arrays.short(bias)}")
    x = generator(as_key(key, who)).integers(low, high, size=(n, 3)).astype(np.float64)
    y = x @ np.array([[1.0], [2.0], [3.0]]) + bias
    return readonly(x.astype(dtype)), readonly(y.astype(dtype))


@_arrays.underflow_retried
def two_spirals(
    key: KeyLike,
    n_per_class: int = 100,
    *,
    noise: float = 0.0,
    turns: float = 1.5,
    dtype: Any = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in the plane, a classic non-linear binary problem.

    For ``u ~ U(0, 1)``: angle ``t = 2π·turns·√u``, radius ``r = √u``; class 0 is
    ``(r cos t, r sin t)``, class 1 the same rotated by π; then Gaussian noise
    of standard deviation ``noise`` is added to both coordinates.

    Args:
        key: an ``fnn.random.Key`` or int seed.
        n_per_class: points per class.
        noise: standard deviation of the added noise (radius is at most 1).
        turns: how many times each arm winds round.
        dtype: dtype of ``x``.

    Returns:
        ``(x, y)``: ``x`` ``(2·n_per_class, 2)``; ``y`` ``(2·n_per_class,)`` int64
        labels, the first ``n_per_class`` are 0. For a sigmoid output with binary
        cross-entropy use ``y[:, None].astype(np.float32)``.

    Raises:
        ValueError: ``n_per_class`` not a positive int, negative ``noise`` or ``turns <= 0``.

    Example:
        >>> x, y = two_spirals(0, 5)
        >>> x.shape, y.tolist()
        ((10, 2), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    """
    who = "fnn.datasets.two_spirals"
    n = _positive(who, "n_per_class", n_per_class)
    finite = math.isfinite(_arrays.real(noise)) and math.isfinite(_arrays.real(turns))
    if not (finite and noise >= 0 and turns > 0):
        raise ValueError(f"{who}: need noise >= 0 and turns > 0, got noise={noise}, turns={turns}")
    rng = generator(as_key(key, who))
    r = np.sqrt(rng.uniform(0.0, 1.0, size=n))
    t = 2 * np.pi * turns * r
    arm = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    x = np.concatenate([arm, -arm]) + noise * rng.standard_normal((2 * n, 2))
    y = np.repeat(np.array([0, 1], dtype=np.int64), n)
    return readonly(x.astype(dtype)), readonly(y)
