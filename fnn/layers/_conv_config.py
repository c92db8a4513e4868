"""Configuration helpers shared by Conv2D and the pooling layers (private).

Pairs, paddings and output sizes: converters normalise what they can and leave
anything else untouched, so that the validators (which know the layer's class
name) can report it. ``fnn.layers._im2col`` re-exports every name.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fnn.layers._base import Array

__all__ = [
    "Pads",
    "check_channels",
    "check_padding",
    "check_pair",
    "image_shape",
    "out_size",
    "resolve_padding",
    "to_padding",
    "to_pair",
]

Pads = tuple[tuple[int, int], tuple[int, int]]
"""``((top, bottom), (left, right))`` padding of the two spatial axes."""


def out_size(n: int, k_eff: int, stride: int, before: int, after: int) -> int:
    """Output length of a window of extent ``k_eff`` sliding over ``n`` padded cells.

    ``floor((n + before + after − k_eff) / stride) + 1``; 0 or less means the
    window does not fit.
    """
    return (n + before + after - k_eff) // stride + 1


def resolve_padding(
    padding: str | Pads,
    in_hw: tuple[int, int],
    k_eff: tuple[int, int],
    strides: tuple[int, int],
) -> Pads:
    """Explicit pads for ``"valid"``, ``"same"`` or already explicit padding.

    ``"same"`` follows the TensorFlow rule: the output has ``ceil(n / stride)``
    cells and the total padding ``max((out − 1)·stride + k_eff − n, 0)`` is split
    with the extra cell (if odd) at the bottom/right.
    """
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        pads = []
        for n, k, s in zip(in_hw, k_eff, strides, strict=True):
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        return (pads[0], pads[1])
    if isinstance(padding, str):  # validated by the layers; kept for a clear failure
        raise ValueError(f"unknown padding {padding!r}")
    return padding


# validators (which know the layer's class name) can report it.


def _is_int(v: object) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def to_pair(value: Any) -> Any:
    """``3 -> (3, 3)``; ``(3, 2) -> (3, 2)``; anything else unchanged."""
    if _is_int(value):
        return (int(value), int(value))
    if isinstance(value, tuple | list) and len(value) == 2 and all(_is_int(v) for v in value):
        return (int(value[0]), int(value[1]))
    return value


def check_pair(instance: object, attribute: object, value: Any) -> None:
    """attrs validator: a pair of positive ints (after :func:`to_pair`)."""
    name = getattr(attribute, "name", "value")
    if not (isinstance(value, tuple) and len(value) == 2 and all(_is_int(v) for v in value)):
        raise TypeError(
            f"{type(instance).__name__}: {name} must be an int or a pair of ints, got {value!r}"
        )
    if min(value) < 1:
        raise ValueError(
            f"{type(instance).__name__}: {name} must be positive, got {value!r}; "
            f"use {name}=1 for the default"
        )


def to_padding(value: Any) -> Any:
    """``"valid"``/``"same"`` (any case), ``p``, ``(ph, pw)``, ``((t, b), (l, r))`` -> canonical."""
    if isinstance(value, str):
        return value.lower()
    pair = to_pair(value)
    if isinstance(pair, tuple) and len(pair) == 2 and all(_is_int(v) for v in pair):
        return ((pair[0], pair[0]), (pair[1], pair[1]))
    if isinstance(value, tuple | list) and len(value) == 2:
        pairs = tuple(to_pair(v) for v in value)
        if all(isinstance(p, tuple) and all(_is_int(v) for v in p) for p in pairs):
            return pairs
    return value


def check_padding(instance: object, attribute: object, value: Any) -> None:
    """attrs validator: ``"valid"``, ``"same"`` or non-negative explicit pads."""
    who = type(instance).__name__
    if isinstance(value, str):
        if value not in ("valid", "same"):
            raise ValueError(
                f"{who}: padding must be 'valid', 'same' or explicit pads, got {value!r}"
            )
        return
    ok = (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(p, tuple) and len(p) == 2 and all(_is_int(v) for v in p) for p in value)
    )
    if not ok:
        raise TypeError(
            f"{who}: padding must be 'valid', 'same', an int, (pad_h, pad_w) or "
            f"((top, bottom), (left, right)), got {value!r}"
        )
    if min(min(p) for p in value) < 0:
        raise ValueError(f"{who}: padding must be non-negative, got {value!r}")


def image_shape(who: str, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``in_shape`` as ``(height, width, channels)``, or a ValueError naming the fix."""
    if len(in_shape) != 3:
        raise ValueError(
            f"{who}: expects images of shape (batch, height, width, channels), but the input "
            f"is (batch, {', '.join(map(str, in_shape))}); for grey-scale images add a "
            "channel axis with Reshape((height, width, 1))"
        )
    return in_shape[0], in_shape[1], in_shape[2]


def check_channels(who: str, x: Array, channels: int) -> None:
    """Refuse ``x`` whose last axis is not ``channels``; spot ``(batch, channels, h, w)``."""
    if x.shape[3] == channels:
        return
    hint = (
        " it looks like (batch, channels, height, width): images are "
        "(batch, height, width, channels), use x.transpose(0, 2, 3, 1)"
        if x.shape[1] == channels
        else " check the layer before this one"
    )
    raise ValueError(
        f"{who}: x has shape {x.shape} but this layer was built for {channels} channels "
        f"(batch, height, width, {channels});{hint}"
    )
