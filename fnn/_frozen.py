"""Copies and pickles of fnn values keep their arrays read-only.

NumPy arrays forget the read-only flag when they are copied: ``copy.deepcopy``
gives writeable arrays, and so does unpickling with protocols 0-4 (Python's
default is 4, and Dask's scheduler pickles with 4) or protocol 5 with
out-of-band buffers. A `Network` that comes back from a worker would then hold
arrays anyone can write into, breaking fnn's second invariant.

`readonly_reduce_ex` is the one fix: used as a class's ``__reduce_ex__``, it
pickles an ``attrs`` instance (or a dataclass, or a named tuple) as
``(class, field values)`` and rebuilds it with
every array in those values marked read-only (a read-only view when the array
is writeable; arrays inside plain tuples, lists and dicts too). The rebuild
sets the fields directly, like `fnn.tree`'s rebuild: the value was validated
when it was first built.

It is hooked into the base classes, so every subclass gets it by inheritance:
`fnn.Layer` (every layer, containers included), `fnn.Network` and
`fnn.optim.OptState`. A new class that holds arrays and is not such a subclass
(an optimizer transformation's state, say: an ``attrs`` class, a dataclass or
a ``typing.NamedTuple``) needs one line in its body::

    __reduce_ex__ = readonly_reduce_ex

(``from fnn._frozen import readonly_reduce_ex``). ``attrs`` generates
``__getstate__``/``__setstate__`` for every slotted class, which is why the hook
is ``__reduce_ex__``: it is inherited, and ``copy.deepcopy``, ``copy.copy`` and
``pickle`` all call it. A subclass that is not itself an ``attrs`` class (or
dataclass) falls back to Python's default pickling. Values without the hook
that sit inside a hooked one (a named tuple or a user's ``attrs`` params inside
an ``OptState``) are frozen by the enclosing rebuild.

Example:
    >>> import copy, pickle, fnn
    >>> net = fnn.init([fnn.Dense(2)], (3,), key=0)
    >>> copy.deepcopy(net).layers[0].w.flags.writeable
    False
    >>> pickle.loads(pickle.dumps(net, protocol=4)).layers[0].w.flags.writeable
    False
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, SupportsIndex, cast

import attrs
import numpy as np

__all__ = ["freeze_arrays", "readonly_reduce_ex"]


def readonly_reduce_ex(self: object, protocol: SupportsIndex) -> str | tuple[Any, ...]:
    """``__reduce_ex__`` that rebuilds a value with read-only arrays.

    Works for ``attrs`` classes, dataclasses and named tuples (the class must
    be decorated itself, not merely inherit from one).

    Args:
        self: the instance being pickled or copied.
        protocol: the pickle protocol (unused: the reduction is the same for all).

    Returns:
        ``(rebuild, (class, field values))``; Python's default reduction for
        any other class.
    """
    cls = type(self)
    if isinstance(self, tuple) and hasattr(cls, "_fields"):
        return _rebuild_tuple, (cls, tuple(self))
    names = _field_names(cls)
    if names is None:
        return object.__reduce_ex__(self, protocol)
    return _rebuild, (cls, tuple(getattr(self, n) for n in names))


def _field_names(cls: type) -> tuple[str, ...] | None:
    """The fields of an attrs class or dataclass decorated as such itself, else None."""
    if "__attrs_attrs__" in cls.__dict__:
        return tuple(f.name for f in attrs.fields(cast(Any, cls)))
    if "__dataclass_fields__" in cls.__dict__:
        return tuple(f.name for f in dataclasses.fields(cast(Any, cls)))
    return None


def _rebuild(cls: type, values: tuple[Any, ...]) -> object:
    """Make an instance of ``cls`` with ``values`` in its fields, arrays read-only."""
    new: object = object.__new__(cls)
    for name, v in zip(_field_names(cls) or (), values, strict=True):
        object.__setattr__(new, name, freeze_arrays(v))
    return new


def _rebuild_tuple(cls: type, values: tuple[Any, ...]) -> object:
    """A named tuple of ``cls`` holding ``values``, arrays read-only."""
    return tuple.__new__(cast(Any, cls), [freeze_arrays(v) for v in values])


def freeze_arrays(value: Any) -> Any:
    """``value`` with every array in it (through tuples, lists and dicts) read-only.

    A writeable array is replaced by a read-only view of it, so no array that
    somebody else holds changes its flags. Containers are rebuilt only where an
    array inside them was replaced; ``attrs`` and dataclass instances are left
    as they are (fnn's classes freeze their own arrays when they are rebuilt),
    unless their class lacks the hook, in which case their fields are frozen
    the same way.

    Example:
        >>> import numpy as np
        >>> t = freeze_arrays({"a": [np.zeros(2)]})
        >>> t["a"][0].flags.writeable
        False
    """
    if isinstance(value, np.ndarray):
        if not value.flags.writeable:
            return value
        view = value.view()
        view.flags.writeable = False
        return view
    if isinstance(value, list | tuple):
        items = [freeze_arrays(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        if isinstance(value, list):
            return items
        return tuple.__new__(type(value), items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, dict):
        frozen = {k: freeze_arrays(v) for k, v in value.items()}
        if all(frozen[k] is value[k] for k in value):
            return value
        if type(value) is dict:
            return frozen
        copied = copy.copy(value)  # a dict subclass (OrderedDict, defaultdict): keep its kind
        copied.update(frozen)
        return copied
    cls = type(value)
    names = _field_names(cls)
    if names is not None and getattr(cls, "__reduce_ex__", None) is not readonly_reduce_ex:
        return _freeze_fields(value, names)
    return value


def _freeze_fields(value: Any, names: tuple[str, ...]) -> Any:
    """An attrs or dataclass instance without the hook, rebuilt if an array was writeable."""
    cls = type(value)
    old = [getattr(value, n) for n in names]
    new = [freeze_arrays(v) for v in old]
    if all(a is b for a, b in zip(new, old, strict=True)):
        return value
    out = object.__new__(cls)
    for n, v in zip(names, new, strict=True):
        object.__setattr__(out, n, v)
    return out
