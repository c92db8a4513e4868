"""Decoding: a reader that checks everything before it allocates or builds anything.

The order of `load` is: open a regular file without blocking; check the zip
directory (methods, duplicates, overlaps: `fnn.io.archive`); charge the
declared sizes against ``max_bytes``; read the JSON header and charge what
parsing it can take (`fnn.io.archive.header_cost`) before parsing it; then rebuild
the tree node by node, each array entry's ``.npy`` header checked against the JSON
header before its bytes are read into a fresh read-only array. Names of
classes and functions resolve only through `fnn.io.registry`; nothing is
imported, no pickle is read, no method of a loaded value is called except the
constructors of allowed attrs classes and namedtuples.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from fnn import tree as _tree
from fnn.io import spec
from fnn.io.archive import (
    HEADER_WEIGHT,
    Archive,
    BadFile,
    Entry,
    check_max_bytes,
    header_cost,
    open_regular,
)
from fnn.io.legacy import RETIRED_IN_0_2
from fnn.io.registry import Names

__all__ = ["load"]

_DTYPE_ERRORS = (TypeError, ValueError, SyntaxError, KeyError)  # what np.dtype(str) raises
_MAX_NPY_HEADER = 10_000  # the largest .npy header NumPy itself reads by default
_CONTAINERS = ("tuple", "list", "dict", "namedtuple", "attrs")


class _Decoder:
    def __init__(self, archive: Archive, names: Names) -> None:
        self.archive = archive
        self.names = names
        self.used: set[str] = set()
        self.writer: object = None  # the fnn version that wrote the file, from its header

    def fail(self, problem: str) -> BadFile:
        return self.archive.fail(problem)

    def open_npy(
        self, name: str, dtype: np.dtype | None, shape: tuple[int, ...] | None
    ) -> tuple[Entry, tuple[int, ...], bool, np.dtype]:
        """Open one ``.npy`` entry and check its header against the declaration."""
        if name + ".npy" not in self.archive.entries:
            raise self.fail(f"the array entry {name!r} is missing")
        if name in self.used:
            raise self.fail(f"the array entry {name!r} is referenced twice")
        self.used.add(name)
        f = self.archive.open(name + ".npy")
        got_shape, fortran, got_dtype = self.npy_header(f, name)
        if dtype is not None and (got_dtype != dtype or got_shape != shape):
            raise self.fail(
                f"the entry {name!r} holds {got_dtype} {got_shape} but the header "
                f"declares {dtype} {shape}"
            )
        nbytes = math.prod(got_shape) * got_dtype.itemsize
        if f.left != nbytes:  # checked before allocating: sizes are within the budget
            raise self.fail(
                f"the entry {name!r} has {f.info.file_size} bytes, its shape needs "
                f"{f.info.file_size - f.left + nbytes}"
            )
        return f, got_shape, bool(fortran), got_dtype

    def npy_header(self, f: Entry, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
        """Parse an ``.npy`` header (versions 1-3) strictly: shape, Fortran order, dtype.

        Object dtypes (pickles) and anything but plain numeric dtypes are refused.
        """
        magic = f.read(8)
        if len(magic) != 8 or magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3) or magic[7]:
            raise self.fail(f"the entry {name!r} is not an .npy array (bad magic {magic!r})")
        size = struct.Struct("<H" if magic[6] == 1 else "<I")
        length = size.unpack(f.read(size.size).ljust(size.size, b"\0"))[0]
        if length > _MAX_NPY_HEADER:
            raise self.fail(f"the entry {name!r} has an implausible .npy header of {length} bytes")
        text = f.read(length).decode("latin1" if magic[6] < 3 else "utf-8", "replace")
        try:
            d = ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            d = None
        ok = (
            type(d) is dict
            and set(d) == {"descr", "fortran_order", "shape"}
            and type(d["fortran_order"]) is bool
            and type(d["shape"]) is tuple
            and all(type(n) is int and n >= 0 for n in d["shape"])
        )
        if not ok:
            raise self.fail(f"the entry {name!r} has a corrupted .npy header {text[:80]!r}")
        descr, pickled = d["descr"], False
        if type(descr) is str and len(descr) <= 16:
            with contextlib.suppress(*_DTYPE_ERRORS):
                pickled = np.dtype(descr).hasobject
        if pickled:
            raise self.fail(
                f"the entry {name!r} has dtype object; object arrays are refused "
                "(fnn files never contain pickles)"
            )
        dtype = self.dtype(descr, f"the entry {name!r}")
        return d["shape"], d["fortran_order"], dtype

    def fill(self, f: Entry, buffer: bytearray | np.ndarray) -> None:
        """Read the rest of entry ``f`` into ``buffer`` (exactly its size), then check its end."""
        view = memoryview(buffer.data if isinstance(buffer, np.ndarray) else buffer)
        if f.readinto(view) != len(view):
            raise self.fail(f"the entry {f.info.filename!r} is truncated")
        f.finish()

    def read_array(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        """A fresh read-only array holding entry ``name``."""
        f, shape, fortran, dtype = self.open_npy(name, dtype, shape)
        owner = np.empty(f.left, np.uint8)
        self.fill(f, owner)
        owner.flags.writeable = False  # and so is every view of it: nobody can flip it back
        array: np.ndarray = owner.view(dtype).reshape(shape, order="F" if fortran else "C")
        return array

    def header(self) -> Any:
        entry = spec.HEADER + ".npy"
        if entry not in self.archive.entries:
            raise self.fail(
                "no fnn header: this .npz was not written by fnn.io.save "
                "(read plain archives with np.load(path, allow_pickle=False))"
            )
        self.archive.charge_declared(entry, HEADER_WEIGHT)
        f, shape, _, dtype = self.open_npy(spec.HEADER, None, None)
        if dtype != np.uint8 or len(shape) != 1:
            raise self.fail("the header entry is not a 1-d uint8 array")
        text = bytearray(f.left)
        self.fill(f, text)
        need = header_cost(text) + sum(
            i.file_size for n, i in self.archive.entries.items() if n != entry
        )
        if need > self.archive.budget:
            raise self.archive.over_budget("parsing its header and reading its arrays", need)
        try:
            doc = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise self.fail(f"the header is not valid JSON ({err})") from None
        except RecursionError:
            raise self.fail("the header nests deeper than Python can parse") from None
        if not isinstance(doc, dict) or doc.get("format") != spec.FORMAT_NAME:
            raise self.fail("not an fnn file (the header does not name the 'fnn' format)")
        version = doc.get("format_version")
        if type(version) is not int or version < 1:
            raise self.fail(f"invalid format version {version!r}")
        if version > spec.FORMAT_VERSION:
            raise self.fail(
                f"written with file-format version {version} (fnn {doc.get('fnn_version')}), "
                f"but this fnn reads versions up to {spec.FORMAT_VERSION}; upgrade fnn to load it"
            )
        self.writer = doc.get("fnn_version")
        return doc

    def read(self) -> object:
        doc = self.header()
        if "tree" not in doc:
            raise self.fail("the header has no 'tree'")
        try:
            out = self.decode(doc["tree"], "", 0)
        except RecursionError:
            raise self.fail("the tree nests deeper than Python can rebuild here") from None
        extra = set(self.archive.entries) - {n + ".npy" for n in self.used}
        if extra:
            raise self.fail(f"unexpected entries {sorted(extra)[:5]} not described by the header")
        return out

    def decode(self, node: object, path: str, depth: int) -> object:
        if node is None or type(node) in (bool, int, float, str):
            return node
        where = spec.where(path)
        if not isinstance(node, dict) or not isinstance(node.get("t"), str):
            raise self.fail(f"malformed header at {where}: {str(node)[:80]}")
        if node["t"] in _CONTAINERS and depth >= spec.MAX_DEPTH:
            raise self.fail(
                f"the tree nests deeper than {spec.MAX_DEPTH} levels at {where} (fnn.save "
                "writes no deeper)"
            )
        try:
            return self.decode_tagged(node, path, where, depth + 1)
        except (KeyError, TypeError, AttributeError) as err:
            raise self.fail(f"malformed header at {where}: {type(err).__name__} {err}") from None

    def field(self, node: dict[str, Any], key: str, kind: type, where: str) -> Any:
        value = node[key]
        if type(value) is not kind:
            raise self.fail(f"malformed header at {where}: {key!r} is not a {kind.__name__}")
        return value

    def decode_tagged(self, node: dict[str, Any], path: str, where: str, depth: int) -> object:
        t = node["t"]
        if t == "array":
            dtype = self.dtype(node["dtype"], where)
            shape = self.field(node, "shape", list, where)
            if not all(type(d) is int and d >= 0 for d in shape):
                raise self.fail(f"malformed header at {where}: bad shape {str(shape)[:80]}")
            return self.read_array(self.field(node, "name", str, where), dtype, tuple(shape))
        if t == "float":
            if node["value"] not in ("nan", "inf", "-inf"):
                raise self.fail(f"malformed float at {where}: {node['value']!r}")
            return float(node["value"])
        if t == "scalar":
            return self.scalar(node, where)
        if t == "dtype":
            return self.dtype(node["value"], where)
        if t in ("tuple", "list"):
            items = self.field(node, "items", list, where)
            decoded = [self.decode(v, f"{path}[{i}]", depth) for i, v in enumerate(items)]
            return tuple(decoded) if t == "tuple" else decoded
        if t == "dict":
            return self.decode_dict(self.field(node, "items", list, where), path, where, depth)
        if t == "ref":
            return self.lookup(self.field(node, "name", str, where), where, "function")
        if t == "namedtuple":
            cls = self.lookup(self.field(node, "class", str, where), where, "class")
            if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
                raise self.fail(f"{node['class']} at {where} is not a namedtuple class")
            items = self.field(node, "items", list, where)
            decoded = [self.decode(v, f"{path}[{i}]", depth) for i, v in enumerate(items)]
            return self.build(cls, where, lambda c: c(*decoded))
        if t == "attrs":
            return self.decode_attrs(node, path, where, depth)
        raise self.fail(f"malformed header at {where}: unknown node type {t!r}")

    def decode_dict(self, pairs: list[Any], path: str, where: str, depth: int) -> object:
        out: dict[object, object] = {}
        for pair in pairs:
            if type(pair) is not list or len(pair) != 2:
                raise self.fail(f"malformed header at {where}: a dict item is not a [key, value]")
            k, v = pair
            if type(k) not in (str, int) or k in out:
                raise self.fail(f"bad dict key {str(k)[:80]} at {where}")
            out[k] = self.decode(v, f"{path}[{k!r}]", depth)
        return out

    def decode_attrs(self, node: dict[str, Any], path: str, where: str, depth: int) -> object:
        name = self.field(node, "class", str, where)
        cls = self.lookup(name, where, "class")
        if not (isinstance(cls, type) and attrs.has(cls)):
            raise self.fail(f"{name} at {where} is not an attrs class")
        saved = self.field(node, "fields", dict, where)
        fields = {f.name: f for f in attrs.fields(cls)}
        unknown = set(saved) - set(fields)
        if unknown:
            raise self.fail(
                f"{name} at {where} has no fields {sorted(unknown)} (saved by another version "
                "of that class?)"
            )
        values = {n: self.decode(v, f"{path}.{n}", depth) for n, v in saved.items()}
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
        written_by_0_1 = isinstance(self.writer, str) and self.writer.startswith("0.1.")
        if name in RETIRED_IN_0_2 and written_by_0_1:
            raise self.fail(f"{what} {name!r} at {where} is {RETIRED_IN_0_2[name]}")
        obj = self.names.resolve(name)
        if obj is None:
            raise self.fail(
                f"unknown {what} {name!r} at {where}; fnn loads only names exported by fnn's "
                "public modules and names registered in this process: if it is your own, import "
                f"the module that defines it and register it before loading: "
                f"fnn.io.register(obj, name={name!r})"
            )
        return obj

    def scalar(self, node: dict[str, Any], where: str) -> np.generic:
        """A NumPy scalar (immutable): the value must be a number of the dtype's kind."""
        dt = self.dtype(node["dtype"], where)
        value = node["value"]
        if isinstance(value, dict) and value.get("t") == "float":
            value = self.decode_tagged(value, "", where, 0)
        if dt.kind == "b":
            ok = type(value) is bool
        elif dt.kind in "iu":
            ok = type(value) is int and int(np.iinfo(dt).min) <= value <= int(np.iinfo(dt).max)
        else:
            ok = dt.kind == "f" and dt.itemsize <= 8 and type(value) in (int, float)
        if ok:
            with np.errstate(all="ignore"):
                out = dt.type(value)
            if dt.kind != "f" or float(out) == value or (math.isnan(value) and math.isnan(out)):
                return out  # type: ignore[no-any-return]
        raise self.fail(f"malformed {dt} scalar at {where}: {str(value)[:80]}")

    def dtype(self, text: object, where: str) -> np.dtype:
        if type(text) is not str or len(text) > 16:
            raise self.fail(f"bad dtype {str(text)[:80]!r} at {where}")
        try:
            dt = np.dtype(text)
        except _DTYPE_ERRORS:
            raise self.fail(f"bad dtype {text!r} at {where}") from None
        if dt.kind not in spec.KINDS or dt.fields is not None or dt.subdtype is not None:
            raise self.fail(f"dtype {dt} at {where} is not allowed (numeric dtypes only)")
        return dt


def _check_like(who: str, file: os.PathLike[str], loaded: object, like: object) -> None:
    try:
        _tree.check_same_structure(like, loaded)
    except ValueError as err:
        raise ValueError(f"{who}: {file} does not match `like`: {err}") from None
    pairs = zip(_tree.leaves_with_path(like), _tree.leaves_with_path(loaded), strict=True)
    for (path, a), (_, b) in pairs:
        if a.dtype != b.dtype:
            raise ValueError(
                f"{who}: {file} does not match `like` at {path or spec.ROOT}: dtype {a.dtype} "
                f"expected, the file has {b.dtype}"
            )


def load(path: str | os.PathLike[str], like: object = None, *, max_bytes: int | None = None) -> Any:
    """Read a tree written by `save`; never unpickles, never imports, never runs code from the file.

    The path gets ``.npz`` appended unless it already ends so (the same rule as
    `save`). Classes and functions named in the file resolve only to fnn's own
    (those exported in the ``__all__`` of its public modules) and to the names
    given to `register` in this process; nothing is imported because a file
    names it. Every array entry's dtype, shape and byte count are checked
    against the header before it is read; object arrays are refused.

    ``max_bytes`` bounds what decoding the file may take: the arrays' bytes
    plus an upper bound of what parsing the JSON header takes. By default it is
    64 times the file's size and at least 256 MiB, which every file `save`
    writes uncompressed meets, and so do compressed ones unless their data
    compress better than 64:1 and exceed 256 MiB (a network of zeros): a file
    over the limit is refused before anything of that size is read, with the
    number to pass as ``max_bytes`` if you trust the file.

    Args:
        path: the file (a regular file: a FIFO or device is refused at once).
        like: optional tree the result must match: same containers and classes,
            same array shapes and dtypes (e.g. a freshly initialised network).
        max_bytes: the most, in bytes, decoding may take (``None``: the default above).

    Returns:
        The tree, with read-only arrays, immutable NumPy scalars and attrs
        instances rebuilt through their constructors (so their validators ran).

    Raises:
        FileNotFoundError: no such file.
        IsADirectoryError: the path is a directory.
        TypeError: ``max_bytes`` is not an int.
        ValueError: the file is truncated, corrupted, not an fnn file, from a
            newer format version, not a regular file, over ``max_bytes`` (the
            message says what to pass), compressed with another method than
            deflate, has duplicate or overlapping entries, names an unknown
            class or function (the message says how to register it), nests
            deeper than 100 levels, or does not match ``like`` (the message
            names the first differing path). Always names the file.

    Example:
        >>> import os, tempfile, numpy as np
        >>> from fnn.io import save
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = save(os.path.join(d, "t"), (np.zeros(2), "tag"))
        ...     back = load(os.path.join(d, "t"), like=(np.ones(2), "other"))
        >>> back[1], back[0].flags.writeable
        ('tag', False)
    """
    who = "fnn.io.load"
    target = spec.npz_path(path, who)
    budget = check_max_bytes(who, max_bytes)
    with open_regular(who, target, path) as fp:
        try:
            with zipfile.ZipFile(fp) as zf:
                archive = Archive(zf, fp, target, os.fstat(fp.fileno()).st_size, budget)
                loaded = _Decoder(archive, Names()).read()
        except BadFile:
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
