"""Save and load fnn trees (networks, optimizer states, checkpoints) without pickle.

The file is an ordinary ``.npz`` archive (readable by
``np.load(path, allow_pickle=False)``) holding

- ``fnn-header``: a UTF-8 JSON document stored as a 1-d ``uint8`` array. It
  names the format (``"fnn"``), the format version, the fnn version that wrote
  it, and describes the whole tree: containers, attrs instances by registered
  class name with every field, ints, floats, strings, bools, ``None``, NumPy
  dtypes and scalars, and functions (such as the initialiser in
  ``Dense.w_init``) by registered name;
- ``arrays/<path>``: one ``.npy`` entry per array leaf, named by its tree path
  (``arrays/layers[0].w``; a bare array at the root is ``arrays/<root>``).

Loading never unpickles and never runs code from the file: classes and
functions are looked up by name, either in fnn's own modules or in the names a
user registered with `register`. attrs instances are rebuilt through
their constructors, so their validators and converters run on loaded values;
every loaded array is read-only.

Example:
    >>> import os, tempfile, fnn
    >>> net = fnn.init([fnn.Dense(2), fnn.Tanh()], (3,), key=0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     written = save(os.path.join(d, "model"), {"net": net, "epoch": 3})
    ...     back = load(written)
    >>> written.name, back["epoch"]
    ('model.npz', 3)
    >>> fnn.tree.allclose(back["net"], net)
    True
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import struct
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar, cast, overload

import attrs
import numpy as np

from fnn import tree as _tree

__all__ = ["FORMAT_VERSION", "load", "register", "save"]

FORMAT_NAME = "fnn"
FORMAT_VERSION = 1
"""The newest file-format version this fnn writes and reads."""

_HEADER = "fnn-header"
_ARRAYS = "arrays/"
_ROOT = "<root>"
_MAX_HEADER_BYTES = 256 * 2**20
_KINDS = "biufc"  # bool, signed, unsigned, float, complex: nothing that can hold objects

T = TypeVar("T")

_BY_NAME: dict[str, object] = {}
_NAMES: dict[int, str] = {}  # id(obj) -> first registered name; _BY_NAME keeps obj alive


# ---------------------------------------------------------------------------
# The registry: names for classes and functions.


@overload
def register(obj: T, name: str | None = None) -> T: ...


@overload
def register(obj: None = None, name: str | None = None) -> Callable[[T], T]: ...


def register(obj: Any = None, name: str | None = None) -> Any:
    """Give a class or function a name under which files can refer to it.

    fnn's own classes and functions (layers, ``Network``, ``Key``, optimizer
    states, initialisers) need no registration: they are found by their
    ``module.qualname`` in fnn's modules. Register your own layers and
    initialisers once, in the module that defines them, so that both
    `save` and `load` know them. Works as a decorator, with or
    without a name: ``@register`` or ``@register(name="mypkg.MyLayer")``.

    Args:
        obj: an attrs class (its instances can be saved), a namedtuple class,
            or a function (it can appear as a value, e.g. an initialiser).
        name: the name written to files; ``module.qualname`` by default. Keep it
            stable: files saved under a name load only while it is registered.

    Returns:
        ``obj`` itself (or, with ``obj`` omitted, a decorator doing this).

    Raises:
        TypeError: ``obj`` is neither a class nor callable, or ``name`` is not a str.
        ValueError: ``name`` is empty or already names a different object.

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
    if existing is not None and existing is not obj:
        raise ValueError(
            f"fnn.io.register: the name {name!r} already belongs to {existing!r}; "
            "choose another name (names in files must mean one thing)"
        )
    _BY_NAME[name] = obj
    _NAMES.setdefault(id(obj), name)
    return obj


def _is_fnn_module(module: str) -> bool:
    return module == "fnn" or module.startswith("fnn.")


def _lookup_fnn(name: str) -> object | None:
    """Find ``fnn.some.module.Qual.Name`` defined in fnn's own modules, else ``None``."""
    parts = name.split(".")
    if not all(p.isidentifier() for p in parts) or parts[0] != "fnn":
        return None
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        try:
            module: object = sys.modules.get(module_name) or importlib.import_module(module_name)
        except ImportError:
            continue
        obj: object = module
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj if getattr(obj, "__module__", None) == module_name else None
    return None


def _name_of(obj: object) -> str | None:
    name = _NAMES.get(id(obj))
    if name is not None and _BY_NAME.get(name) is obj:
        return name
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and _is_fnn_module(module):
        candidate = f"{module}.{qualname}"
        if _lookup_fnn(candidate) is obj:
            return candidate
    return None


def _resolve(name: str) -> object | None:
    obj = _BY_NAME.get(name)
    return obj if obj is not None else _lookup_fnn(name)


# ---------------------------------------------------------------------------
# Encoding a tree as JSON plus arrays.


def _unnamed(who: str, what: str, obj: object, path: str) -> TypeError:
    where = path.lstrip(".") or _ROOT
    return TypeError(
        f"{who}: cannot save {what} {obj!r} at {where}: it is not registered; "
        "call fnn.io.register(...) on it (or decorate it with @fnn.io.register) in the "
        "module that defines it, so that load can find it by name too"
    )


def _check_dtype(who: str, dtype: np.dtype, path: str) -> None:
    if dtype.kind not in _KINDS or dtype.fields is not None:
        raise TypeError(
            f"{who}: cannot save dtype {dtype} at {path.lstrip('.') or _ROOT}: only bool, "
            "integer, float and complex arrays are stored (no object arrays, no pickle)"
        )


def _float(x: float) -> object:
    if math.isfinite(x):
        return x
    return {"t": "float", "value": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


def _encode(who: str, x: object, path: str, arrays: dict[str, np.ndarray]) -> object:
    """JSON node for ``x``; array leaves go into ``arrays`` keyed by entry name."""
    if isinstance(x, np.ndarray):
        _check_dtype(who, x.dtype, path)
        entry = _ARRAYS + (path.lstrip(".") or _ROOT)
        arrays[entry] = x
        return {"t": "array", "name": entry, "dtype": x.dtype.str, "shape": list(x.shape)}
    if isinstance(x, np.generic):
        _check_dtype(who, x.dtype, path)
        if x.dtype.kind == "c":
            raise TypeError(f"{who}: complex scalar at {path.lstrip('.')}: store it as a 0-d array")
        value = _float(x.item()) if x.dtype.kind == "f" else x.item()
        return {"t": "scalar", "dtype": x.dtype.str, "value": value}
    if x is None or isinstance(x, bool | int | str):
        return x
    if isinstance(x, float):
        return _float(x)
    if isinstance(x, np.dtype):
        _check_dtype(who, x, path)
        return {"t": "dtype", "value": x.str}
    if isinstance(x, tuple) and hasattr(type(x), "_fields"):
        name = _name_of(type(x))
        if name is None:
            raise _unnamed(who, "namedtuple class", type(x), path)
        items = [_encode(who, v, f"{path}[{i}]", arrays) for i, v in enumerate(x)]
        return {"t": "namedtuple", "class": name, "items": items}
    if type(x) in (tuple, list):
        seq = cast("tuple[object, ...] | list[object]", x)
        items = [_encode(who, v, f"{path}[{i}]", arrays) for i, v in enumerate(seq)]
        return {"t": type(x).__name__, "items": items}
    if type(x) is dict:
        pairs = []
        for k, v in cast("dict[object, object]", x).items():
            if isinstance(k, bool) or not isinstance(k, str | int):
                raise TypeError(
                    f"{who}: dict key {k!r} at {path.lstrip('.') or _ROOT} is not a str or int; "
                    "use string keys such as {'net': net, 'epoch': 3}"
                )
            pairs.append([k, _encode(who, v, f"{path}[{k!r}]", arrays)])
        return {"t": "dict", "items": pairs}
    if attrs.has(type(x)):
        name = _name_of(type(x))
        if name is None:
            raise _unnamed(who, "class", type(x), path)
        fields = {
            f.name: _encode(who, getattr(x, f.name), f"{path}.{f.name}", arrays)
            for f in attrs.fields(cast(Any, type(x)))
        }
        return {"t": "attrs", "class": name, "fields": fields}
    if isinstance(x, type) or callable(x):
        name = _name_of(x)
        if name is None:
            raise _unnamed(who, "function" if not isinstance(x, type) else "class", x, path)
        return {"t": "ref", "name": name}
    raise TypeError(
        f"{who}: cannot save a {type(x).__name__} at {path.lstrip('.') or _ROOT}; fnn files hold "
        "arrays, attrs instances, tuples, lists, dicts, numbers, strings, bools, None, "
        "dtypes and registered functions"
    )


def _fnn_version() -> str:
    return str(getattr(sys.modules.get("fnn"), "__version__", "unknown"))


def _npz_path(path: object, who: str) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{who}: path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    return p if p.suffix == ".npz" else p.with_name(p.name + ".npz")


def _write_npz(f: IO[bytes], entries: dict[str, np.ndarray], compress: bool) -> None:
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(f, "w", compression=method, allowZip64=True) as zf:
        for name, array in entries.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=False)


def _file_mode(target: Path) -> int:
    if target.exists():
        return target.stat().st_mode & 0o777
    # The process umask can only be read by setting it; restore it at once.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write(target: Path, entries: dict[str, np.ndarray], compress: bool) -> None:
    """Write to a temp file beside ``target``, fsync, then rename over it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, entries, compress)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where directories can be fsynced
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def save(path: str | os.PathLike[str], tree: object, *, compress: bool = False) -> Path:
    """Write ``tree`` to an ``.npz`` file, atomically, without pickle.

    ``tree`` is any nesting of ``Network``, layers, optimizer states and other
    attrs instances, tuples, lists, dicts (str or int keys), arrays, ints,
    floats, strings, bools, ``None``, ``np.dtype``, ``fnn.random.Key`` and
    registered functions, e.g. a checkpoint
    ``{"net": net, "opt_state": state, "epoch": 3, "key": key}``.

    The file name always ends in ``.npz``: ``save("model", t)`` writes
    ``model.npz`` (as ``np.savez`` would) and `load` applies the same rule,
    so ``load("model")`` reads it back. The data goes to a temporary file in the
    same directory, is flushed and fsynced, and then renamed over the target,
    so a crash or error leaves the previous file intact and no temp file behind.

    Args:
        path: where to write; ``.npz`` is appended unless already the suffix.
        tree: the value to save.
        compress: deflate the entries (smaller, slower); stored uncompressed by default.

    Returns:
        The path written (with the ``.npz`` suffix).

    Raises:
        TypeError: ``tree`` holds something fnn files cannot store (an object
            array, an unregistered class or function, a lambda); names its path.
        FileNotFoundError: the parent directory does not exist.

    Example:
        >>> import os, tempfile, numpy as np
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = save(os.path.join(d, "ckpt"), {"w": np.eye(2), "step": 10})
        ...     print(p.name, load(p)["step"])
        ckpt.npz 10
    """
    who = "fnn.io.save"
    target = _npz_path(path, who)
    if not target.parent.is_dir():
        raise FileNotFoundError(
            f"{who}: the directory {str(target.parent)!r} does not exist; create it first "
            "(os.makedirs(..., exist_ok=True)) or choose another path"
        )
    arrays: dict[str, np.ndarray] = {}
    try:
        root = _encode(who, tree, "", arrays)
    except RecursionError:
        raise ValueError(
            f"{who}: the tree nests deeper than Python's recursion limit; flatten it"
        ) from None
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fnn_version": _fnn_version(),
        "tree": root,
    }
    text = json.dumps(header, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    entries = {_HEADER: np.frombuffer(text.encode("utf-8"), dtype=np.uint8), **arrays}
    _atomic_write(target, entries, compress)
    return target


# ---------------------------------------------------------------------------
# Decoding: a reader that checks everything before it allocates.


class _BadFile(ValueError):
    """A file that is not a valid fnn file; the message names the file."""


class _Reader:
    def __init__(self, zf: zipfile.ZipFile, file: Path) -> None:
        self.zf = zf
        self.file = file
        self.size = file.stat().st_size
        self.entries = {i.filename: i for i in zf.infolist()}
        self.used: set[str] = set()

    def fail(self, problem: str) -> _BadFile:
        return _BadFile(f"fnn.io.load: {self.file}: {problem}")

    def read_entry(
        self, name: str, dtype: np.dtype | None, shape: tuple[int, ...] | None
    ) -> np.ndarray:
        """Read one ``.npy`` entry after checking its header against the declaration."""
        info = self.entries.get(name + ".npy")
        if info is None:
            raise self.fail(f"the array entry {name!r} is missing")
        if name in self.used:
            raise self.fail(f"the array entry {name!r} is referenced twice")
        self.used.add(name)
        if info.compress_type == zipfile.ZIP_STORED and (
            info.compress_size != info.file_size or info.header_offset + info.file_size > self.size
        ):
            raise self.fail(f"the entry {name!r} claims more bytes than the file holds")
        with self.zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                got_shape, fortran, got_dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                got_shape, fortran, got_dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise self.fail(f"the entry {name!r} has unknown .npy version {version}")
            if got_dtype.hasobject or got_dtype.kind not in _KINDS:
                raise self.fail(
                    f"the entry {name!r} has dtype {got_dtype}; object arrays are refused "
                    "(fnn files never contain pickles)"
                )
            if dtype is not None and (got_dtype != dtype or tuple(got_shape) != shape):
                raise self.fail(
                    f"the entry {name!r} holds {got_dtype} {tuple(got_shape)} but the header "
                    f"declares {dtype} {shape}"
                )
            count = math.prod(got_shape)
            nbytes = count * got_dtype.itemsize
            if info.file_size != f.tell() + nbytes:
                raise self.fail(
                    f"the entry {name!r} has {info.file_size} bytes, its shape needs "
                    f"{f.tell() + nbytes}"
                )
            data = f.read(nbytes)
            if len(data) != nbytes or f.read(1):  # reading to the end verifies the CRC
                raise self.fail(f"the entry {name!r} is truncated or has trailing bytes")
        flat = np.frombuffer(data, dtype=got_dtype, count=count)  # read-only: backed by bytes
        array: np.ndarray = flat.reshape(tuple(got_shape), order="F" if fortran else "C")
        return array

    def header(self) -> Any:
        info = self.entries.get(_HEADER + ".npy")
        if info is None:
            raise self.fail(
                "no fnn header: this .npz was not written by fnn.io.save "
                "(read plain archives with np.load(path, allow_pickle=False))"
            )
        if info.file_size > _MAX_HEADER_BYTES:
            raise self.fail(f"the header entry is implausibly large ({info.file_size} bytes)")
        raw = self.read_entry(_HEADER, None, None)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise self.fail("the header entry is not a 1-d uint8 array")
        try:
            doc = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise self.fail(f"the header is not valid JSON ({err})") from None
        except RecursionError:
            raise self.fail("the header nests deeper than Python can parse") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
            raise self.fail("not an fnn file (the header does not name the 'fnn' format)")
        version = doc.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise self.fail(f"invalid format version {version!r}")
        if version > FORMAT_VERSION:
            raise self.fail(
                f"written with file-format version {version} (fnn {doc.get('fnn_version')}), "
                f"but this fnn reads versions up to {FORMAT_VERSION}; upgrade fnn to load it"
            )
        return doc

    def read(self) -> object:
        doc = self.header()
        if "tree" not in doc:
            raise self.fail("the header has no 'tree'")
        try:
            out = self.decode(doc["tree"], "")
        except RecursionError:
            raise self.fail("the tree nests deeper than Python can rebuild") from None
        extra = set(self.entries) - {n + ".npy" for n in self.used}
        if extra:
            raise self.fail(f"unexpected entries {sorted(extra)[:5]} not described by the header")
        return out

    def decode(self, node: object, path: str) -> object:
        if node is None or isinstance(node, bool | int | float | str):
            return node
        where = path.lstrip(".") or _ROOT
        if not isinstance(node, dict) or not isinstance(node.get("t"), str):
            raise self.fail(f"malformed header at {where}: {str(node)[:80]}")
        try:
            return self.decode_tagged(node, path, where)
        except (KeyError, TypeError, AttributeError) as err:
            raise self.fail(f"malformed header at {where}: {type(err).__name__} {err}") from None

    def decode_tagged(self, node: dict[str, Any], path: str, where: str) -> object:
        t = node["t"]
        if t == "array":
            dtype = self.dtype(node["dtype"], where)
            shape = tuple(int(d) for d in node["shape"])
            return self.read_entry(str(node["name"]), dtype, shape)
        if t == "float":
            if node["value"] not in ("nan", "inf", "-inf"):
                raise self.fail(f"malformed float at {where}: {node['value']!r}")
            return float(node["value"])
        if t == "scalar":
            value = node["value"]
            if isinstance(value, dict):
                value = self.decode(value, path)
            return self.dtype(node["dtype"], where).type(value)
        if t == "dtype":
            return self.dtype(node["value"], where)
        if t in ("tuple", "list"):
            items = [self.decode(v, f"{path}[{i}]") for i, v in enumerate(node["items"])]
            return tuple(items) if t == "tuple" else items
        if t == "dict":
            out: dict[object, object] = {}
            for k, v in node["items"]:
                if isinstance(k, bool) or not isinstance(k, str | int) or k in out:
                    raise self.fail(f"bad dict key {k!r} at {where}")
                out[k] = self.decode(v, f"{path}[{k!r}]")
            return out
        if t == "ref":
            return self.lookup(str(node["name"]), where, "function")
        if t == "namedtuple":
            cls = self.lookup(str(node["class"]), where, "class")
            if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
                raise self.fail(f"{node['class']} at {where} is not a namedtuple class")
            items = [self.decode(v, f"{path}[{i}]") for i, v in enumerate(node["items"])]
            return self.build(cls, where, lambda c: c(*items))
        if t == "attrs":
            return self.decode_attrs(node, path, where)
        raise self.fail(f"malformed header at {where}: unknown node type {t!r}")

    def decode_attrs(self, node: dict[str, Any], path: str, where: str) -> object:
        name = str(node["class"])
        cls = self.lookup(name, where, "class")
        if not (isinstance(cls, type) and attrs.has(cls)):
            raise self.fail(f"{name} at {where} is not an attrs class")
        saved = node["fields"]
        fields = {f.name: f for f in attrs.fields(cls)}
        unknown = set(saved) - set(fields)
        if unknown:
            raise self.fail(
                f"{name} at {where} has no fields {sorted(unknown)} (saved by another version "
                "of that class?)"
            )
        values = {n: self.decode(v, f"{path}.{n}") for n, v in saved.items()}
        kwargs = {fields[n].alias: v for n, v in values.items() if fields[n].init}
        late = {n: v for n, v in values.items() if not fields[n].init}

        def make(c: Any) -> object:
            obj = c(**kwargs)
            for n, v in late.items():  # derived fields: restore the saved value
                object.__setattr__(obj, n, v)
            return obj

        return self.build(cls, where, make)

    def build(self, cls: object, where: str, make: Callable[[Any], object]) -> object:
        try:
            return make(cls)
        except (TypeError, ValueError) as err:
            what = getattr(cls, "__name__", cls)
            raise self.fail(f"could not rebuild {what} at {where}: {err}") from err

    def lookup(self, name: str, where: str, what: str) -> object:
        obj = _resolve(name)
        if obj is None:
            raise self.fail(
                f"unknown {what} {name!r} at {where}; if it is your own, import its module and "
                f"register it before loading: fnn.io.register(obj, name={name!r})"
            )
        return obj

    def dtype(self, text: object, where: str) -> np.dtype:
        try:
            dt = np.dtype(str(text))
        except TypeError:
            raise self.fail(f"bad dtype {text!r} at {where}") from None
        if dt.kind not in _KINDS or dt.fields is not None:
            raise self.fail(f"dtype {dt} at {where} is not allowed (numeric dtypes only)")
        return dt


def _check_like(who: str, file: Path, loaded: object, like: object) -> None:
    try:
        _tree.check_same_structure(like, loaded)
    except ValueError as err:
        raise ValueError(f"{who}: {file} does not match `like`: {err}") from None
    pairs = zip(_tree.leaves_with_path(like), _tree.leaves_with_path(loaded), strict=True)
    for (path, a), (_, b) in pairs:
        if a.dtype != b.dtype:
            raise ValueError(
                f"{who}: {file} does not match `like` at {path or _ROOT}: dtype {a.dtype} "
                f"expected, the file has {b.dtype}"
            )


def load(path: str | os.PathLike[str], like: object = None) -> Any:
    """Read a tree written by `save`; never unpickles, never runs code from the file.

    The path gets ``.npz`` appended unless it already ends so (the same rule as
    `save`). Classes and functions named in the file are found among
    fnn's own modules and the names given to `register`. Every array
    entry's dtype, shape and byte count are checked against the header before
    it is read; object arrays are refused.

    Args:
        path: the file.
        like: optional tree the result must match: same containers and classes,
            same array shapes and dtypes (e.g. a freshly initialised network).

    Returns:
        The tree, with read-only arrays and attrs instances rebuilt through
        their constructors (so their validators ran).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is truncated, corrupted, not an fnn file, from a
            newer format version, names an unknown class or function (the
            message says how to register it), or does not match ``like`` (the
            message names the first differing path). Always names the file.

    Example:
        >>> import os, tempfile, numpy as np
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = save(os.path.join(d, "t"), (np.zeros(2), "tag"))
        ...     back = load(os.path.join(d, "t"), like=(np.ones(2), "other"))
        >>> back[1], back[0].flags.writeable
        ('tag', False)
    """
    who = "fnn.io.load"
    target = _npz_path(path, who)
    if not target.is_file():
        hint = f" (save adds .npz: {target.name})" if target != Path(path) else ""
        raise FileNotFoundError(f"{who}: no such file {str(target)!r}{hint}")
    try:
        with zipfile.ZipFile(target) as zf:
            loaded = _Reader(zf, target).read()
    except _BadFile:
        raise
    except (PermissionError, FileNotFoundError, IsADirectoryError):
        raise
    except OSError as err:  # e.g. a seek to a corrupted (negative) offset
        raise ValueError(f"{who}: {target}: the file is corrupted ({err})") from err
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        struct.error,
        UnicodeDecodeError,
        OverflowError,
        NotImplementedError,
        ValueError,
    ) as err:
        raise ValueError(
            f"{who}: {target}: the file is truncated or corrupted ({type(err).__name__}: {err})"
        ) from err
    if like is not None:
        _check_like(who, target, loaded, like)
    return loaded
