"""Thread control: ``fnn.threads(n)``, the one place fnn's thread counts are set.

Two kinds of threads do fnn's arithmetic:

- **BLAS threads.** NumPy's matrix products run in OpenBLAS (or MKL), which
  starts as many threads as the machine has cores. For the small products of a
  small network a second thread costs more than it gains: on a shared 2-core
  machine, one BLAS thread is often several times faster.
- **fnn's own threads.** Kernels that split a batch into independent parts
  (``Conv2D``, ``MaxPool2D`` with stride = window, ``BatchNorm``) run those
  parts on a small pool of threads, each calling single-threaded products;
  NumPy releases the GIL inside them. A whole training step goes the same
  way where it can: ``fnn.value_and_grad`` on a network whose every layer
  computes each example on its own (``Layer.per_example``: convolutions,
  pooling, dense layers, activations, reshapes, and dropout, whose parts
  draw their rows of the batch's mask; not batch norm in training) and that
  holds a convolution runs the forward and backward
  passes of one part of the batch per thread, so the threads hand over
  twice per step instead of twice per kernel; the loss is taken once on the
  whole prediction.

Nothing in fnn changes either count behind your back. ``with fnn.threads(n):``
sets both for the block and restores the previous settings afterwards; outside
such a block fnn uses one thread of its own and leaves BLAS as it found it.
``fnn.threads(n, blas=1)`` gives BLAS one thread between fnn's kernels, the
better choice for convolutional networks (their other products are small, and
idle BLAS threads spin on the cores fnn's threads need).
The BLAS limit is process-wide while the block runs (BLAS has one setting per
process), so do not run two blocks with different counts in parallel threads.

Results can differ in the last bits between thread counts: a product split
across threads adds its partial sums in another order. For a given count, the
same inputs give the same bits.

Kernels split a batch with :func:`split` (contiguous chunks, at least one per
thread of ``num_threads()``) and run a function on each chunk with :func:`map`. While
the chunks run concurrently, BLAS is limited to one thread (so the products do
not compete with each other for the cores) and restored afterwards; switching
costs a few microseconds. The threads come from one small pool, created on
first use and reused.

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
import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = ["map", "num_threads", "split", "threads", "threads_set"]

T = TypeVar("T")
R = TypeVar("R")

_THREADS: contextvars.ContextVar[int | None] = contextvars.ContextVar("fnn_threads", default=None)
_BLAS_ONE: contextvars.ContextVar[bool] = contextvars.ContextVar("fnn_blas_one", default=False)
"""Whether the enclosing ``fnn.threads`` block set BLAS to one thread (map need not)."""


def _check_n(who: str, n: object, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"{who}: {name} must be a positive int (a thread count), got {n!r}")
    if n < 1:
        raise ValueError(f"{who}: {name} must be >= 1 (a thread count), got {n}")
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


def threads(n: int, *, blas: int | None = None) -> contextlib.AbstractContextManager[None]:
    """Run the block with ``n`` BLAS threads and ``n`` threads for fnn's own kernels.

    The counts are checked when ``threads(n)`` is called, before any setting
    changes; entering the block sets the counts and leaving it restores them.

    fnn's batch-split kernels (convolution, tiled max-pooling, BatchNorm) run
    their chunks on the ``n`` threads with single-threaded BLAS. Between them,
    BLAS runs with ``blas`` threads: for a convolutional network, whose other
    products (a small dense head) are too small to share, ``blas=1`` keeps
    idle BLAS threads from spinning on the cores fnn's threads need (measured
    on ``benchmarks/cnn.py``'s CNN with two threads on a busy 2-core machine:
    158 ms wall and 80 ms CPU per step with ``blas=2``, 79 and 37 with ``blas=1``).

    Args:
        n: the number of threads, >= 1. ``1`` is usually fastest for small
            networks on a busy machine; larger counts help large products and
            the batch-split convolution kernels.
        blas: the BLAS thread count in the block, >= 1; ``n`` by default.

    Returns:
        A context manager for a ``with`` block.

    Raises:
        TypeError: ``n`` or ``blas`` is not an int.
        ValueError: ``n < 1`` or ``blas < 1``.
        ImportError: threadpoolctl is not installed (``pip install "fnn[threads]"``).

    Example:
        >>> import numpy as np, fnn
        >>> net = fnn.init([fnn.Dense(4)], (3,), key=0)
        >>> with fnn.threads(1):
        ...     y = fnn.forward(net, np.ones((2, 3), np.float32))
        >>> y.shape
        (2, 4)
        >>> with fnn.threads(2, blas=1):  # a conv net: fnn's two threads, BLAS one
        ...     fnn.parallel.num_threads()
        2
    """
    count = _check_n("fnn.threads", n)
    blas_count = count if blas is None else _check_n("fnn.threads", blas, "blas")
    return _block(count, blas_count, _threadpoolctl())


@contextlib.contextmanager
def _block(count: int, blas_count: int, threadpoolctl: Any) -> Iterator[None]:
    limits = threadpoolctl.threadpool_limits(limits=blas_count, user_api="blas")
    token, one = _THREADS.set(count), _BLAS_ONE.set(blas_count == 1)
    try:
        with limits:
            yield
    finally:
        _BLAS_ONE.reset(one)
        _THREADS.reset(token)


def num_threads() -> int:
    """The number of threads fnn's own kernels may use here: ``n`` inside ``threads(n)``, else 1."""
    value = _THREADS.get()
    return 1 if value is None else value


def threads_set() -> bool:
    """Whether the caller is inside a ``fnn.threads(n)`` block."""
    return _THREADS.get() is not None


_CHUNK_BYTES = 1 << 22


def split(n_items: int, item_bytes: int = 0) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` chunks of ``range(n_items)`` for :func:`map`.

    At least one chunk per thread of ``num_threads()`` (fewer only when there
    are fewer items), and, when ``item_bytes`` (the working memory one item
    needs, e.g. its im2col rows) is given, enough chunks that each needs
    about 4 MiB at most, rounded up to a multiple of the thread count. Chunks
    differ in size by at most one item (the larger ones first) and depend only
    on the arguments and the thread count, so a fixed count gives fixed chunks.
    (Measured on ``benchmarks/cnn.py`` with one thread: the ResNet-style
    block's step took 33.5 CPU ms with chunks of 2-4 MiB against 38.5 for the
    whole batch; the CNN's was unchanged. A chunk's im2col matrix is still in
    cache when its product reads it.)

    Args:
        n_items: the number of items (e.g. the batch size), >= 0.
        item_bytes: the bytes of working memory per item, or 0 to ignore.

    Returns:
        A list of at least one ``(start, stop)`` pair covering ``range(n_items)``.

    Raises:
        TypeError: an argument is not an int.
        ValueError: an argument is negative.

    Example:
        >>> import fnn
        >>> with fnn.threads(2):
        ...     fnn.parallel.split(5)
        [(0, 3), (3, 5)]
        >>> fnn.parallel.split(5), fnn.parallel.split(8, item_bytes=1 << 20)
        ([(0, 5)], [(0, 4), (4, 8)])
    """
    for name, value in (("n_items", n_items), ("item_bytes", item_bytes)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"fnn.parallel.split: {name} must be an int, got {value!r}")
        if value < 0:
            raise ValueError(f"fnn.parallel.split: {name} must be >= 0, got {value}")
    threads = num_threads()
    parts = threads
    if item_bytes > 0:
        parts = -(-n_items * item_bytes // _CHUNK_BYTES)  # ceil
        parts = max(1, -(-parts // threads)) * threads
    parts = max(1, min(parts, n_items))
    size, extra = divmod(n_items, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + size + (i < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


_Job = tuple[Callable[[], None], "queue.SimpleQueue[BaseException | None]"]
_INBOXES: list[queue.SimpleQueue[_Job]] = []  # one per worker thread, started on first use
_POOL_LOCK = threading.Lock()
_BLAS: list[Any] = []  # a threadpoolctl controller of the loaded BLAS, made on first use


def _serve(inbox: queue.SimpleQueue[_Job]) -> None:
    """A worker thread: run each job it is handed, then report on the job's own queue."""
    while True:
        job, done = inbox.get()
        try:
            job()
        except BaseException as err:  # handed to the caller, which raises it
            done.put(err)
        else:
            done.put(None)


def _workers(n: int) -> list[queue.SimpleQueue[_Job]]:
    """The inboxes of ``n`` worker threads (started when first needed, kept for reuse).

    A hand-over through a queue measured 23 us there and back, against 94 us
    for a ``ThreadPoolExecutor`` submit and wait (2-core virtual machine).
    """
    with _POOL_LOCK:
        while len(_INBOXES) < n:
            inbox: queue.SimpleQueue[_Job] = queue.SimpleQueue()
            name = f"fnn-{len(_INBOXES)}"
            threading.Thread(target=_serve, args=(inbox,), name=name, daemon=True).start()
            _INBOXES.append(inbox)
        return _INBOXES[:n]


def _forget_workers() -> None:
    """In a forked child the workers do not exist: start new ones when next needed."""
    global _POOL_LOCK
    _INBOXES.clear()
    _POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):  # (POSIX)
    os.register_at_fork(after_in_child=_forget_workers)


def _single_blas() -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS to one thread for a ``with`` block (restoring the previous count).

    Nothing to do inside ``fnn.threads(n, blas=1)``, which has set it already.
    """
    if _BLAS_ONE.get():
        return contextlib.nullcontext()
    if not _BLAS:
        _BLAS.append(_threadpoolctl().ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")  # type: ignore[no-any-return]


def map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:  # noqa: A001
    """``[fn(item) for item in items]``, concurrently inside a ``fnn.threads(n)`` block with n > 1.

    The calling thread and ``n − 1`` threads of fnn's pool take the items in
    turn (whoever is free takes the next one, so a thread that the system
    delays holds up less), while BLAS is limited to one thread (restored
    afterwards). Outside a block, or with one item, the items run one after
    the other in the calling thread and nothing is changed. ``fn`` must not
    write to memory that another item's call reads or writes (give each item
    its own slice); for a fixed list of items the results do not depend on
    which thread ran which item. Every call of ``fn`` runs with the caller's
    floating-point error settings (``np.errstate``) and, in any thread, with
    fnn's thread count at 1, so fnn kernels it calls run single-threaded.

    Args:
        fn: the function to apply.
        items: the items (e.g. the chunks from :func:`split`).

    Returns:
        The results, in the order of ``items``.

    Raises:
        TypeError: ``fn`` is not callable or ``items`` not a sequence.
        Exception: the first exception raised by ``fn`` (in item order), after all
            calls have ended.

    Example:
        >>> import numpy as np, fnn
        >>> x = np.arange(6.0)
        >>> with fnn.threads(2):
        ...     parts = fnn.parallel.map(lambda b: x[b[0]:b[1]].sum(), fnn.parallel.split(6))
        >>> [float(p) for p in parts]
        [3.0, 12.0]
    """
    if not callable(fn):
        raise TypeError(f"fnn.parallel.map: fn must be callable, got {fn!r}")
    if not isinstance(items, Sequence):
        raise TypeError(
            f"fnn.parallel.map: items must be a sequence (a list or tuple), got {items!r}"
        )
    if len(items) <= 1 or num_threads() == 1:
        return [fn(item) for item in items]
    workers = min(num_threads(), len(items))
    results: list[Any] = [None] * len(items)
    errors: list[tuple[int, BaseException]] = []
    turn = itertools.count()  # next() on a count is atomic under the GIL
    settings = np.geterr()  # the caller's floating-point error handling, for every thread

    def work() -> None:
        token = _THREADS.set(1)  # fn's own fnn kernels run single-threaded, in any thread
        try:
            with np.errstate(**settings):
                for i in iter(turn.__next__, None):
                    if i >= len(items):
                        return
                    try:
                        results[i] = fn(items[i])
                    except BaseException as err:  # re-raised in the caller below
                        errors.append((i, err))
        finally:
            _THREADS.reset(token)

    done: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
    with _single_blas():
        for inbox in _workers(workers - 1):
            inbox.put((work, done))
        work()
        # never leave work running once BLAS is restored
        failures = [err for err in (done.get() for _ in range(workers - 1)) if err is not None]
    if failures:
        raise failures[0]
    if errors:
        raise min(errors, key=lambda e: e[0])[1]
    return results
