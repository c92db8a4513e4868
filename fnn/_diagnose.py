"""Why an input does not fit: the likely cause of a shape mismatch, from the shapes alone.

Shape errors are the first errors a new user meets, and a hint that points the
wrong way costs more than no hint. `shape_hint` looks at the shape a network
(or a layer) was built for and the shape it received, and names a cause only
when the shapes fit it:

=========================================  ==========================================
what came (for a network built for ...)    the hint
=========================================  ==========================================
``(784,)`` for ``(784,)``                  one example without its batch axis: ``x[None]``
``(784, 8)`` for ``(784,)``                transposed: ``x.T``
``(8, 28, 28)`` for ``(784,)``             images into a vector MLP: ``x.reshape(len(x), -1)``
                                           or ``Flatten()`` first
``(28, 28)`` for ``(784,)``                one image: ``x.reshape(1, -1)``
``(8, 785)`` for ``(784,)``                wrong input width (785 = 784 + 1: a label column?)
``(8, 28, 28)`` for ``(28, 28, 1)``        no channel axis: ``x[..., None]``
``(8, 1, 28, 28)`` for ``(28, 28, 1)``     channels first (NCHW): ``x.transpose(0, 2, 3, 1)``
``(8, 784)`` for ``(28, 28, 1)``           flat images: ``x.reshape(-1, 28, 28, 1)``
``(8, 32, 32, 3)`` for ``(28, 28, 1)``     other image size or channels
=========================================  ==========================================

In the ``"dataset"`` context (``fnn evaluate``) a mismatch means the model was
trained on another data set, and the hint says so.

Example:
    >>> shape_hint((784,), (784, 8))
    'x looks transposed (784 rows of 8, not 8 rows of 784): pass x.T'
    >>> shape_hint((28, 28, 1), (8, 28, 28))
    'grey-scale images need a channel axis: pass x[..., None] (shape (batch, 28, 28, 1))'
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

__all__ = ["channels_first_hint", "check_folder", "shape_hint"]

Context = Literal["network", "layer", "dataset"]

_OWNER = {"network": "the network", "layer": "this layer", "dataset": "the model"}


def _dims(shape: tuple[int, ...]) -> str:
    return ", ".join(map(str, shape))


def _tuple(shape: tuple[int, ...]) -> str:
    return f"({shape[0]},)" if len(shape) == 1 else f"({_dims(shape)})"


def _hw(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def shape_hint(
    expected: tuple[int, ...], got: tuple[int, ...], context: Context = "network"
) -> str:
    """The likely cause of an input of shape ``got`` not fitting ``(batch, *expected)``.

    Args:
        expected: one example's shape as built, e.g. ``(784,)`` or ``(28, 28, 1)``.
        got: the whole input's shape, batch axis included if there is one.
        context: who complains: ``"network"`` (an input to ``fnn.forward`` and
            friends), ``"layer"`` (an input to one layer, which may come from the
            layer before it) or ``"dataset"`` (a data set given to a saved model).

    Returns:
        One clause naming the cause and the fix, or ``""`` when no cause fits
        (the caller then states the two shapes and nothing more).
    """
    if tuple(got[1:]) == tuple(expected) and len(got) >= 1:
        return ""
    if context == "dataset":
        return (
            f"this data set's examples have shape {_tuple(got[1:])} but the model was built "
            f"for {_tuple(expected)}; was it trained on another data set? Evaluate it on the "
            "one it was trained on"
        )
    owner = _OWNER[context]
    for rule in (_single_example, _vector_input, _image_input):
        hint = rule(expected, got, owner)
        if hint:
            return hint
    return ""


def _single_example(expected: tuple[int, ...], got: tuple[int, ...], owner: str) -> str:
    """``got`` is one example: the same shape, or one image for a vector or image input."""
    if got == expected:
        return "a single example needs a batch axis: pass x[None]"
    if len(expected) == 1 and len(got) >= 2 and math.prod(got) == expected[0]:
        return (
            f"x holds {expected[0]} values, one example's worth; if it is one "
            f"{_hw(got)} image, flatten it and add a batch axis: x.reshape(1, -1)"
        )
    if len(expected) == 3:
        h, w, c = expected
        if c == 1 and got == (h, w):
            return "one grey-scale image needs a batch and a channel axis: pass x[None, ..., None]"
        if got == (c, h, w):
            return (
                "one image with its channels first: images are (batch, height, width, "
                "channels); pass x.transpose(1, 2, 0)[None]"
            )
    return ""


def _vector_input(expected: tuple[int, ...], got: tuple[int, ...], owner: str) -> str:
    """``expected`` is ``(d,)``: transposed, unflattened images, or another width."""
    if len(expected) != 1 or len(got) < 2:
        return ""
    (d,) = expected
    if len(got) >= 3 and math.prod(got[1:]) == d:
        fix = (
            "put fnn.Flatten() before this layer"
            if owner == "this layer"
            else "make fnn.Flatten() the first layer and build the network for "
            f"input_shape={_tuple(got[1:])}"
        )
        return (
            f"x holds images of {_hw(got[1:])} but {owner} takes vectors of {d} values: "
            f"flatten them with x.reshape(len(x), -1), or {fix}"
        )
    if len(got) == 2 and got[0] == d:
        return f"x looks transposed ({d} rows of {got[1]}, not {got[1]} rows of {d}): pass x.T"
    if len(got) == 2:
        extra = (
            f" ({got[1]} = {d} + 1: is a label or index column still in x?)"
            if got[1] == d + 1
            else ""
        )
        where = "the input width or the layer before this one" if owner == "this layer" else (
            "the input width"
        )
        return f"{owner} takes {d} values per example but x has {got[1]}{extra}; check {where}"
    return ""


def _image_input(expected: tuple[int, ...], got: tuple[int, ...], owner: str) -> str:
    """``expected`` is ``(height, width, channels)``: a missing or misplaced channel axis."""
    if len(expected) != 3 or len(got) < 2:
        return ""
    h, w, c = expected
    rest = tuple(got[1:])
    if rest == (h, w):
        if c == 1:
            return (
                "grey-scale images need a channel axis: pass x[..., None] "
                f"(shape (batch, {h}, {w}, 1))"
            )
        return f"x has no channel axis but {owner} takes {c} channels per pixel"
    if rest == (c, h, w):
        return (
            "x looks like (batch, channels, height, width): images are (batch, height, width, "
            "channels), so pass x.transpose(0, 2, 3, 1)"
        )
    if rest == (h * w * c,):
        return f"x holds flat vectors; {owner} takes images: pass x.reshape(-1, {h}, {w}, {c})"
    if len(rest) == 3 and rest[:2] == (h, w):
        return (
            f"x has {rest[2]} channels per pixel but {owner} takes {c}; "
            "check the input's channels"
        )
    if len(rest) == 3 and rest[2] == c:
        return (
            f"x holds {_hw(rest[:2])} images but {owner} was built for {_hw((h, w))}; resize "
            f"them, or build the network for input_shape={_tuple(rest)}"
        )
    return ""


def channels_first_hint(in_shape: tuple[int, ...]) -> str:
    """A clause for an ``init`` input shape that looks like ``(channels, height, width)``.

    Input shapes are ``(height, width, channels)`` without the batch axis; a
    first axis of 1, 3 or 4 followed by two larger ones is channels first.

    Example:
        >>> channels_first_hint((1, 28, 28)).endswith("use (28, 28, 1)")
        True
        >>> channels_first_hint((28, 28, 1))
        ''
    """
    if len(in_shape) != 3:
        return ""
    c, h, w = in_shape
    if c in (1, 3, 4) and min(h, w) > 4:
        return (
            "input shapes are (height, width, channels) without the batch axis, and "
            f"{_tuple(in_shape)} looks like (channels, height, width): use {_tuple((h, w, c))}"
        )
    return ""


def check_folder(who: str, path: str | os.PathLike[str]) -> Path:
    """``path`` as a `Path`, or a clear error when the folder it goes into does not exist.

    Writers call this before any work, so a typo in an output folder costs
    nothing (rather than failing after a long run, losing its results).

    Raises:
        FileNotFoundError: the folder does not exist; names it and the fix.
        NotADirectoryError: the "folder" is a file.

    Example:
        >>> check_folder("f", "/no/such/folder/a.png")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: f: the folder '/no/such/folder' does not exist; create it first ...
    """
    target = Path(path)
    folder = target.parent
    if folder.is_dir():
        return target
    if folder.exists():
        raise NotADirectoryError(f"{who}: {str(folder)!r} is a file, not a folder; write elsewhere")
    raise FileNotFoundError(
        f"{who}: the folder {str(folder)!r} does not exist; create it first "
        f"(os.makedirs({str(folder)!r}, exist_ok=True)) or write somewhere else"
    )
