"""Argument checks shared by the dataset modules (not public API)."""

from __future__ import annotations

import numpy as np


def positive(who: str, name: str, value: object) -> int:
    """``value`` as an int if it is a positive int (bools refused); else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    return int(value)

