"""Walking params, grads and optimizer state together; argument and mask checks.

Private to ``fnn.optim``: the helpers behind ``Optimizer.update``.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from fnn import tree
from fnn.optim.schedules import Schedule

Array = np.ndarray
Mask = Any
"""A predicate ``path -> bool`` on leaf paths such as ``"layers[0].w"``, or a tree
like ``params`` whose leaves are boolean arrays of shape ``()``."""


def rate(who: str, schedule: Schedule, step: int) -> float:
    """The schedule's rate at ``step``, checked to be a finite number >= 0."""
    value = schedule(step)
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(
            f"{who}: the lr schedule returned {type(value).__name__} at step {step}; "
            "a schedule must return a float"
        )
    if not math.isfinite(float(value)) or value < 0:
        raise ValueError(
            f"{who}: the lr schedule returned {value} at step {step}; "
            "a learning rate must be finite and >= 0"
        )
    return float(value)


class Collect:
    """A leaf function that records the leaf tuples ``(p, g, *slots)`` in leaf order."""

    def __init__(self) -> None:
        self.rows: list[tuple[Array, ...]] = []

    def __call__(self, *xs: Array) -> Array:
        self.rows.append(xs)
        return xs[0]


@attrs.frozen
class Mapped:
    result: Any
    rows: list[tuple[Array, ...]]


def map_checked(
    who: str, f: Any, params: Any, grads: Any, slot_trees: list[Any], names: tuple[str, ...]
) -> Mapped:
    """``tree.map(f, params, grads, *slot_trees)``, saying which tree does not match."""
    try:
        result = tree.map(f, params, grads, *slot_trees)
    except ValueError:
        try:
            tree.check_same_structure(params, grads)
        except ValueError as err:
            raise ValueError(
                f"{who}: grads do not match params: {err}; pass the gradient of these params, "
                "e.g. fnn.grad(net, x, y, loss_fn)"
            ) from None
        for name, slot in zip(names, slot_trees, strict=True):
            try:
                tree.check_same_structure(params, slot)
            except ValueError as err:
                raise ValueError(
                    f"{who}: state.slots[{name!r}] does not match params: {err}; the state was "
                    "built for other params: re-create the state with opt.init(params)"
                ) from None
        raise
    return Mapped(result, f.rows if isinstance(f, Collect) else [])


def check_dtypes(
    who: str, params: Any, i: int, row: tuple[Array, ...], names: tuple[str, ...]
) -> None:
    dt = row[0].dtype
    for k, a in enumerate(row[1:]):
        if a.dtype != dt:
            path = tree.leaves_with_path(params)[i][0]
            what = "grads" if k == 0 else f"state.slots[{names[k - 1]!r}]"
            raise TypeError(
                f"{who}: {what} at {path} has dtype {a.dtype} but the parameter is {dt}; "
                f"cast with fnn.tree.map(lambda a: a.astype(np.{dt}), ...) "
                "(fnn never changes a network's dtype silently)"
            )


def rebuild(like: Any, leaves: list[Array]) -> Any:
    """A tree with the structure of ``like`` and ``leaves`` in leaf order."""
    it = iter(leaves)
    return tree.map(lambda _: next(it), like)


def resolve_mask(who: str, what: str, mask: Mask, paths: list[str]) -> list[bool]:
    """Evaluate a predicate or boolean tree to one bool per leaf path."""
    if callable(mask):
        out = []
        for path in paths:
            value = mask(path)
            if not isinstance(value, bool | np.bool_):
                raise TypeError(
                    f"{who}: the {what} must return a bool for each path, got "
                    f"{type(value).__name__} for {path!r}"
                )
            out.append(bool(value))
        return out
    pairs = tree.leaves_with_path(mask)
    mask_paths = [p for p, _ in pairs]
    if mask_paths != paths:
        where = next(
            (f"{a} vs {b}" for a, b in zip(paths, mask_paths, strict=False) if a != b),
            f"{len(paths)} leaves vs {len(mask_paths)}",
        )
        raise ValueError(
            f"{who}: the {what} tree does not match params ({where}); give a predicate of the "
            "path, or build the tree with fnn.tree.map(lambda p: np.array(True), params)"
        )
    out = []
    for path, leaf in pairs:
        if leaf.shape != () or leaf.dtype != np.bool_:
            raise ValueError(
                f"{who}: the {what} tree must hold boolean arrays of shape (), got "
                f"{leaf.dtype} of shape {leaf.shape} at {path}; use np.array(True)"
            )
        out.append(bool(leaf))
    return out
