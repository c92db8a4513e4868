"""The fnn file format's fixed names and limits, shared by the writer and the reader.

A file is an ``.npz`` archive (a zip of ``.npy`` entries) holding the entry
``fnn-header.npy`` (the JSON header as a 1-d ``uint8`` array) and one entry
``arrays/<tree path>.npy`` per array leaf. Only stored and deflated entries
are written or read.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FORMAT_VERSION", "MAX_DEPTH"]

FORMAT_NAME = "fnn"
FORMAT_VERSION = 1
"""The newest file-format version this fnn writes and reads."""

HEADER = "fnn-header"
ARRAYS = "arrays/"
ROOT = "<root>"
KINDS = "biufc"  # bool, signed, unsigned, float, complex: nothing that can hold objects

MAX_DEPTH = 100
"""How deeply containers (tuples, lists, dicts, attrs instances) may nest in a
saved tree. `save` refuses deeper trees and `load` deeper files, so what one
writes the other reads, independently of how much of Python's recursion limit
the caller has already used."""

SAVABLE = (
    "arrays of bool, integer, float or complex dtype, NumPy scalars of those dtypes "
    "(complex and long-double ones as 0-d arrays), np.dtype, None, bool, int, float, str, "
    "tuples, lists, dicts with str or int keys, attrs instances and namedtuples of "
    "registered or exported classes, and registered or exported functions"
)


def where(path: str) -> str:
    """The path as shown in messages (``<root>`` for the whole tree)."""
    return path.lstrip(".") or ROOT


def npz_path(path: object, who: str) -> Path:
    """``path`` with ``.npz`` appended unless it already ends so (the rule of ``np.savez``)."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{who}: path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    return p if p.suffix == ".npz" else p.with_name(p.name + ".npz")
