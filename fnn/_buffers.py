"""Large array buffers, recycled once nothing refers to them (private).

A training step allocates its big arrays afresh (fnn's values are immutable)
and frees them when the step ends. glibc's ``malloc`` hands such large blocks
back to the kernel, and the next step maps them again, one page fault per
4 KiB page. The process-wide cure, ``MALLOC_TOP_PAD_``, is the user's to set;
fnn instead keeps the blocks of its own large arrays and reuses them.
Measured on ``benchmarks/cnn.py``'s two steps, each in a process of its own
(2-core AMD EPYC, one thread, median of 14 steps): the CNN took 46.6 ms with
about 5,100 page faults per step before, 24.8 ms with none after; the
ResNet-style block 52.5 ms (4,200 faults) before, 33.8 ms (none) after.

`empty` hands out a view of a block from the pool. A block is reused only when
no array refers to it any more: every NumPy view of a block, however derived
(slices, reshapes, transposes, views of views), holds a reference to the block
itself (NumPy points ``base`` at the array that owns the memory), so the
block's reference count says whether anything still uses it. An array a caller
keeps (an activation, a gradient) keeps its block out of the pool; once the
last view is gone, the next `empty` of that size takes the block. Nothing is
ever written into a block while an array refers to it.

The pool holds at most `LIMIT` bytes; beyond that, blocks are ordinary arrays
freed as usual. `release_buffers` (``fnn.release_buffers()``) hands the free
blocks back, for instance once training is over. The pool is used only where
reference counts are exact and immediate (CPython with the GIL); elsewhere
`empty` allocates every time.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from typing import Any

import numpy as np

__all__ = ["LIMIT", "POOL_MIN", "empty", "held_bytes", "release_buffers", "zeros"]

LIMIT = 1 << 30
"""The most bytes of blocks the pool keeps (1 GiB)."""

_HUGE_PAGE = 1 << 21  # 2 MiB, the x86-64 huge page
_HUGE_MIN = 1 << 21  # arrays from this size on start on a huge page
POOL_MIN = 1 << 18
"""Arrays from this many bytes on come from the pool (glibc maps such blocks afresh)."""
_LOCK = threading.Lock()
_POOL: dict[int, list[np.ndarray]] = {}
_HELD = [0]


def _new_lock() -> None:
    """In a forked child: a lock another thread of the parent held would never be released."""
    global _LOCK
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):  # (POSIX)
    os.register_at_fork(after_in_child=_new_lock)


def _refs(bucket: list[np.ndarray], i: int) -> int:
    return sys.getrefcount(bucket[i])


def _exact_refcounts() -> bool:
    if not hasattr(sys, "getrefcount"):
        return False
    gil = getattr(sys, "_is_gil_enabled", None)
    return gil is None or bool(gil())


_POOLING = _exact_refcounts()
_UNUSED = _refs([np.empty(1, np.uint8)], 0)
"""What `_refs` counts for a block that only the pool holds (measured, not assumed)."""


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A new uninitialised array; from 256 KiB on, a view of a block no array refers to.

    Block sizes are rounded up (to 64 KiB, from 2 MiB on to 1 MiB), so arrays
    of nearby sizes share blocks. From 2 MiB on the view starts on a 2 MiB
    boundary, so on Linux (where NumPy asks for transparent huge pages on
    large blocks) a new block is faulted in 2 MiB at a time instead of 4 KiB
    (measured before blocks were reused, 12 fresh 3.2 MB float32 arrays
    written per step: 8.6k faults and 16.8 ms per step with ``np.empty``, 35
    faults and 8.3 ms on huge pages). Small arrays use ``np.empty``.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < POOL_MIN:
        return np.empty(shape, dtype=dtype)
    if nbytes < _HUGE_MIN:
        raw, start = _block(-(-nbytes // (1 << 16)) << 16), 0
    else:
        raw = _block((-(-max(nbytes, 1 << 22) // (1 << 20)) << 20) + _HUGE_PAGE)
        start = -raw.ctypes.data % _HUGE_PAGE
    out: np.ndarray = raw[start : start + nbytes].view(dtype).reshape(shape)
    return out


def zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """`empty`, filled with zeros (a reused block holds whatever was last written to it)."""
    out = empty(shape, dtype)
    out.fill(0)
    return out


def _block(size: int) -> np.ndarray:
    """A block of ``size`` bytes that no array refers to: from the pool, or new."""
    if not _POOLING:
        return np.empty(size, dtype=np.uint8)
    with _LOCK:
        bucket = _POOL.setdefault(size, [])
        for i in range(len(bucket)):
            if _refs(bucket, i) == _UNUSED:
                return bucket[i]
        raw = np.empty(size, dtype=np.uint8)
        if _HELD[0] + size <= LIMIT:
            bucket.append(raw)
            _HELD[0] += size
        return raw


def held_bytes() -> int:
    """The bytes of blocks the pool keeps (in use or free)."""
    return _HELD[0]


def release_buffers() -> int:
    """Hand the free blocks of fnn's buffer pool back to the system; the bytes released.

    fnn keeps the blocks of its large arrays (from 256 KiB: convolution, pooling,
    ReLU and batch-norm buffers) for the next training step, up to 1 GiB; for
    the networks in ``examples/`` that is 60-100 MB. Blocks that an array still
    uses (an activation or a gradient you keep) stay until it is gone. Call this
    when training is over, not between steps: the next step would then map
    fresh memory again, page by page.

    Example:
        >>> import fnn
        >>> freed = fnn.release_buffers()
        >>> fnn.release_buffers()  # nothing is left to release
        0
    """
    if not _POOLING:
        return 0
    freed = 0
    with _LOCK:
        for size in list(_POOL):
            bucket = _POOL[size]
            kept = []
            for i in range(len(bucket)):
                if _refs(bucket, i) == _UNUSED:
                    freed += size
                else:
                    kept.append(bucket[i])
            if kept:
                _POOL[size] = kept
            else:
                del _POOL[size]
        _HELD[0] -= freed
    return freed
