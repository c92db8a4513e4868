"""Copies and pickles of fnn values keep their arrays read-only.

NumPy arrays forget the read-only flag when they are copied: ``copy.deepcopy``
gives writeable arrays, and so does unpickling with protocols 0-4 (Python's
default is 4, and Dask's scheduler pickles with 4) or protocol 5 with
out-of-band buffers. A `Network` that comes back from a worker would then hold
arrays anyone can write into, breaking fnn's second invariant.

`readonly_reduce_ex` is the one fix: used as a class's ``__reduce_ex__``, it
pickles an ``attrs`` instance as ``(class, field values)`` and rebuilds it with
every array in those values marked read-only (a read-only view when the array
is writeable; arrays inside plain tuples, lists and dicts too). The rebuild
sets the fields directly, like `fnn.tree`'s rebuild: the value was validated
when it was first built.

It is hooked into the base classes, so every subclass gets it by inheritance:
`fnn.Layer` (every layer, containers included), `fnn.Network` and
`fnn.optim.OptState`. A new ``attrs`` class that holds arrays and is not such a
subclass (an optimizer transformation's state, say) needs one line in its body::

    __reduce_ex__ = readonly_reduce_ex

(``from fnn._frozen import readonly_reduce_ex``). ``attrs`` generates
``__getstate__``/``__setstate__`` for every slotted class, which is why the hook
is ``__reduce_ex__``: it is inherited, and ``copy.deepcopy``, ``copy.copy`` and
``pickle`` all call it. A subclass that is not an ``attrs`` class falls back to
Python's default pickling.

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
from collections.abc import Callable
from typing import Any, SupportsIndex, cast

import attrs
import numpy as np

__all__ = ["freeze_arrays", "readonly_reduce_ex"]


def readonly_reduce_ex(self: object, protocol: SupportsIndex) -> str | tuple[Any, ...]:
    """``__reduce_ex__`` for an ``attrs`` class: rebuilt with read-only arrays.

    Args:
        self: the instance being pickled or copied.
        protocol: the pickle protocol (unused: the reduction is the same for all).

    Returns:
        ``(rebuild, (class, field values))`` for an ``attrs`` instance, Python's
        default reduction otherwise.
    """
    cls = type(self)
    if not _is_attrs_class(cls):
        return object.__reduce_ex__(self, protocol)
    values = tuple(getattr(self, f.name) for f in attrs.fields(cast(Any, cls)))
    return _rebuild, (cls, values)


def _is_attrs_class(cls: type) -> bool:
    """True for a class decorated with attrs itself (not merely a subclass of one)."""
    return "__attrs_attrs__" in cls.__dict__


def _rebuild(cls: type, values: tuple[Any, ...]) -> object:
    """Make an instance of ``cls`` with ``values`` in its fields, arrays read-only."""
    new: object = object.__new__(cls)
    for f, v in zip(attrs.fields(cast(Any, cls)), values, strict=True):
        object.__setattr__(new, f.name, freeze_arrays(v))
    return new


def freeze_arrays(value: Any) -> Any:
    """``value`` with every array in it (through tuples, lists and dicts) read-only.

    A writeable array is replaced by a read-only view of it, so no array that
    somebody else holds changes its flags. Containers are rebuilt only where an
    array inside them was replaced; ``attrs`` instances are left as they are
    (fnn's classes freeze their own arrays when they are rebuilt), unless their
    class lacks the hook, in which case their fields are frozen the same way.

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
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
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
    if _is_attrs_class(cls) and _reduce_of(cls) is not readonly_reduce_ex:
        return _freeze_attrs(value)
    return value


def _reduce_of(cls: type) -> Callable[..., Any] | None:
    return getattr(cls, "__reduce_ex__", None)


def _freeze_attrs(value: Any) -> Any:
    """An ``attrs`` instance without the hook, rebuilt if any of its arrays was writeable."""
    cls = type(value)
    names = [f.name for f in attrs.fields(cls)]
    old = [getattr(value, n) for n in names]
    new = [freeze_arrays(v) for v in old]
    if all(a is b for a, b in zip(new, old, strict=True)):
        return value
    out = object.__new__(cls)
    for n, v in zip(names, new, strict=True):
        object.__setattr__(out, n, v)
    return out
