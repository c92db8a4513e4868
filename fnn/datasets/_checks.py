"""Argument checks shared by the dataset modules (not public API)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

import numpy as np

_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def positive(who: str, name: str, value: object) -> int:
    """``value`` as an int if it is a positive int (bools refused); else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    return int(value)


def open_regular(path: Path, who: str, reads: str) -> IO[bytes]:
    """Open ``path`` for reading if it is a regular file; refuse anything else at once.

    ``reads`` ends the refusal's message: what the caller reads, e.g. "read_idx
    reads IDX files from disk".

    Opened non-blocking, so a FIFO without a writer does not hang ``open``; its
    kind is then checked on the open descriptor (no race with a swapped path).
    """
    nonblock = getattr(os, "O_NONBLOCK", 0)  # 0 on Windows, which has no FIFOs in the path
    fd = os.open(path, os.O_RDONLY | nonblock)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
            raise ValueError(f"{who}: not a regular file ({kind}); {reads}")
        if nonblock:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
