"""Pytree utilities: NumPy arrays are the leaves, everything else is structure.

A *tree* is any nesting of tuples, lists, dicts and ``attrs`` instances. NumPy
arrays (``np.ndarray``, including 0-d arrays) are its leaves. Everything that is
neither a container nor an array (ints, floats, strings, ``None``, functions,
keys) is a *constant*: it is carried through every map untouched, taken from the
first tree.

Everything here stands on one walker, `flatten`: ``flatten(t)`` gives the
leaves in a fixed (depth-first) order and a `TreeDef`; ``treedef.unflatten(
leaves)`` builds the same tree around new leaves. The treedef remembers what a
walk found (each leaf's path such as ``layers[3].body.layers[1].w``, which
leaves are non-trainable state, how to rebuild each attrs instance without
running its ``__init__``), so a training step flattens once and rebuilds once.

Two trees that must match and do not raise ``ValueError`` naming the first path
where they differ, e.g. ``layers[2].w: shape (32, 16) vs shape (16, 32)``.

Every array that a map produces is marked read-only, so a tree built by fnn is a
value: nobody holding it can change it behind someone else's back.

Example:
    >>> import numpy as np
    >>> from fnn import tree
    >>> t = {"a": np.array([1.0, 2.0]), "b": (np.array(3.0), "tag")}
    >>> leaves, treedef = tree.flatten(t)
    >>> treedef.paths
    ("['a']", "['b'][0]")
    >>> treedef.unflatten([x * 2 for x in leaves])["b"]
    (array(6.), 'tag')
    >>> float(tree.vdot(t, tree.scale(t, 2.0)))
    28.0
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import attrs
import numpy as np

from fnn import _arrays
from fnn._treecode import ATTRS as _ATTRS
from fnn._treecode import CONST as _CONST
from fnn._treecode import DICT as _DICT
from fnn._treecode import LEAF as _LEAF
from fnn._treecode import LIST as _LIST
from fnn._treecode import NAMEDTUPLE as _NAMEDTUPLE
from fnn._treecode import TUPLE as _TUPLE
from fnn._treecode import Codegen as _Codegen
from fnn._treecode import Miss as _Miss
from fnn._treecode import slow_builder as _slow_builder

__all__ = [
    "NestingError",
    "Node",
    "TreeDef",
    "add",
    "allclose",
    "check_same_structure",
    "fields",
    "flatten",
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

ARRAY_METADATA_KEY = "fnn_array"
"""attrs field metadata key marking a field declared to hold an array (a layer's
``param_field`` or ``state_field``); `array_fields` lists them."""

MAX_DEPTH = 200
"""How deeply containers may nest in a tree `flatten` walks (deeper: `NestingError`)."""


def readonly(a: np.ndarray) -> np.ndarray:
    """Return ``a`` itself if already read-only, else a read-only view of it.

    The caller's array keeps its own flags: a view gets the read-only flag, so
    marking never changes an array somebody else holds.

    Example:
        >>> import numpy as np
        >>> readonly(np.zeros(2)).flags.writeable
        False
    """
    if not isinstance(a, np.ndarray):
        raise TypeError(f"fnn.tree.readonly: expected a NumPy array, got {type(a).__name__}")
    if not a.flags.writeable:
        return a
    v = a.view()
    v.setflags(write=False)
    return v


# ---------------------------------------------------------------------------
# Kinds of nodes. The kind of a value depends only on its type, cached per type;
# for an attrs class the same first look records its fields (the one table of
# which fields hold state and which are declared to hold arrays).

_KIND_NAMES = ("leaf", "constant", "tuple", "list", "namedtuple", "dict", "attrs")
_KINDS: dict[type, int] = {}


class ClassFields:
    """What fnn knows about the fields of one attrs class (made once per class).

    Attributes:
        names: the field names, in declaration order.
        pairs: ``(name, is_state)`` per field (what `fields` returns).
        state: the names of the fields marked as state (``fnn_state`` metadata).
        arrays: the names of the fields declared to hold arrays (``fnn_array``
            or ``fnn_state`` metadata), in declaration order.
        array_set: ``arrays`` as a frozenset.
        config: the names of the other fields (configuration), in order.
    """

    __slots__ = ("array_set", "arrays", "config", "names", "pairs", "state")

    def __init__(self, cls: type) -> None:
        fs = attrs.fields(cast(Any, cls))
        self.names: tuple[str, ...] = tuple(f.name for f in fs)
        is_state = [bool(f.metadata.get(STATE_METADATA_KEY)) for f in fs]
        holds_array = [
            s or bool(f.metadata.get(ARRAY_METADATA_KEY)) for f, s in zip(fs, is_state, strict=True)
        ]
        self.pairs: tuple[tuple[str, bool], ...] = tuple(zip(self.names, is_state, strict=True))
        self.state = frozenset(n for n, s in self.pairs if s)
        self.arrays = tuple(n for n, a in zip(self.names, holds_array, strict=True) if a)
        self.array_set = frozenset(self.arrays)
        self.config = tuple(n for n in self.names if n not in self.array_set)


_FIELDS: dict[type, ClassFields] = {}


def _kind(t: type) -> int:
    k = _KINDS.get(t)
    if k is None:
        if issubclass(t, np.ndarray):
            k = _LEAF
        elif issubclass(t, tuple):
            k = _NAMEDTUPLE if hasattr(t, "_fields") else _TUPLE
        elif issubclass(t, list):
            k = _LIST
        elif issubclass(t, dict):
            k = _DICT
        elif attrs.has(t):
            k = _ATTRS
            _FIELDS[t] = ClassFields(t)
        else:  # ints, floats, strings, None, functions, keys...: constants
            k = _CONST
        _KINDS[t] = k
    return k


def class_fields(cls: type) -> ClassFields:
    """The cached `ClassFields` of the attrs class ``cls`` (internal: for fnn's layers).

    Raises:
        TypeError: ``cls`` is not an attrs class.
    """
    info = _FIELDS.get(cls)
    if info is None:
        if not (isinstance(cls, type) and attrs.has(cls)):
            raise TypeError(f"fnn.tree.fields: expected an attrs class, got {cls!r}")
        _kind(cls)
        info = _FIELDS[cls]
    return info


def fields(cls: type) -> tuple[tuple[str, bool], ...]:
    """``(name, is_state)`` for each attrs field of ``cls``, in order (cached per class).

    ``is_state`` is true for fields declared with ``fnn_state`` metadata (a
    layer's ``state_field``): their arrays are non-trainable.

    Raises:
        TypeError: ``cls`` is not an attrs class.

    Example:
        >>> import fnn
        >>> fields(fnn.Dense)[-2:]
        (('w', False), ('b', False))
    """
    return class_fields(cls).pairs


# ---------------------------------------------------------------------------
# The walker. A node of the structure key is _LEAF, _CONST or the tuple
# (kind, type, keys, children): keys are the attrs field names, the dict keys, or
# None for sequences. Leaves and constants are collected in order on the way.


class _Keys(tuple):  # type: ignore[type-arg]
    """A dict node's keys: equal only to keys of the same values *and types*.

    ``{1: a}``, ``{True: a}`` and ``{1.0: a}`` are different structures, though their
    keys compare equal (and hash alike) as Python values.
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, tuple)
            and tuple.__eq__(self, other) is True
            and all(type(a) is type(b) for a, b in zip(self, other, strict=True))
        )

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = tuple.__hash__


class NestingError(ValueError):
    """`flatten` met a tree nested more than `MAX_DEPTH` containers deep, or one containing itself.

    Attributes:
        steps: the path from the root to the container where the walk stopped,
            one suffix per level (``"[0]"``, ``".w"``, ``"['a']"``); empty when
            Python's recursion limit stopped the walk first.
        cycle: for a tree that contains itself, the number of steps to the first
            container that is one of its own ancestors (``"".join(steps[:cycle])``
            is its path); ``None`` otherwise.
    """

    def __init__(self, message: str, steps: tuple[str, ...], cycle: int | None) -> None:
        super().__init__(message)
        self.steps = steps
        self.cycle = cycle


class _TooDeep(Exception):
    """Raised at MAX_DEPTH; each container on the way up adds its object and the step."""

    def __init__(self, deepest: object) -> None:
        self.objects: list[object] = [deepest]  # deepest first
        self.steps: list[str] = []

    def up(self, x: Any, kind: int) -> None:
        child = self.objects[-1]
        if kind == _ATTRS:
            step = next((f".{n}" for n in _FIELDS[type(x)].names if getattr(x, n) is child), "?")
        elif kind == _DICT:
            step = next((f"[{k!r}]" for k, v in x.items() if v is child), "[?]")
        else:
            step = next((f"[{i}]" for i, v in enumerate(x) if v is child), "[?]")
        self.objects.append(x)
        self.steps.append(step)

    def error(self) -> NestingError:
        objects, steps = self.objects[::-1], tuple(self.steps[::-1])
        seen: set[int] = set()
        for depth, obj in enumerate(objects):
            if id(obj) in seen:
                path = "".join(steps[:depth]).lstrip(".")
                return NestingError(
                    f"fnn.tree.flatten: the tree contains itself at {path} (a cycle); a tree is "
                    "finite: break the cycle",
                    steps,
                    depth,
                )
            seen.add(id(obj))
        return NestingError(
            f"fnn.tree.flatten: the tree is nested too deeply (more than {MAX_DEPTH} "
            f"containers) at {''.join(steps).lstrip('.')}; flatten the containers or store the "
            "arrays in a list",
            steps,
            None,
        )


def _walk(x: Any, leaves: list[Any], consts: list[Any], depth: int) -> Any:
    t = type(x)
    k = _KINDS.get(t)
    if k is None:
        k = _kind(t)
    if k == _LEAF:
        leaves.append(x)
        return _LEAF
    if k == _CONST:
        consts.append(x)
        return _CONST
    if depth >= MAX_DEPTH:
        raise _TooDeep(x)
    depth += 1
    try:
        if k == _ATTRS:
            names = _FIELDS[t].names
            children = tuple([_walk(getattr(x, n), leaves, consts, depth) for n in names])
            return (k, t, names, children)
        if k == _DICT:
            children = tuple([_walk(v, leaves, consts, depth) for v in x.values()])
            return (k, t, _Keys(x), children)
        return (k, t, None, tuple([_walk(v, leaves, consts, depth) for v in x]))
    except _TooDeep as err:
        err.up(x, k)
        raise


_INTERNED: dict[Any, _Structure] = {}
_RECENT: dict[type, list[_Structure]] = {}
_MAX_INTERNED = 512
_MAX_RECENT = 4
_MAX_COMPILED_NODES = 4000


def _structure_of(key: Any) -> _Structure:
    s = _INTERNED.get(key)
    if s is None:
        if len(_INTERNED) >= _MAX_INTERNED:
            _INTERNED.clear()
            _RECENT.clear()
        s = _INTERNED[key] = _Structure(key)
    return s


def flatten(tree: Tree) -> tuple[list[np.ndarray], TreeDef]:
    """The array leaves of ``tree`` in depth-first order, and its `TreeDef`.

    Leaves come in the order of ``fnn.tree.leaves``: tuple and list items in
    order, dict values in insertion order, attrs fields in declaration order.
    ``treedef.unflatten(leaves)`` gives back a tree equal to ``tree``.

    Args:
        tree: any tree (tuples, lists, dicts, attrs instances; arrays as leaves).

    Returns:
        ``(leaves, treedef)``: a new list of the leaf arrays themselves (not copies).

    Raises:
        NestingError: (a ValueError) the tree nests more than `MAX_DEPTH` (200)
            containers deep, or contains itself; names the path.

    Example:
        >>> import numpy as np, fnn
        >>> net = fnn.init([fnn.Dense(2)], (3,), key=0)
        >>> leaves, treedef = flatten(net)
        >>> [a.shape for a in leaves], treedef.paths
        ([(3, 2), (2,)], ('layers[0].w', 'layers[0].b'))
    """
    recent = _RECENT.get(type(tree))
    if recent is not None:
        for s in recent:
            if s.extract is not None:
                try:
                    leaves, consts = s.extract(tree)
                except _Miss:
                    continue
                return leaves, TreeDef(s, consts)
    leaves_out: list[Any] = []
    consts_out: list[Any] = []
    try:
        key = _walk(tree, leaves_out, consts_out, 0)
    except _TooDeep as err:
        raise err.error() from None
    except RecursionError:
        raise NestingError(
            "fnn.tree.flatten: the tree is nested too deeply to walk (Python's recursion "
            "limit); flatten the containers or store the arrays in a list",
            (),
            None,
        ) from None
    s = _structure_of(key)
    if s.extract is None:
        s.compile_extractor(leaves_out, consts_out)
    if s.extract is not None:  # most recent first; replaced whole: threads never see it half-built
        old = _RECENT.get(type(tree), [])
        _RECENT[type(tree)] = [s, *(o for o in old if o is not s)][:_MAX_RECENT]
    return leaves_out, TreeDef(s, tuple(consts_out))


# ---------------------------------------------------------------------------
# One structure: what every tree of it shares, computed once and cached.


def _count(node: Any) -> tuple[int, int, int]:
    """(nodes, leaves, constants) below ``node``."""
    if node is _LEAF or node is _CONST:
        return 1, int(node is _LEAF), int(node is _CONST)
    n, leaves, consts = 1, 0, 0
    for c in node[3]:
        a, b, d = _count(c)
        n, leaves, consts = n + a, leaves + b, consts + d
    return n, leaves, consts


def _suffix(kind: int, key: Any, i: int) -> str:
    if kind == _ATTRS:
        return f".{key}"
    if kind == _DICT:
        return f"[{key!r}]"
    return f"[{i}]"


def _leaf_info(node: Any, path: str, state: bool, out: list[tuple[str, bool]]) -> None:
    if node is _LEAF:
        out.append((path.lstrip("."), state))
        return
    if node is _CONST:
        return
    kind, t, keys, children = node
    flags = [s for _, s in _FIELDS[t].pairs] if kind == _ATTRS else [False] * len(children)
    for i, child in enumerate(children):
        key = keys[i] if keys is not None else i
        _leaf_info(child, path + _suffix(kind, key, i), state or flags[i], out)


class _Structure:
    """The part of a TreeDef that every tree of one structure shares (cached, interned)."""

    __slots__ = ("_builder", "_info", "extract", "key", "memo", "n_consts", "n_leaves", "n_nodes")

    def __init__(self, key: Any) -> None:
        self.key = key
        self.memo: dict[Any, Any] = {}
        self.n_nodes, self.n_leaves, self.n_consts = _count(key)
        self._info: tuple[tuple[str, ...], tuple[bool, ...]] | None = None
        self._builder: Callable[[Sequence[Any], Sequence[Any]], Any] | None = None
        self.extract: Callable[[Any], tuple[list[Any], tuple[Any, ...]]] | None = None

    def info(self) -> tuple[tuple[str, ...], tuple[bool, ...]]:
        if self._info is None:
            pairs: list[tuple[str, bool]] = []
            _leaf_info(self.key, "", False, pairs)
            self._info = (tuple(p for p, _ in pairs), tuple(s for _, s in pairs))
        return self._info

    def compile_extractor(self, leaves: Sequence[Any], consts: Sequence[Any]) -> None:
        """Compile a check-and-extract function for trees of this structure whose leaves
        and constants have the types seen now (another type falls back to the walk)."""
        if self.n_nodes > _MAX_COMPILED_NODES:
            return
        gen = _Codegen()
        gen.extract(self.key, "x", [type(a) for a in leaves], [type(c) for c in consts])
        ls = "".join(f"l{i}, " for i in range(self.n_leaves))
        cs = "".join(f"c{i}, " for i in range(self.n_consts))
        self.extract = gen.function("extract", "x", f"return [{ls}], ({cs})")

    def build(self, leaves: Sequence[Any], consts: Sequence[Any]) -> Any:
        if self._builder is None:
            if self.n_nodes > _MAX_COMPILED_NODES:
                self._builder = _slow_builder(self.key)
            else:
                gen = _Codegen()
                root = gen.build(self.key)
                self._builder = gen.function("build", "L, C", f"return {root}")
        return self._builder(leaves, consts)


@attrs.frozen
class Node:
    """A public view of one node of a `TreeDef` (for serialisers and tools).

    Attributes:
        kind: ``"leaf"``, ``"constant"``, ``"tuple"``, ``"list"``, ``"namedtuple"``,
            ``"dict"`` or ``"attrs"``.
        type: the container's class (``None`` for leaves and constants).
        keys: attrs field names, dict keys, or indices ``0..n-1`` of a sequence.
        state: per child, whether it sits in an attrs field marked as state.
        children: the child nodes, in order.
        value: a constant's value (``None`` for other kinds).
    """

    kind: str
    type: type | None
    keys: tuple[Any, ...]
    state: tuple[bool, ...]
    children: tuple[Node, ...]
    value: Any = None


class TreeDef:
    """The structure of a tree: containers, constants and where the leaves go.

    Made by `flatten`. ``treedef.unflatten(leaves)`` builds the tree around new
    leaves, taking constants (ints, strings, ``None``, functions) from the
    flattened tree and rebuilding attrs instances without running their
    ``__init__`` (validators ran when the original was built).

    Two treedefs are equal when their containers, dict keys, attrs classes and
    leaf positions are the same; constants and leaf shapes are not compared.

    Attributes:
        num_leaves: how many array leaves the tree has.
        paths: each leaf's path, e.g. ``"layers[0].w"``, in leaf order.
        state_mask: per leaf, whether it is non-trainable state (an attrs field
            declared with ``fnn_state`` metadata, or inside one).
        root: the structure as a tree of `Node` values.
    """

    __slots__ = ("_consts", "_s")

    def __init__(self, structure: _Structure, consts: tuple[Any, ...]) -> None:
        self._s = structure
        self._consts = consts

    @property
    def num_leaves(self) -> int:
        """The number of array leaves."""
        return self._s.n_leaves

    @property
    def paths(self) -> tuple[str, ...]:
        """Each leaf's path, in leaf order (``"layers[0].w"``, ``"['a'][1]"``)."""
        return self._s.info()[0]

    @property
    def state_mask(self) -> tuple[bool, ...]:
        """Per leaf, in leaf order: is it a non-trainable state leaf?"""
        return self._s.info()[1]

    @property
    def memo(self) -> dict[Any, Any]:
        """A dict shared by every treedef of this structure, where callers cache what they
        derive from the structure alone (resolved masks, field tables). Keys must be
        hashable; values must not depend on leaves or constants."""
        return self._s.memo

    @property
    def root(self) -> Node:
        """The structure as a tree of `Node` values, constants included."""
        consts = iter(self._consts)

        def go(node: Any) -> Node:
            if node is _LEAF:
                return Node("leaf", None, (), (), ())
            if node is _CONST:
                return Node("constant", None, (), (), (), next(consts))
            kind, t, keys, children = node
            n = len(children)
            flags = tuple(s for _, s in _FIELDS[t].pairs) if kind == _ATTRS else (False,) * n
            ks = tuple(keys) if keys is not None else tuple(range(len(children)))
            return Node(_KIND_NAMES[kind], t, ks, flags, tuple(go(c) for c in children))

        return go(self._s.key)

    def unflatten(self, leaves: Sequence[np.ndarray]) -> Tree:
        """The tree of this structure with ``leaves`` (in leaf order) as its arrays.

        Each leaf is stored read-only (a read-only view when the array given is
        writeable; the caller's array keeps its flags).

        Args:
            leaves: one NumPy array (or NumPy scalar, for a 0-d leaf) per leaf.

        Returns:
            The rebuilt tree.

        Raises:
            ValueError: the number of leaves differs from ``num_leaves``.
            TypeError: a leaf is not a NumPy array (names its path).

        Example:
            >>> import numpy as np
            >>> _, td = flatten({"w": np.zeros(2), "name": "head"})
            >>> td.unflatten([np.ones(2)])
            {'w': array([1., 1.]), 'name': 'head'}
        """
        if isinstance(leaves, np.ndarray) or not isinstance(leaves, Sequence):
            raise TypeError(
                f"fnn.tree.TreeDef.unflatten: leaves must be a list of {self.num_leaves} arrays, "
                f"got {type(leaves).__name__}"
            )
        if len(leaves) != self._s.n_leaves:
            raise ValueError(
                f"fnn.tree.TreeDef.unflatten: this structure has {self._s.n_leaves} leaves, "
                f"got {len(leaves)}"
            )
        out = []
        for i, a in enumerate(leaves):
            if isinstance(a, np.generic):  # what arithmetic on a 0-d array gives
                a = np.asarray(a)
            if not isinstance(a, np.ndarray):
                raise TypeError(
                    f"fnn.tree.TreeDef.unflatten: leaf {i} ({self.paths[i] or '<root>'}) must be "
                    f"a NumPy array, got {type(a).__name__}"
                )
            out.append(readonly(a))
        return self._s.build(out, self._consts)

    def build(self, leaves: Sequence[np.ndarray]) -> Tree:
        """`unflatten` without checks, for read-only arrays fnn itself just made (internal)."""
        return self._s.build(leaves, self._consts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TreeDef):
            return NotImplemented
        return self._s is other._s or self._s.key == other._s.key

    def __hash__(self) -> int:
        return hash(self._s.key)

    def __repr__(self) -> str:
        return f"TreeDef({self.num_leaves} leaves: {', '.join(self.paths[:4])}" + (
            ", ...)" if self.num_leaves > 4 else ")"
        )


# ---------------------------------------------------------------------------
# Mismatch messages: the structures of two flattened trees compared node by node,
# naming the first difference (only when they differ: never on the common path).


class _Cursor:
    """A flattened tree's leaves and constants, taken in walk order."""

    def __init__(self, leaves: Sequence[np.ndarray], consts: Sequence[Any]) -> None:
        self.leaves, self.consts = leaves, consts
        self.leaf = self.const = 0

    def describe(self, node: Any) -> str:
        if node is _LEAF:
            return f"shape {self.leaves[self.leaf].shape}"
        if node is _CONST:
            return "None" if self.consts[self.const] is None else "a non-array value"
        kind, t, keys, children = node
        if kind == _DICT:
            return f"dict with keys {sorted(builtins.map(str, keys))}"
        if kind == _ATTRS:
            return str(t.__name__)
        return f"{t.__name__} of length {len(children)}"

    def skip(self, node: Any) -> None:
        _, n_leaves, n_consts = _count(node)
        self.leaf += n_leaves
        self.const += n_consts


def _same_node(a: Any, b: Any, ca: _Cursor, cb: _Cursor) -> bool:
    """Whether nodes ``a`` and ``b`` agree (not looking at their children)."""
    if a is _LEAF or b is _LEAF:
        return a is b and ca.leaves[ca.leaf].shape == cb.leaves[cb.leaf].shape
    if a is _CONST or b is _CONST:
        return a is b
    if a[1] is not b[1]:
        return False
    if a[0] == _DICT:
        return bool(a[2] == b[2])
    return a[0] == _ATTRS or len(a[3]) == len(b[3])


def _first_difference(path: str, a: Any, b: Any, ca: _Cursor, cb: _Cursor) -> str | None:
    if not _same_node(a, b, ca, cb):
        return f"{path.lstrip('.') or '<root>'}: {ca.describe(a)} vs {cb.describe(b)}"
    if a is _LEAF or a is _CONST:
        ca.skip(a)
        cb.skip(b)
        return None
    kind, _, keys, children = a
    for i, (x, y) in enumerate(zip(children, b[3], strict=True)):
        found = _first_difference(
            path + _suffix(kind, keys[i] if keys is not None else i, i), x, y, ca, cb
        )
        if found is not None:
            return found
    return None


def mismatch_error(
    td_a: TreeDef,
    leaves_a: Sequence[np.ndarray],
    td_b: TreeDef,
    leaves_b: Sequence[np.ndarray],
    who: str | None = None,
) -> ValueError:
    """The ValueError for two flattened trees that differ, naming the first differing path."""
    ca, cb = _Cursor(leaves_a, td_a._consts), _Cursor(leaves_b, td_b._consts)
    where = _first_difference("", td_a._s.key, td_b._s.key, ca, cb) or "<root>: the trees differ"
    prefix = f"{who}: " if who else ""
    return ValueError(
        f"{prefix}tree structures differ at {where}; "
        "trees combined by fnn.tree must have the same containers and array shapes"
    )


def leaves_like(
    treedef: TreeDef, like_leaves: Sequence[np.ndarray], other: Tree, who: str | None = None
) -> list[np.ndarray]:
    """The leaves of ``other``, which must have ``treedef``'s structure and leaf shapes.

    ``like_leaves`` are the leaves of the tree ``treedef`` came from (internal: the
    optimizers check buffers and updates against the params with it).
    """
    leaves, td = flatten(other)
    if td._s is not treedef._s and td._s.key != treedef._s.key:
        raise mismatch_error(treedef, like_leaves, td, leaves, who)
    for a, b in zip(like_leaves, leaves, strict=True):
        if a.shape != b.shape:
            raise mismatch_error(treedef, like_leaves, td, leaves, who)
    return leaves


# ---------------------------------------------------------------------------
# Maps and queries, all on flatten.


def _out(x: Any) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.flags.writeable:
        x = x.view()
        x.setflags(write=False)
    return cast(np.ndarray, x)


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
    leaves_, td = flatten(tree)
    if not rest:
        return td.build([_out(f(a)) for a in leaves_])
    others = [leaves_like(td, leaves_, r) for r in rest]
    if len(others) == 1:
        return td.build([_out(f(a, b)) for a, b in zip(leaves_, others[0], strict=True)])
    return td.build([_out(f(*xs)) for xs in zip(leaves_, *others, strict=True)])


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
    leaves_, td = flatten(tree)
    others = [leaves_like(td, leaves_, r) for r in rest]
    return td.build([_out(f(p, *xs)) for p, *xs in zip(td.paths, leaves_, *others, strict=True)])


def leaves(tree: Tree) -> list[np.ndarray]:
    """Return the array leaves of ``tree`` in a fixed (depth-first) order.

    Example:
        >>> import numpy as np
        >>> len(leaves({"w": np.zeros(3), "name": "dense", "b": None}))
        1
    """
    return flatten(tree)[0]


def leaves_with_path(tree: Tree) -> list[tuple[str, np.ndarray]]:
    """Return ``(path, leaf)`` pairs in the order of `leaves`.

    Example:
        >>> import numpy as np
        >>> leaves_with_path({"w": np.zeros(2)})
        [("['w']", array([0., 0.]))]
    """
    leaves_, td = flatten(tree)
    return list(zip(td.paths, leaves_, strict=True))


def state_mask(tree: Tree) -> list[bool]:
    """Per array leaf, in :func:`leaves` order: is it a state (non-trainable) leaf?

    The same answer as ``[p in state_paths(t) for p, _ in leaves_with_path(t)]``,
    read from the cached `TreeDef`.

    Example:
        >>> import numpy as np
        >>> state_mask({"w": np.zeros(2), "tag": "x"})
        [False]
    """
    return list(flatten(tree)[1].state_mask)


def state_paths(tree: Tree) -> frozenset[str]:
    """Paths of non-trainable array leaves (attrs fields marked as state).

    Optimizers never decay or update these; e.g. BatchNorm's running mean.

    Example:
        >>> import fnn
        >>> sorted(state_paths(fnn.init([fnn.layers.BatchNorm()], (2,), key=0)))
        ['layers[0].running_mean', 'layers[0].running_var']
    """
    td = flatten(tree)[1]
    return frozenset(p for p, s in zip(td.paths, td.state_mask, strict=True) if s)


def check_same_structure(a: Tree, b: Tree) -> None:
    """Raise ``ValueError`` naming the first path where ``a`` and ``b`` differ.

    Example:
        >>> import numpy as np
        >>> check_same_structure([np.zeros(2)], [np.zeros(3)])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: tree structures differ at [0]: shape (2,) vs shape (3,); ...
    """
    leaves_a, td = flatten(a)
    leaves_like(td, leaves_a, b)


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
    leaves_a, td = flatten(a)
    leaves_b = leaves_like(td, leaves_a, b)
    return float(
        builtins.sum(
            float(np.vdot(x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)))
            for x, y in zip(leaves_a, leaves_b, strict=True)
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
    leaves_a, td = flatten(a)
    try:
        leaves_b = leaves_like(td, leaves_a, b)
    except ValueError:
        return False
    rtol, atol = _arrays.real(rtol), _arrays.real(atol)  # 2**64 as a float, not a ufunc error
    return all(
        np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=False)
        for x, y in zip(leaves_a, leaves_b, strict=True)
    )
