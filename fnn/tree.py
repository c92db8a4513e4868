"""Pytree utilities: NumPy arrays are the leaves, everything else is structure.

A *tree* is any nesting of tuples, lists, dicts and ``attrs`` instances. NumPy
arrays (``np.ndarray``, including 0-d arrays) are its leaves. Everything that is
neither a container nor an array (ints, floats, strings, ``None``, functions,
keys) is *structure*: it is carried through every map untouched, taken from the
first tree.

Two trees that must match and do not raise ``ValueError`` naming the first path
where they differ, e.g. ``layers[2].w: shape (32, 16) vs (16, 32)``.

Every array that a map produces is marked read-only, so a tree built by fnn is a
value: nobody holding it can change it behind someone else's back.

Example:
    >>> import numpy as np
    >>> from fnn import tree
    >>> t = {"a": np.array([1.0, 2.0]), "b": (np.array(3.0), "tag")}
    >>> tree.size(t)
    3
    >>> doubled = tree.scale(t, 2.0)
    >>> float(tree.vdot(t, doubled))
    28.0
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Iterator
from typing import Any, cast

import attrs
import numpy as np

from fnn import _arrays

__all__ = [
    "add",
    "allclose",
    "check_same_structure",
    "leaves",
    "leaves_with_path",
    "map",
    "map_with_path",
    "norm",
    "readonly",
    "scale",
    "size",
    "state_mask",
    "state_paths",
    "sub",
    "vdot",
    "zeros_like",
]

Tree = Any
"""Any nesting of tuples, lists, dicts and attrs instances with array leaves."""

STATE_METADATA_KEY = "fnn_state"
"""attrs field metadata key marking a non-trainable array (e.g. running statistics)."""


def readonly(a: np.ndarray) -> np.ndarray:
    """Return ``a`` itself if already read-only, else a read-only view of it.

    The caller's array keeps its own flags: a view gets the read-only flag, so
    marking never changes an array somebody else holds.
    """
    if not isinstance(a, np.ndarray):
        raise TypeError(f"fnn.tree.readonly: expected a NumPy array, got {type(a).__name__}")
    if not a.flags.writeable:
        return a
    v = a.view()
    v.flags.writeable = False
    return v


def _is_attrs(x: object) -> bool:
    return attrs.has(type(x))


def _children(node: object) -> list[tuple[str, object]] | None:
    """Return ``(path_suffix, child)`` pairs of a container, ``None`` for a non-container."""
    if isinstance(node, tuple | list):
        return [(f"[{i}]", c) for i, c in enumerate(node)]
    if isinstance(node, dict):
        return [(f"[{k!r}]", node[k]) for k in node]
    if _is_attrs(node):
        return [(f".{f.name}", getattr(node, f.name)) for f in attrs.fields(cast(Any, type(node)))]
    return None


def _rebuild(node: object, new_children: list[object]) -> object:
    """Make a container of ``node``'s kind holding ``new_children``."""
    if isinstance(node, list):
        return new_children
    if isinstance(node, tuple):
        if hasattr(node, "_fields"):  # namedtuple
            return cast(Any, type(node))(*new_children)
        return tuple(new_children)
    if isinstance(node, dict):
        return dict(zip(node.keys(), new_children, strict=True))
    # attrs instance: bypass __init__ (the structure was validated when `node` was
    # built; running validators and converters again on every optimizer step
    # would cost more than a small network's arithmetic).
    cls = type(node)
    new = object.__new__(cls)
    for f, v in zip(attrs.fields(cast(Any, cls)), new_children, strict=True):
        object.__setattr__(new, f.name, v)
    return new


def _describe(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"shape {x.shape}"
    kids = _children(x)
    if kids is None:
        return "a non-array value" if x is not None else "None"
    if isinstance(x, dict):
        return f"dict with keys {sorted(map(str, x))}"
    if _is_attrs(x):
        return type(x).__name__
    return f"{type(x).__name__} of length {len(kids)}"


def _mismatch(path: str, first: object, other: object) -> ValueError:
    where = path.lstrip(".") or "<root>"
    return ValueError(
        f"tree structures differ at {where}: {_describe(first)} vs {_describe(other)}; "
        "trees combined by fnn.tree must have the same containers and array shapes"
    )


def _same_kind(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a.keys()) == list(b.keys())
    if isinstance(a, tuple | list):
        return type(a) is type(b) and len(a) == len(b)
    if _is_attrs(a):
        return type(a) is type(b)
    return _children(b) is None


def _map(f: Callable[..., Any], path: str, nodes: tuple[object, ...], with_path: bool) -> object:
    first = nodes[0]
    for other in nodes[1:]:
        if not _same_kind(first, other):
            raise _mismatch(path, first, other)
    if isinstance(first, np.ndarray):
        out = f(path.lstrip("."), *nodes) if with_path else f(*nodes)
        out = np.asarray(out)
        return readonly(out)
    kids = _children(first)
    if kids is None:
        return first
    kids_per_tree = [kids] + [_children(n) for n in nodes[1:]]
    new = [
        _map(f, path + suffix, tuple(k[i][1] for k in kids_per_tree), with_path)  # type: ignore[index]
        for i, (suffix, _) in enumerate(kids)
    ]
    return _rebuild(first, new)


# ---------------------------------------------------------------------------
# The fast path. Optimizers map over whole networks on every step, so the walk
# must cost little next to a small network's arithmetic: the kind of each type
# is computed once and cached, no path strings are built, and attrs instances
# are rebuilt without re-running validators. On a mismatch the slow walk above
# runs again to say where the trees differ.

_LEAF, _LIST, _TUPLE, _NAMEDTUPLE, _DICT, _ATTRS, _OTHER = range(7)
_KINDS: dict[type, int] = {}
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_FIELD_STATE: dict[type, tuple[bool, ...]] = {}


def _kind(t: type) -> int:
    k = _KINDS.get(t)
    if k is None:
        if issubclass(t, np.ndarray):
            k = _LEAF
        elif issubclass(t, list):
            k = _LIST
        elif issubclass(t, tuple):
            k = _NAMEDTUPLE if hasattr(t, "_fields") else _TUPLE
        elif issubclass(t, dict):
            k = _DICT
        elif attrs.has(t):
            k = _ATTRS
            fields = attrs.fields(cast(Any, t))
            _FIELD_NAMES[t] = tuple(f.name for f in fields)
            _FIELD_STATE[t] = tuple(bool(f.metadata.get(STATE_METADATA_KEY)) for f in fields)
        else:
            k = _OTHER
        _KINDS[t] = k
    return k


class _Mismatch(Exception):
    """Raised inside the fast walk; turned into a ValueError with a path."""


def _fast_map(f: Callable[..., Any], nodes: tuple[Any, ...]) -> Any:
    first = nodes[0]
    t = type(first)
    k = _KINDS.get(t)
    if k is None:
        k = _kind(t)
    if k == _LEAF:
        for o in nodes[1:]:
            if not isinstance(o, np.ndarray) or o.shape != first.shape:
                raise _Mismatch
        out = f(*nodes)
        if not isinstance(out, np.ndarray):
            out = np.asarray(out)
        if out.flags.writeable:
            out = out.view()
            out.setflags(write=False)
        return out
    if k == _OTHER:
        for o in nodes[1:]:
            if _kind(type(o)) != _OTHER:
                raise _Mismatch
        return first
    for o in nodes[1:]:
        if type(o) is not t:
            raise _Mismatch
    if k == _ATTRS:
        new = object.__new__(t)
        setattr_ = object.__setattr__
        if len(nodes) == 1:
            for name in _FIELD_NAMES[t]:
                setattr_(new, name, _fast_map(f, (getattr(first, name),)))
        elif len(nodes) == 2:
            second = nodes[1]
            for name in _FIELD_NAMES[t]:
                setattr_(new, name, _fast_map(f, (getattr(first, name), getattr(second, name))))
        else:
            for name in _FIELD_NAMES[t]:
                setattr_(new, name, _fast_map(f, tuple([getattr(n, name) for n in nodes])))
        return new
    if k == _DICT:
        keys = list(first)
        for o in nodes[1:]:
            if list(o) != keys:
                raise _Mismatch
        return {key: _fast_map(f, tuple([n[key] for n in nodes])) for key in keys}
    n_items = len(first)
    for o in nodes[1:]:
        if len(o) != n_items:
            raise _Mismatch
    items = [_fast_map(f, items_i) for items_i in zip(*nodes, strict=True)]
    if k == _LIST:
        return items
    if k == _TUPLE:
        return tuple(items)
    return t(*items)  # namedtuple


def _leaf_out(out: Any) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        out = np.asarray(out)
    if out.flags.writeable:
        out = out.view()
        out.setflags(write=False)
    return cast(np.ndarray, out)


def _map2(f: Callable[..., Any], a: Any, b: Any) -> Any:
    """``_fast_map`` for exactly two trees (every optimizer step), unrolled for speed."""
    t = type(a)
    k = _KINDS.get(t)
    if k is None:
        k = _kind(t)
    if k == _LEAF:
        if not isinstance(b, np.ndarray) or b.shape != a.shape:
            raise _Mismatch
        return _leaf_out(f(a, b))
    if k == _OTHER:
        if _kind(type(b)) != _OTHER:
            raise _Mismatch
        return a
    if type(b) is not t:
        raise _Mismatch
    if k == _ATTRS:
        new = object.__new__(t)
        for name in _FIELD_NAMES[t]:
            va = getattr(a, name)
            if _KINDS.get(type(va)) == _OTHER:
                tb = type(getattr(b, name))
                if _KINDS.get(tb) != _OTHER and _kind(tb) != _OTHER:
                    raise _Mismatch
            else:
                va = _map2(f, va, getattr(b, name))
            object.__setattr__(new, name, va)
        return new
    if k == _DICT:
        if list(a) != list(b):
            raise _Mismatch
        return {key: _map2(f, a[key], b[key]) for key in a}
    if len(a) != len(b):
        raise _Mismatch
    items = [_map2(f, x, y) for x, y in zip(a, b, strict=True)]
    if k == _LIST:
        return items
    if k == _TUPLE:
        return tuple(items)
    return t(*items)


def _map_fast_or_explain(f: Callable[..., Any], nodes: tuple[Any, ...]) -> Any:
    try:
        if len(nodes) == 2:
            return _map2(f, nodes[0], nodes[1])
        return _fast_map(f, nodes)
    except _Mismatch:
        _map(lambda *xs: xs[0], "", nodes, with_path=False)  # raises with the path
        raise ValueError("tree structures differ") from None  # unreachable in practice


def map(f: Callable[..., Any], tree: Tree, *rest: Tree) -> Tree:  # noqa: A001
    """Apply ``f`` leaf-wise over one or more trees of the same structure.

    ``out_leaf = f(leaf, *other_leaves)``; non-array values come from ``tree``.

    Args:
        f: function of as many arrays as there are trees, returning an array.
        tree: the tree whose structure the result takes.
        *rest: more trees with the same structure and leaf shapes.

    Returns:
        A tree like ``tree`` whose leaves are the (read-only) results of ``f``.

    Raises:
        ValueError: the trees differ in structure; names the first differing path.

    Example:
        >>> import numpy as np
        >>> map(lambda a, b: a - b, [np.ones(2)], [np.ones(2)])[0]
        array([0., 0.])
    """
    if not callable(f):
        raise TypeError(f"fnn.tree.map: f must be a function of the leaves, got {f!r}")
    return _map_fast_or_explain(f, (tree, *rest))


def map_with_path(f: Callable[..., Any], tree: Tree, *rest: Tree) -> Tree:
    """Like `map`, but ``f(path, leaf, *other_leaves)`` also gets the leaf's path.

    The path is a string such as ``"layers[0].w"``: masks by path are one line,
    e.g. ``lambda p, x: x if p.startswith("layers[0]") else x * 0``.

    Example:
        >>> import numpy as np
        >>> map_with_path(lambda p, x: x * len(p), {"ab": np.ones(1)})
        {'ab': array([6.])}
    """
    if not callable(f):
        raise TypeError(f"fnn.tree.map_with_path: f must be a function (path, *leaves), got {f!r}")
    return _map(f, "", (tree, *rest), with_path=True)


def _walk(node: object, path: str, state: bool) -> Iterator[tuple[str, np.ndarray, bool]]:
    if isinstance(node, np.ndarray):
        yield path.lstrip("."), node, state
        return
    if _is_attrs(node):
        for fld in attrs.fields(cast(Any, type(node))):
            is_state = state or bool(fld.metadata.get(STATE_METADATA_KEY, False))
            yield from _walk(getattr(node, fld.name), f"{path}.{fld.name}", is_state)
        return
    kids = _children(node)
    for suffix, child in kids or ():
        yield from _walk(child, path + suffix, state)


def leaves(tree: Tree) -> list[np.ndarray]:
    """Return the array leaves of ``tree`` in a fixed (depth-first) order.

    Example:
        >>> import numpy as np
        >>> len(leaves({"w": np.zeros(3), "name": "dense", "b": None}))
        1
    """
    return [leaf for _, leaf, _ in _walk(tree, "", False)]


def leaves_with_path(tree: Tree) -> list[tuple[str, np.ndarray]]:
    """Return ``(path, leaf)`` pairs in the order of `leaves`.

    Example:
        >>> import numpy as np
        >>> leaves_with_path({"w": np.zeros(2)})
        [("['w']", array([0., 0.]))]
    """
    return [(p, leaf) for p, leaf, _ in _walk(tree, "", False)]


def state_mask(tree: Tree) -> list[bool]:
    """Per array leaf, in :func:`leaves` order: is it a state (non-trainable) leaf?

    The same answer as ``[p in state_paths(t) for p, _ in leaves_with_path(t)]``
    without building path strings: optimizers ask on every update.

    Example:
        >>> import numpy as np
        >>> state_mask({"w": np.zeros(2), "tag": "x"})
        [False]
    """
    out: list[bool] = []

    def walk(x: Any, state: bool) -> None:
        t = type(x)
        k = _KINDS.get(t)
        if k is None:
            k = _kind(t)
        if k == _LEAF:
            out.append(state)
        elif k == _ATTRS:
            for name, is_state in zip(_FIELD_NAMES[t], _FIELD_STATE[t], strict=True):
                walk(getattr(x, name), state or is_state)
        elif k == _DICT:
            for child in x.values():
                walk(child, state)
        elif k != _OTHER:
            for child in x:
                walk(child, state)

    walk(tree, False)
    return out


def state_paths(tree: Tree) -> frozenset[str]:
    """Paths of non-trainable array leaves (attrs fields marked as state).

    Optimizers never decay or update these; e.g. BatchNorm's running mean.
    """
    return frozenset(p for p, _, st in _walk(tree, "", False) if st)


def check_same_structure(a: Tree, b: Tree) -> None:
    """Raise ``ValueError`` naming the first path where ``a`` and ``b`` differ.

    Example:
        >>> import numpy as np
        >>> check_same_structure([np.zeros(2)], [np.zeros(3)])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: tree structures differ at [0]: shape (2,) vs shape (3,); ...
    """
    _map_fast_or_explain(lambda *xs: xs[0], (a, b))


def add(a: Tree, b: Tree) -> Tree:
    """Leaf-wise ``a + b``."""
    return map(np.add, a, b)


def sub(a: Tree, b: Tree) -> Tree:
    """Leaf-wise ``a - b``."""
    return map(np.subtract, a, b)


@_arrays.underflow_retried
def scale(tree: Tree, s: float) -> Tree:
    """Leaf-wise ``s * tree``; the scalar takes each leaf's dtype (no upcasting)."""
    factor = _arrays.real(s) if isinstance(s, int) else s  # 10**400 is inf, not OverflowError
    return map(lambda x: x * x.dtype.type(factor), tree)


def zeros_like(tree: Tree) -> Tree:
    """A tree of the same structure with all-zero leaves of the same dtypes."""
    return map(np.zeros_like, tree)


@_arrays.underflow_retried
def vdot(a: Tree, b: Tree) -> float:
    """Sum over leaves of ``vdot(a_leaf, b_leaf)``, as a Python float (accumulated in float64)."""
    check_same_structure(a, b)
    return float(
        builtins.sum(
            float(np.vdot(x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)))
            for x, y in zip(leaves(a), leaves(b), strict=True)
        )
    )


@_arrays.underflow_retried
def norm(tree: Tree) -> float:
    """Global L2 norm ``sqrt(sum of squares of all leaves)``, as a Python float."""
    return math.sqrt(vdot(tree, tree))


def size(tree: Tree) -> int:
    """Total number of array elements in ``tree``."""
    return builtins.sum(int(x.size) for x in leaves(tree))


@_arrays.underflow_retried
def allclose(a: Tree, b: Tree, rtol: float = 1e-7, atol: float = 0.0) -> bool:
    """True iff the trees have the same structure and every leaf pair is ``np.allclose``.

    A structure mismatch returns ``False`` (use `check_same_structure` to
    learn where they differ).
    """
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if isinstance(tol, bool) or not isinstance(tol, int | float | np.integer | np.floating):
            raise TypeError(f"fnn.tree.allclose: {name} must be a number, got {tol!r}")
        if not (math.isfinite(_arrays.real(tol)) and tol >= 0):
            raise ValueError(
                f"fnn.tree.allclose: {name} must be finite and >= 0, got {_arrays.short(tol)}"
            )
    try:
        check_same_structure(a, b)
    except ValueError:
        return False
    rtol, atol = _arrays.real(rtol), _arrays.real(atol)  # 2**64 as a float, not a ufunc error
    return all(
        np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=False)
        for x, y in zip(leaves(a), leaves(b), strict=True)
    )
