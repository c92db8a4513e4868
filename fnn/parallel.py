"""Thread control: ``fnn.threads(n)``, the one place fnn's thread counts are set.

Two kinds of threads do fnn's arithmetic:

- **BLAS threads.** NumPy's matrix products run in OpenBLAS (or MKL), which
  starts as many threads as the machine has cores. For the small products of a
  small network a second thread costs more than it gains: on a shared 2-core
  machine, one BLAS thread is often several times faster.
- **fnn's own threads.** Kernels that can split a batch into independent parts
  (convolutions) may run those parts on a small pool of threads, each calling
  single-threaded products; NumPy releases the GIL inside them.

Nothing in fnn changes either count behind your back. ``with fnn.threads(n):``
sets both for the block and restores the previous settings afterwards; outside
such a block fnn uses one thread of its own and leaves BLAS as it found it.
The BLAS limit is process-wide while the block runs (BLAS has one setting per
process), so do not run two blocks with different counts in parallel threads.

Results can differ in the last bits between thread counts: a product split
across threads adds its partial sums in another order. For a given count, the
same inputs give the same bits.

Example:
    >>> import fnn
    >>> with fnn.threads(1):
    ...     fnn.parallel.num_threads()
    1
    >>> fnn.parallel.num_threads()  # outside a block: fnn's own default
    1
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["num_threads", "threads", "threads_set"]

_THREADS: contextvars.ContextVar[int | None] = contextvars.ContextVar("fnn_threads", default=None)


def _check_n(who: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"{who}: n must be a positive int (a thread count), got {n!r}")
    if n < 1:
        raise ValueError(f"{who}: n must be >= 1 (a thread count), got {n}")
    return int(n)


def _threadpoolctl() -> Any:
    try:
        import threadpoolctl  # type: ignore[import-untyped]
    except ImportError as err:
        raise ImportError(
            "fnn.threads needs threadpoolctl to set the BLAS thread count; "
            'install it with pip install "fnn[threads]" (or pip install threadpoolctl)'
        ) from err
    return threadpoolctl


def threads(n: int) -> contextlib.AbstractContextManager[None]:
    """Run the block with ``n`` BLAS threads and ``n`` threads for fnn's own kernels.

    The count is checked when ``threads(n)`` is called, before any setting
    changes; entering the block sets the counts and leaving it restores them.

    Args:
        n: the number of threads, >= 1. ``1`` is usually fastest for small
            networks on a busy machine; larger counts help large products and
            the batch-split convolution kernels.

    Returns:
        A context manager for a ``with`` block.

    Raises:
        TypeError: ``n`` is not an int.
        ValueError: ``n < 1``.
        ImportError: threadpoolctl is not installed (``pip install "fnn[threads]"``).

    Example:
        >>> import numpy as np, fnn
        >>> net = fnn.init([fnn.Dense(4)], (3,), key=0)
        >>> with fnn.threads(1):
        ...     y = fnn.forward(net, np.ones((2, 3), np.float32))
        >>> y.shape
        (2, 4)
    """
    count = _check_n("fnn.threads", n)
    return _block(count, _threadpoolctl())


@contextlib.contextmanager
def _block(count: int, threadpoolctl: Any) -> Iterator[None]:
    limits = threadpoolctl.threadpool_limits(limits=count, user_api="blas")
    token = _THREADS.set(count)
    try:
        with limits:
            yield
    finally:
        _THREADS.reset(token)


def num_threads() -> int:
    """The number of threads fnn's own kernels may use here: ``n`` inside ``threads(n)``, else 1."""
    value = _THREADS.get()
    return 1 if value is None else value


def threads_set() -> bool:
    """Whether the caller is inside a ``fnn.threads(n)`` block."""
    return _THREADS.get() is not None
