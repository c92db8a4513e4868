"""Which classes and functions a file may name, and under which names.

A file refers to classes (of attrs instances and namedtuples) and functions
(such as a layer's initialiser) by name. `load` resolves a name only to

- an object the user gave that name with `register`, or
- a class or function exported in the ``__all__`` of a public fnn module
  (``fnn``, ``fnn.layers``, ``fnn.optim``, ...: every module named ``fnn`` or
  ``fnn.<...>`` with no part starting with ``_``) that is already imported,
  under its ``module.qualname``; and a callable object exported there (such as
  the loss ``fnn.losses.mse``) under its public name.

The allowed names are rebuilt from ``sys.modules`` by each `save` and `load`,
so a module imported later (an optional extra) is covered once it is imported,
and they are read with ``vars(module)``, never ``getattr``: a module-level
``__getattr__`` that imports something lazily is never triggered. Nothing is
ever imported because a file names it, and a name is looked up only in these
dictionaries, never walked attribute by attribute.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable
from typing import Any, TypeVar, overload

from fnn.io.legacy import V0_1_0_NAMES

__all__ = ["register"]

T = TypeVar("T")

_BY_NAME: dict[str, object] = {}
_NAMES: dict[int, str] = {}  # id(obj) -> first registered name; _BY_NAME keeps obj alive


def _is_fnn(module: object) -> bool:
    return isinstance(module, str) and (module == "fnn" or module.startswith("fnn."))


def _public_modules() -> list[tuple[str, types.ModuleType]]:
    """The imported public fnn modules (no part of the dotted name starts with ``_``)."""
    return [
        (name, module)
        for name, module in list(sys.modules.items())
        if _is_fnn(name)
        and isinstance(module, types.ModuleType)
        and not any(part.startswith("_") for part in name.split("."))
    ]


def _exported(module: types.ModuleType) -> list[tuple[str, object]]:
    names = vars(module).get("__all__")
    if not isinstance(names, list | tuple):
        return []
    namespace = vars(module)
    return [(n, namespace[n]) for n in names if isinstance(n, str) and n in namespace]


class Names:
    """A snapshot of the allowed names: built once per `save` or `load`."""

    def __init__(self) -> None:
        self.builtin: dict[str, object] = {}  # fnn's own: module.qualname or public name
        self.public: dict[str, object] = {}  # every exported class/function/callable by public name
        self.name_ids: dict[int, str] = {}
        for module_name, module in _public_modules():
            for attr, obj in _exported(module):
                if inspect.ismodule(obj) or not callable(obj):
                    continue
                public = f"{module_name}.{attr}"
                self.public.setdefault(public, obj)
                defined_in, qualname = self._origin(obj)
                if defined_in is not None:  # a class or function: named where it is defined
                    name = f"{defined_in}.{qualname}"
                elif self._fnn_instance(obj):
                    name = public  # a callable object such as a loss: named where exported
                else:
                    continue
                if self.builtin.setdefault(name, obj) is obj:
                    self.name_ids.setdefault(id(obj), name)

    @staticmethod
    def _origin(obj: object) -> tuple[str | None, str]:
        if not (isinstance(obj, type) or inspect.isroutine(obj)):
            return None, ""
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if _is_fnn(module) and isinstance(qualname, str) and "<" not in qualname:
            return str(module), qualname
        return None, ""

    @staticmethod
    def _fnn_instance(obj: object) -> bool:
        return (
            not isinstance(obj, type)
            and not inspect.isroutine(obj)
            and _is_fnn(getattr(type(obj), "__module__", None))
        )

    def name_of(self, obj: object) -> str | None:
        """The name a file uses for ``obj``, or ``None`` if it has none."""
        name = _NAMES.get(id(obj))
        if name is not None and _BY_NAME.get(name) is obj:
            return name
        name = self.name_ids.get(id(obj))
        return name if name is not None and self.builtin.get(name) is obj else None

    def is_exported_object(self, obj: object) -> bool:
        """Whether ``obj`` is a callable object (not a class or function) fnn exports."""
        name = self.name_ids.get(id(obj))
        return name is not None and self.builtin.get(name) is obj and self._fnn_instance(obj)

    def resolve_builtin(self, name: str) -> object | None:
        obj = self.builtin.get(name)
        if obj is None and name in V0_1_0_NAMES:
            obj = self.public.get(V0_1_0_NAMES[name])
        return obj

    def resolve(self, name: str) -> object | None:
        """The object ``name`` stands for, or ``None``: a dictionary look-up, nothing else."""
        obj = _BY_NAME.get(name)
        return obj if obj is not None else self.resolve_builtin(name)


@overload
def register(obj: T, name: str | None = None) -> T: ...


@overload
def register(obj: None = None, name: str | None = None) -> Callable[[T], T]: ...


def register(obj: Any = None, name: str | None = None) -> Any:
    """Give a class or function a name under which files can refer to it.

    `load` resolves only names given here and the classes and functions
    exported in the ``__all__`` of fnn's public modules (which need no
    registration); it never imports a module because a file names it. Register
    your own layers and initialisers once, in the module that defines them, so
    that both `save` and `load` know them, and import that module before
    loading. Works as a decorator, with or without a name: ``@register`` or
    ``@register(name="mypkg.MyLayer")``.

    Args:
        obj: an attrs class (its instances can be saved), a namedtuple class,
            or a function (it can appear as a value, e.g. an initialiser).
        name: the name written to files; ``module.qualname`` by default. Keep it
            stable: files saved under a name load only while it is registered.

    Returns:
        ``obj`` itself (or, with ``obj`` omitted, a decorator doing this).

    Raises:
        TypeError: ``obj`` is neither a class nor callable, or ``name`` is not a str.
        ValueError: ``name`` is empty or already names a different object
            (registered, or one of fnn's own).

    Example:
        >>> def my_init(key, shape, dtype):
        ...     import numpy as np
        ...     return np.full(shape, 0.5, dtype)
        >>> register(my_init, name="docs.my_init") is my_init
        True
    """
    if obj is None:
        return lambda o: register(o, name)
    if not (isinstance(obj, type) or callable(obj)):
        raise TypeError(
            f"fnn.io.register: expected a class or a function, got {type(obj).__name__}; "
            "register the class of the objects you want to save, e.g. register(MyLayer)"
        )
    if name is None:
        name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"
        if "<" in name or "?" in name:
            raise ValueError(
                f"fnn.io.register: {obj!r} has no importable name ({name}); "
                "pass name='mypkg.thing' or define it at module level"
            )
    if not isinstance(name, str):
        raise TypeError(f"fnn.io.register: name must be a str, got {type(name).__name__}")
    if not name or name != name.strip():
        raise ValueError(f"fnn.io.register: name must be non-empty without spaces, got {name!r}")
    existing = _BY_NAME.get(name)
    if existing is None:
        existing = Names().resolve_builtin(name)
    if existing is not None and existing is not obj:
        raise ValueError(
            f"fnn.io.register: the name {name!r} already belongs to {existing!r}; "
            "choose another name (names in files must mean one thing)"
        )
    _BY_NAME[name] = obj
    _NAMES.setdefault(id(obj), name)
    return obj
