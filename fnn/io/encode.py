"""Encoding a tree as a JSON header plus arrays, and writing the file atomically.

`save` flattens the tree with ``fnn.tree.flatten`` and encodes it along the
treedef's nodes (`_Encoder.node`), refusing anything `load` could not read back
identically, then writes a temporary file beside the target and
renames it over the target. The process umask is never changed: a new file is
created with mode ``0o666`` and the kernel applies the umask (and any default
ACL) as for any other new file; an existing regular file's permission bits are
kept.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import stat
import sys
import time
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from fnn import tree as _tree
from fnn.io import spec
from fnn.io.registry import Names

__all__ = ["save"]

_INT_BITS = 14_000  # about 4,200 digits: below Python's default int-to-str limit of 4,300
_STALE_SECONDS = 600.0  # an unlocked temp file untouched this long belongs to a dead writer
try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; stale temp files then stay
    fcntl = None  # type: ignore[assignment]


_EXACT = {"tuple": tuple, "list": list, "dict": dict}


class _Encoder:
    """Encodes a tree along its `fnn.tree.TreeDef`: JSON nodes out, array leaves collected
    by entry name.

    Which values are containers, in which order their children come and under
    which keys is what ``fnn.tree.flatten`` found (``treedef.root``); the encoder
    follows those nodes (taking each child's value by its key, since functions,
    classes and fnn's exported objects are written by name) and refuses what a
    file cannot hold.
    """

    def __init__(self, who: str, names: Names) -> None:
        self.who = who
        self.names = names
        self.arrays: dict[str, np.ndarray] = {}

    def cannot(self, what: str, path: str, fix: str = "") -> TypeError:
        fix = fix or f"fnn files hold {spec.SAVABLE}"
        return TypeError(f"{self.who}: cannot save {what} at {spec.where(path)}; {fix}")

    def encode(self, x: Any) -> object:
        """The JSON node of the whole tree ``x``."""
        try:
            _, treedef = _tree.flatten(x)
        except _tree.NestingError as err:
            raise self.nesting(err) from None
        return self.node(treedef.root, x, "", 0)

    def nesting(self, err: _tree.NestingError) -> ValueError:
        """The error for a tree that contains itself or nests too deeply to walk."""
        if err.cycle is not None and err.cycle < spec.MAX_DEPTH:
            return ValueError(
                f"{self.who}: the tree contains itself at "
                f"{spec.where(''.join(err.steps[: err.cycle]))} (a cycle); fnn files hold "
                "trees, so break the cycle"
            )
        if len(err.steps) >= spec.MAX_DEPTH:
            return self.too_deep("".join(err.steps[: spec.MAX_DEPTH]))
        return ValueError(
            f"{self.who}: the tree nests deeper than Python's recursion limit lets it walk "
            f"(load reads no deeper than {spec.MAX_DEPTH} levels); flatten it"
        )

    def too_deep(self, path: str) -> ValueError:
        return ValueError(
            f"{self.who}: the tree nests deeper than {spec.MAX_DEPTH} levels at "
            f"{spec.where(path)} (load reads no deeper); flatten it"
        )

    def node(self, n: _tree.Node, x: Any, path: str, depth: int) -> object:
        """The JSON node for ``x`` (whose tree node is ``n``), at ``path`` inside ``depth``
        containers: leaves and constants are encoded by `array` and `constant`,
        containers recurse here."""
        if n.kind == "leaf":
            return self.array(x, path)
        if n.kind == "constant":
            return self.constant(x, path)
        if self.names.is_exported_object(x):  # e.g. fnn.losses.mse: saved by its public name
            return {"t": "ref", "name": self.names.name_of(x)}
        kind = n.kind
        if kind in _EXACT and n.type is not _EXACT[kind]:  # a subclass: would load as the base
            return self.ref(x, path)
        if depth >= spec.MAX_DEPTH:
            raise self.too_deep(path)
        named = {"class": self.class_name(x, path)} if kind in ("namedtuple", "attrs") else {}
        depth += 1
        if kind == "attrs":
            fields_node = {
                name: self.node(c, getattr(x, name), f"{path}.{name}", depth)
                for name, c in zip(n.keys, n.children, strict=True)
            }
            return {"t": kind, **named, "fields": fields_node}
        if kind == "dict":
            items: object = [
                [self.key(k, path), self.node(c, x[k], f"{path}[{k!r}]", depth)]
                for k, c in zip(n.keys, n.children, strict=True)
            ]
        else:
            items = [
                self.node(c, v, f"{path}[{i}]", depth)
                for i, (c, v) in enumerate(zip(n.children, x, strict=True))
            ]
        return {"t": kind, **named, "items": items}

    def constant(self, x: Any, path: str) -> object:
        """The node of a non-array value: a scalar, a dtype, or a class or function by name."""
        value = self.scalar(x, path)
        if value is not NotImplemented:
            return value
        if self.names.is_exported_object(x):
            return {"t": "ref", "name": self.names.name_of(x)}
        return self.ref(x, path)

    def key(self, k: object, path: str) -> object:
        """A dict key: a str or an int that files can hold."""
        if type(k) not in (str, int):
            raise self.cannot(
                f"the dict key {k!r} ({type(k).__name__})",
                path,
                "dict keys must be str or int, e.g. {'net': net, 'epoch': 3}",
            )
        return self.check_scalar(k, f"{path}[{k!r}]")

    def scalar(self, x: object, path: str) -> object:
        """The node of a scalar value, or ``NotImplemented`` for anything else."""
        if isinstance(x, np.generic):
            return self.numpy_scalar(x, path)
        if isinstance(x, np.dtype):
            self.check_dtype(x, path)
            return {"t": "dtype", "value": x.str}
        if x is None or type(x) in (bool, int, float, str):
            return self.check_scalar(x, path)
        if isinstance(x, int | float | str):
            base = next(t for t in (int, float, str) if isinstance(x, t)).__name__
            raise self.cannot(
                f"a {type(x).__name__} (a subclass of {base})",
                path,
                f"it would load as a plain {base}: convert it with {base}(...) first",
            )
        return NotImplemented

    def check_scalar(self, x: object, path: str) -> object:
        if type(x) is float:
            return _float(x)
        if type(x) is int and x.bit_length() > _INT_BITS:
            raise ValueError(
                f"{self.who}: the int at {spec.where(path)} has {x.bit_length()} bits; fnn files "
                f"hold ints of up to {_INT_BITS} bits: store it as a str"
            )
        if type(x) is str:
            try:
                x.encode("utf-8")
            except UnicodeEncodeError as err:
                raise ValueError(
                    f"{self.who}: the str at {spec.where(path)} is not valid Unicode "
                    f"({err.reason} at position {err.start}); fnn files store text as UTF-8"
                ) from None
        return x

    def array(self, x: np.ndarray, path: str) -> object:
        if isinstance(x, np.ma.MaskedArray):
            raise self.cannot(
                "a masked array",
                path,
                "the mask would be lost: save x.filled(v) and np.ma.getmaskarray(x) as two arrays",
            )
        self.check_dtype(x.dtype, path)
        entry = spec.ARRAYS + spec.where(path)
        if len(entry.encode("utf-8")) > 65_000:
            raise ValueError(
                f"{self.who}: the path {spec.where(path)[:60]}... is too long to name a zip "
                "entry (at most 65,000 bytes); use shorter dict keys"
            )
        self.arrays[entry] = np.asarray(x)  # a subclass (np.matrix, ...) is stored as its data
        return {"t": "array", "name": entry, "dtype": x.dtype.str, "shape": list(x.shape)}

    def numpy_scalar(self, x: np.generic, path: str) -> object:
        self.check_dtype(x.dtype, path)
        if x.dtype.kind == "c" or (x.dtype.kind == "f" and x.dtype.itemsize > 8):
            raise self.cannot(
                f"the {x.dtype} scalar {x!r}", path, "store it as a 0-d array: np.asarray(x)"
            )
        value = x.item()
        if x.dtype.kind == "f":
            value = _float(value)
        return {"t": "scalar", "dtype": x.dtype.str, "value": value}

    def check_dtype(self, dtype: np.dtype, path: str) -> None:
        if dtype.kind not in spec.KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise self.cannot(
                f"dtype {dtype}",
                path,
                "only bool, integer, float and complex arrays are stored (no object arrays, "
                "no pickle)",
            )

    def class_name(self, x: object, path: str) -> str:
        name = self.names.name_of(type(x))
        if name is None:
            raise self.unnamed("class", type(x), path)
        return name

    def ref(self, x: object, path: str) -> object:
        if isinstance(x, type) or callable(x):
            name = self.names.name_of(x)
            if name is None:
                raise self.unnamed("class" if isinstance(x, type) else "function", x, path)
            return {"t": "ref", "name": name}
        raise self.cannot(f"a {type(x).__name__}", path)

    def unnamed(self, what: str, obj: object, path: str) -> TypeError:
        return TypeError(
            f"{self.who}: cannot save {what} {obj!r} at {spec.where(path)}: it is not "
            "registered; call fnn.io.register(...) on it (or decorate it with "
            "@fnn.io.register) in the module that defines it, so that load can find it by "
            "name too"
        )


def _float(x: float) -> object:
    if math.isfinite(x):
        return x
    return {"t": "float", "value": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


def _fnn_version() -> str:
    return str(getattr(sys.modules.get("fnn"), "__version__", "unknown"))


def _write_npz(f: IO[bytes], entries: dict[str, np.ndarray], compress: bool) -> None:
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(f, "w", compression=method, allowZip64=True) as zf:
        for name, array in entries.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, array, allow_pickle=False)


def _temp_pattern(target: Path) -> re.Pattern[str]:
    """Names of save's temp files for ``target`` (this fnn's and 0.1.0's mkstemp names)."""
    return re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_]{{8,32}}\.tmp")


def _create_temp(target: Path, mode: int) -> tuple[int, Path]:
    """Create ``.<name>.<random>.tmp`` beside ``target`` (O_EXCL), locked while we write it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, mode)
        except FileExistsError:  # pragma: no cover - 64 random bits
            continue
        if fcntl is not None:
            with contextlib.suppress(OSError):  # a file system without locks: no cleanup there
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, tmp
    raise FileExistsError(f"fnn.io.save: could not create a temporary file beside {target}")


def _remove_stale_temps(target: Path) -> None:
    """Remove temp files of ``target`` left by writers that died (e.g. by SIGKILL).

    A file is removed only if it has save's temp-file name, is a regular file
    of ours untouched for ``_STALE_SECONDS``, and nobody holds its lock (a live
    writer locks its temp file until the rename; the kernel drops the lock when
    a process dies). Anything doubtful is left alone.
    """
    if fcntl is None:  # pragma: no cover
        return
    pattern, now = _temp_pattern(target), time.time()
    with contextlib.suppress(OSError), os.scandir(target.parent) as it:
        candidates = [e.name for e in it if pattern.fullmatch(e.name)]
    for name in candidates:
        path = target.parent / name
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                continue
            if now - st.st_mtime < _STALE_SECONDS:
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if a writer holds it
                opened, now_there = os.fstat(fd), os.lstat(path)
                if (opened.st_dev, opened.st_ino) == (now_there.st_dev, now_there.st_ino):
                    os.unlink(path)
            finally:
                os.close(fd)


def _existing_mode(who: str, target: Path) -> int | None:
    """Permission bits to keep (``target`` is a regular file), else ``None`` (a new file)."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return None
    if stat.S_ISREG(st.st_mode):
        return st.st_mode & 0o777
    if stat.S_ISLNK(st.st_mode):
        return None  # the link is replaced by the new file; what it pointed to is untouched
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{who}: {str(target)!r} is a directory; choose a file name")
    raise ValueError(
        f"{who}: {str(target)!r} exists and is not a regular file (a FIFO, socket or device); "
        "choose another path"
    )


def _atomic_write(target: Path, entries: dict[str, np.ndarray], compress: bool) -> None:
    """Write to a temp file beside ``target``, fsync, then rename over it."""
    keep_mode = _existing_mode("fnn.io.save", target)
    _remove_stale_temps(target)
    # A new file: mode 0o666 and the kernel applies the umask, as for any new file. An
    # existing one: private (0o600) while written, then given the old file's bits.
    fd, tmp = _create_temp(target, 0o666 if keep_mode is None else 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, entries, compress)
            f.flush()
            os.fsync(f.fileno())
            if keep_mode is not None:
                os.chmod(f.fileno(), keep_mode)
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

    ``tree`` is any nesting (up to 100 levels deep) of ``Network``, layers,
    optimizer states and other attrs instances, tuples, lists, dicts (str or
    int keys), arrays, ints, floats, strings, bools, ``None``, ``np.dtype``,
    NumPy scalars, ``fnn.random.Key`` and functions, e.g. a checkpoint
    ``{"net": net, "opt_state": state, "epoch": 3, "key": key}``. Classes and
    functions are written by name: fnn's own (those exported in the
    ``__all__`` of its public modules) and those given to `register`.
    Anything `load` could not give back identically is refused: masked
    arrays, subclasses of int, float or str (they would come back as the base
    type), complex and long-double scalars (save them as 0-d arrays), cycles.
    An ndarray subclass (``np.matrix``) is stored as its plain array.

    The file name always ends in ``.npz``: ``save("model", t)`` writes
    ``model.npz`` (as ``np.savez`` would) and `load` applies the same rule,
    so ``load("model")`` reads it back. The data goes to a temporary file in the
    same directory (``.model.npz.<random>.tmp``), is flushed and fsynced, and is
    then renamed over the target, so a crash or error leaves the previous file
    intact. A temp file left by a writer that was killed is removed by a later
    save to the same target once it is ten minutes old and unlocked.

    If the path is a symbolic link, the link itself is replaced by the new
    file and the file it pointed to is left untouched. An existing file's
    permission bits are kept; a new file gets the usual ``0o666`` minus the
    umask (the process umask is never changed, so other threads are safe).

    Args:
        path: where to write; ``.npz`` is appended unless already the suffix.
        tree: the value to save.
        compress: deflate the entries (smaller, slower); stored uncompressed by
            default. `load` refuses, unless given a larger ``max_bytes``,
            compressed files that inflate beyond 64 times their size and 256 MiB.

    Returns:
        The path written (with the ``.npz`` suffix).

    Raises:
        TypeError: ``tree`` holds something fnn files cannot store (an object
            array, an unregistered class or function, a lambda, a set); the
            message names its path in the tree and what can be stored.
        ValueError: the tree nests deeper than 100 levels or contains itself,
            holds an int of more than 14,000 bits or a str that is not valid
            Unicode, or the path exists and is not a regular file or link.
        FileNotFoundError: the parent directory does not exist.

    Example:
        >>> import os, tempfile, numpy as np, fnn
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = save(os.path.join(d, "ckpt"), {"w": np.eye(2), "step": 10})
        ...     print(p.name, fnn.load(p)["step"])
        ckpt.npz 10
    """
    who = "fnn.io.save"
    target = spec.npz_path(path, who)
    if not isinstance(compress, bool):
        raise TypeError(f"{who}: compress must be a bool, got {type(compress).__name__}")
    if not target.parent.is_dir():
        raise FileNotFoundError(
            f"{who}: the directory {str(target.parent)!r} does not exist; create it first "
            "(os.makedirs(..., exist_ok=True)) or choose another path"
        )
    encoder = _Encoder(who, Names())
    root = encoder.encode(tree)
    header = {
        "format": spec.FORMAT_NAME,
        "format_version": spec.FORMAT_VERSION,
        "fnn_version": _fnn_version(),
        "tree": root,
    }
    text = json.dumps(header, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    entries = {spec.HEADER: raw, **encoder.arrays}
    _atomic_write(target, entries, compress)
    return target
