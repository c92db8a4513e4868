"""Argument checks shared by the optimizer, schedule and transform constructors."""

from __future__ import annotations

import math

import numpy as np

from fnn import _arrays


def number(
    who: str,
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    hint: str = "",
) -> float:
    """Return ``value`` as a finite float inside ``[low, high]`` (ends open if asked).

    Raises ``TypeError`` for a non-number and ``ValueError`` for NaN, infinity
    or a value outside the range; the message names ``who`` and ``name``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{who}: {name} must be a number, got {type(value).__name__}")
    x = _arrays.real(value)  # an int beyond float range is ±inf here, never OverflowError
    bad = not math.isfinite(x)
    if low is not None:
        bad = bad or (x <= low if low_open else x < low)
    if high is not None:
        bad = bad or (x >= high if high_open else x > high)
    if bad:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        interval = f"{lo or '(-inf'}, {hi or 'inf)'}"
        raise ValueError(
            f"{who}: {name} must be a finite number in {interval}, got {_arrays.short(value)}"
            + (f"; {hint}" if hint else "")
        )
    return x


def count(who: str, name: str, value: object, *, minimum: int) -> int:
    """Return ``value`` as an ``int >= minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{who}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{who}: {name} must be an int >= {minimum}, got {value}")
    return int(value)

