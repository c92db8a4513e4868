"""Paths into a network: ``layers[3].body.layers[1].w`` parsed, looked up and replaced.

A path is the string ``fnn.tree`` gives a leaf: attribute names joined by dots
and tuple indices in brackets. These helpers are pure: ``put`` returns new
containers along the path and shares everything else.
"""

from __future__ import annotations

import re
from typing import Any, cast

import attrs

Step = str | int
"""An attribute name or a tuple index."""

_STEP = re.compile(r"\.?([A-Za-z_]\w*)|\[(-?\d+)\]")


def parse(who: str, path: object) -> tuple[Step, ...]:
    """``"layers[3].body"`` -> ``("layers", 3, "body")``; ValueError for anything else."""
    if not isinstance(path, str):
        raise TypeError(
            f"{who}: a path is a string such as 'layers[3].body.layers[1]', "
            f"got {type(path).__name__}"
        )
    steps: list[Step] = []
    pos = 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None or (pos == 0 and path.startswith(".")):
            raise ValueError(
                f"{who}: cannot read the path {path!r} at character {pos}; write paths as "
                "fnn.tree and fnn.summary print them, e.g. 'layers[3].body.layers[1]'"
            )
        steps.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not steps:
        raise ValueError(f"{who}: the path is empty; name a location such as 'layers[0]'")
    return tuple(steps)


def render(steps: tuple[Step, ...]) -> str:
    """The inverse of `parse`."""
    out = ""
    for s in steps:
        out += f"[{s}]" if isinstance(s, int) else (f".{s}" if out else s)
    return out


def _describe(node: object) -> str:
    name = getattr(node, "name", None)
    return name if isinstance(name, str) else type(node).__name__


def step_into(who: str, node: object, step: Step, steps: tuple[Step, ...], depth: int) -> Any:
    """``node.step`` or ``node[step]``, with an error naming the path so far."""
    here = render(steps[:depth]) or "the network"
    if isinstance(step, int):
        if not isinstance(node, tuple):
            raise ValueError(
                f"{who}: {render(steps[: depth + 1])}: {here} is {_describe(node)}, which has "
                "no numbered items"
            )
        if not -len(node) <= step < len(node):
            raise ValueError(
                f"{who}: {render(steps[: depth + 1])} is out of range: {here} holds "
                f"{len(node)} item{'s' if len(node) != 1 else ''} (indices 0 to {len(node) - 1})"
            )
        return node[step]
    if not attrs.has(type(node)):
        raise ValueError(
            f"{who}: {render(steps[: depth + 1])}: {here} is {_describe(node)}, which has no "
            f"field {step!r}"
        )
    names = [f.name for f in attrs.fields(cast(Any, type(node)))]
    if step not in names:
        raise ValueError(
            f"{who}: {render(steps[: depth + 1])}: {here} ({_describe(node)}) has no field "
            f"{step!r}; its fields are {', '.join(names)}"
        )
    return getattr(node, step)


def get(who: str, root: object, steps: tuple[Step, ...]) -> Any:
    """The value at ``steps`` under ``root``."""
    node = root
    for depth, step in enumerate(steps):
        node = step_into(who, node, step, steps, depth)
    return node


def _with(node: object, step: Step, value: object) -> object:
    """A copy of ``node`` with ``value`` at ``step`` (attrs: no validators re-run)."""
    if isinstance(step, int):
        items = list(node)  # type: ignore[call-overload]
        items[step] = value
        return tuple(items)
    new = object.__new__(type(node))
    for f in attrs.fields(cast(Any, type(node))):
        object.__setattr__(new, f.name, value if f.name == step else getattr(node, f.name))
    return new


def put(who: str, root: object, steps: tuple[Step, ...], value: object) -> Any:
    """``root`` with ``value`` at ``steps``: new nodes along the path, the rest shared."""
    chain = [root]
    for depth, step in enumerate(steps[:-1]):
        chain.append(step_into(who, chain[-1], step, steps, depth))
    step_into(who, chain[-1], steps[-1], steps, len(steps) - 1)  # checks the last step
    for node, step in zip(reversed(chain), reversed(steps), strict=True):
        value = _with(node, step, value)
    return value
