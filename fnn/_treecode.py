"""The code generator behind ``fnn.tree``'s compiled treedefs (private to ``fnn.tree``).

For each tree structure, ``fnn.tree`` compiles two straight-line Python
functions: an *extractor* that checks a tree has that structure (container types,
lengths, dict keys, attrs classes, leaf and constant types) while binding its
leaves and constants, and a *builder* that makes a tree of that structure from
leaves and constants, creating attrs instances without running ``__init__``.
Generated code refers to every value through a global of its own (never through
``repr``), so no user value is ever turned into source text. Structures larger
than ``fnn.tree`` allows are built by `slow_builder` instead.

A node of a structure key is `LEAF`, `CONST` or the tuple ``(kind, type, keys,
children)``: ``keys`` are the attrs field names, the dict keys, or ``None`` for
sequences.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Sequence
from typing import Any, cast

__all__ = ["ATTRS", "CONST", "DICT", "LEAF", "LIST", "NAMEDTUPLE", "TUPLE", "Codegen", "Miss",
           "slow_builder"]

LEAF, CONST, TUPLE, LIST, NAMEDTUPLE, DICT, ATTRS = range(7)


class Miss(Exception):
    """A compiled extractor met a tree of another structure."""


def _safe_attr(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("__")


class Codegen:
    """Writes a structure's extractor (tree -> leaves, constants) and builder."""

    def __init__(self) -> None:
        self.glob: dict[str, Any] = {"_Miss": Miss, "_new": object.__new__}
        self.glob["_set"] = object.__setattr__
        self.lines: list[str] = []
        self.n_var = self.n_leaf = self.n_const = 0

    def ref(self, value: Any, prefix: str) -> str:
        name = f"{prefix}{len(self.glob)}"
        self.glob[name] = value
        return name

    def var(self) -> str:
        self.n_var += 1
        return f"v{self.n_var}"

    def extract(
        self, node: Any, expr: str, leaf_types: list[type], const_types: list[type]
    ) -> None:
        """Lines that check ``expr`` has this structure and bind its leaves and constants."""
        if node is LEAF or node is CONST:
            is_leaf = node is LEAF
            name = f"l{self.n_leaf}" if is_leaf else f"c{self.n_const}"
            typ = leaf_types[self.n_leaf] if is_leaf else const_types[self.n_const]
            if is_leaf:
                self.n_leaf += 1
            else:
                self.n_const += 1
            self.lines.append(f"{name} = {expr}")
            self.lines.append(f"if type({name}) is not {self.ref(typ, 'T')}: raise _Miss")
            return
        kind, t, keys, children = node
        v = self.var()
        self.lines.append(f"{v} = {expr}")
        self.lines.append(f"if type({v}) is not {self.ref(t, 'T')}: raise _Miss")
        if kind == ATTRS:
            for name, child in zip(keys, children, strict=True):
                sub = f"{v}.{name}" if _safe_attr(name) else f"getattr({v}, {self.ref(name, 'N')})"
                self.extract(child, sub, leaf_types, const_types)
        elif kind == DICT:
            k = self.ref(keys, "K")
            self.lines.append(f"if tuple({v}) != {k}: raise _Miss")
            for i, child in enumerate(children):
                self.extract(child, f"{v}[{k}[{i}]]", leaf_types, const_types)
        else:
            self.lines.append(f"if len({v}) != {len(children)}: raise _Miss")
            for i, child in enumerate(children):
                self.extract(child, f"{v}[{i}]", leaf_types, const_types)

    def build(self, node: Any) -> str:
        """Lines that build this structure from ``L`` and ``C``; returns the expression."""
        if node is LEAF:
            self.n_leaf += 1
            return f"L[{self.n_leaf - 1}]"
        if node is CONST:
            self.n_const += 1
            return f"C[{self.n_const - 1}]"
        kind, t, keys, children = node
        items = [self.build(c) for c in children]
        v = self.var()
        if kind == ATTRS:
            self.lines.append(f"{v} = _new({self.ref(t, 'T')})")
            for name, item in zip(keys, items, strict=True):
                self.lines.append(f"_set({v}, {self.ref(name, 'N')}, {item})")
        elif kind == DICT:
            k = self.ref(keys, "K")
            pairs = ", ".join(f"{k}[{i}]: {item}" for i, item in enumerate(items))
            self.lines.append(f"{v} = {{{pairs}}}")
        elif kind == LIST:
            self.lines.append(f"{v} = [{', '.join(items)}]")
        elif kind == TUPLE:
            self.lines.append(f"{v} = ({''.join(i + ', ' for i in items)})")
        else:
            self.lines.append(f"{v} = {self.ref(t, 'T')}({', '.join(items)})")
        return v

    def function(self, name: str, args: str, body_end: str) -> Callable[..., Any]:
        src = f"def {name}({args}):\n" + "".join(f"    {ln}\n" for ln in self.lines)
        src += f"    {body_end}\n"
        exec(compile(src, f"<fnn.tree {name}>", "exec"), self.glob)
        return cast(Callable[..., Any], self.glob[name])


def slow_builder(key: Any) -> Callable[[Sequence[Any], Sequence[Any]], Any]:
    """The builder of very large structures, interpreted instead of compiled."""

    def build(leaves: Sequence[Any], consts: Sequence[Any]) -> Any:
        it_l, it_c = iter(leaves), iter(consts)

        def go(node: Any) -> Any:
            if node is LEAF:
                return next(it_l)
            if node is CONST:
                return next(it_c)
            kind, t, keys, children = node
            items = [go(c) for c in children]
            if kind == ATTRS:
                new = object.__new__(t)
                for name, item in zip(keys, items, strict=True):
                    object.__setattr__(new, name, item)
                return new
            if kind == DICT:
                return dict(zip(keys, items, strict=True))
            if kind == LIST:
                return items
            return tuple(items) if kind == TUPLE else t(*items)

        return go(key)

    return build
