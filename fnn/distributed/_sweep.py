"""``sweep``: one training per configuration, on a Dask client or a concurrent.futures executor."""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import importlib.util
import math
import pickle
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import attrs

from fnn.distributed._cluster import dask_module, workers_of
from fnn.parallel import threads
from fnn.random import Key, KeyLike, as_key, fold_in

__all__ = ["SweepError", "Trial", "sweep"]


@attrs.frozen(eq=False)
class Trial:
    """The outcome of one configuration of a `sweep`.

    Attributes:
        index: the configuration's position in ``configs``.
        config: the configuration itself.
        key: the key it was trained with, ``fold_in(key, index)``.
        value: what ``train_fn`` returned (``None`` if it failed).
        error: ``None`` on success, else ``"ErrorType: message"`` (the
            exception ``train_fn`` raised, or why the run was lost, e.g. a
            killed worker process).
        traceback: the formatted traceback of a failure raised by ``train_fn``.
        seconds: the wall time of ``train_fn`` on its worker (NaN if unknown).

    Example:
        >>> from fnn.random import key
        >>> t = Trial(0, {"lr": 0.1}, key(0), value=0.93)
        >>> t.ok, t.value
        (True, 0.93)
    """

    index: int
    config: Any
    key: Key
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    seconds: float = math.nan

    @property
    def ok(self) -> bool:
        """True when ``train_fn`` returned a value."""
        return self.error is None


class SweepError(RuntimeError):
    """Some configurations of a sweep failed; ``trials`` holds every outcome, in order.

    The successful trials are kept: ``[t.value for t in err.trials if t.ok]``.
    """

    def __init__(self, message: str, trials: list[Trial]) -> None:
        super().__init__(message)
        self.trials = trials


def _run_trial(
    train_fn: Callable[[Any, Key], Any], config: Any, key: Key, blas_threads: int | None
) -> tuple[Any, str | None, str | None, float]:
    """On a worker: ``(value, error, traceback, seconds)`` of ``train_fn(config, key)``."""
    t0 = time.perf_counter()
    try:
        if blas_threads is None:
            value = train_fn(config, key)
        else:
            with threads(blas_threads):
                value = train_fn(config, key)
    except Exception as err:
        seconds = time.perf_counter() - t0
        return None, f"{type(err).__name__}: {err}", traceback.format_exc(), seconds
    return value, None, None, time.perf_counter() - t0


def _pickler(who: str, executor: object) -> tuple[str, Callable[[Any], bytes] | None]:
    """("dask" | "futures", the serializer the executor will use, or None if it copies nothing)."""
    if isinstance(executor, cf.ProcessPoolExecutor):
        return "futures", pickle.dumps
    if isinstance(executor, cf.Executor):
        return "futures", None
    if type(executor).__module__.split(".")[0] == "distributed":  # a Client, so Dask is there
        dask = dask_module(who)
        if isinstance(executor, dask.Client):
            cloudpickle = importlib.import_module("cloudpickle")
            return "dask", cloudpickle.dumps
    raise TypeError(
        f"{who}: executor must be a dask.distributed Client or a concurrent.futures executor "
        f"(such as ProcessPoolExecutor(2)), got {type(executor).__name__}"
    )


def _check_picklable(who: str, dumps: Callable[[Any], bytes], configs: list[Any],
                     train_fn: object) -> None:
    """Every config and train_fn can be sent to a worker; else a TypeError naming which."""
    items: Iterable[tuple[str, object]] = [("train_fn", train_fn)]
    items = [*items, *((f"configs[{i}]", c) for i, c in enumerate(configs))]
    for name, value in items:
        try:
            dumps(value)
        except Exception as err:
            fix = ("define it at module level, not inside a function or as a lambda"
                   if name == "train_fn" else
                   "use plain values (numbers, strings, tuples, dicts) and build objects inside "
                   "train_fn")
            raise TypeError(
                f"{who}: {name} cannot be pickled ({type(err).__name__}: {err}), and each worker "
                f"process needs a copy; {fix}"
            ) from err


def _check_args(who: str, configs: object, train_fn: object, errors: object,
                blas_threads: object, progress: object) -> list[Any]:
    if isinstance(configs, str | bytes) or not isinstance(configs, Sequence | Iterable):
        raise TypeError(
            f"{who}: configs must be a list of configurations, got {type(configs).__name__}"
        )
    if not callable(train_fn):
        raise TypeError(
            f"{who}: train_fn must be a function train_fn(config, key) -> result, "
            f"got {type(train_fn).__name__}"
        )
    if errors not in ("raise", "return"):
        raise ValueError(f"{who}: errors must be 'raise' or 'return', got {errors!r}")
    if blas_threads is not None:
        if isinstance(blas_threads, bool) or not isinstance(blas_threads, int):
            raise TypeError(
                f"{who}: blas_threads must be an int >= 1 or None, got {blas_threads!r}"
            )
        if blas_threads < 1:
            raise ValueError(f"{who}: blas_threads must be >= 1 or None, got {blas_threads}")
        if importlib.util.find_spec("threadpoolctl") is None:
            raise ImportError(
                f"{who}: blas_threads={blas_threads} needs threadpoolctl to set the BLAS thread "
                'count in the workers; pip install "fnn[dask]" (or threadpoolctl), or pass '
                "blas_threads=None to leave the workers' BLAS as it is"
            )
    if not (isinstance(progress, bool) or callable(progress)):
        raise TypeError(f"{who}: progress must be True, False or a function of a Trial")
    return list(configs)


def sweep(
    executor: Any,
    configs: Sequence[Any],
    train_fn: Callable[[Any, Key], Any],
    *,
    key: KeyLike,
    progress: bool | Callable[[Trial], None] = True,
    errors: Literal["raise", "return"] = "raise",
    blas_threads: int | None = 1,
) -> list[Trial]:
    """Run ``train_fn(config_i, fold_in(key, i))`` for every config, in parallel.

    Each configuration is one task: on a Dask client its worker runs it, and
    a task whose worker dies is run again on another worker by the scheduler
    (a run lost for good, e.g. after ``client.restart()``, is reported). On a
    ``concurrent.futures`` executor (a ``ProcessPoolExecutor`` needs no Dask)
    a killed process breaks the pool: the runs it took with it are reported,
    the finished ones kept. Results come back in config order, whatever order
    they finish in; ``progress`` sees each as it finishes.

    Every run gets its own key, so a sweep is reproducible and equals the
    sequential loop ``[train_fn(c, fold_in(key, i)) for i, c in enumerate(configs)]``
    bit for bit when both run with the same BLAS thread count (``blas_threads``
    sets it inside each run; Dask workers start with one). On a thread pool
    the runs share one process, and so one BLAS setting, among them.

    Args:
        executor: a ``dask.distributed.Client`` or a ``concurrent.futures.Executor``.
        configs: the configurations, e.g. dicts of hyper-parameters; each must
            pickle (checked before anything runs).
        train_fn: ``train_fn(config, key) -> result``, defined at module level.
        key: the sweep's key (or int seed).
        progress: ``True`` prints a line per finished run, a function receives
            each finished `Trial`, ``False`` is silent.
        errors: ``"raise"``: if any run failed, raise `SweepError` (its
            ``trials`` keep every result) after all have finished;
            ``"return"``: return the failed trials among the others.
        blas_threads: BLAS threads inside each run (needs threadpoolctl);
            ``None`` leaves them as the worker has them.

    Returns:
        One `Trial` per config, in config order.

    Raises:
        TypeError: a bad executor, configs or train_fn, or one that cannot be
            pickled for a worker process (names which).
        ValueError: the Dask cluster has no workers, or a bad ``errors``.
        SweepError: with ``errors="raise"``, some runs failed (names each).

    Example:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> def square(config, key):
        ...     return config**2
        >>> with ThreadPoolExecutor(2) as pool:
        ...     trials = sweep(pool, [1, 2, 3], square, key=0, progress=False)
        >>> [t.value for t in trials], [t.key.path for t in trials]
        ([1, 4, 9], [(0,), (1,), (2,)])
    """
    who = "fnn.distributed.sweep"
    kind, dumps = _pickler(who, executor)
    items = _check_args(who, configs, train_fn, errors, blas_threads, progress)
    if kind == "dask":
        workers_of(who, executor)
    if dumps is not None:
        _check_picklable(who, dumps, items, train_fn)
    root = as_key(key, who)
    keys = [fold_in(root, i) for i in range(len(items))]
    report = _reporter(who, progress, len(items))
    trials: list[Trial | None] = [None] * len(items)
    futures: dict[Any, int] = {}
    try:
        for i, (config, k) in enumerate(zip(items, keys, strict=True)):
            if kind == "dask":
                fut = executor.submit(_run_trial, train_fn, config, k, blas_threads, pure=False)
            else:
                fut = executor.submit(_run_trial, train_fn, config, k, blas_threads)
            futures[fut] = i
        if kind == "dask":
            done = dask_module(who).as_completed(futures)
        else:
            done = cf.as_completed(futures)
        for fut in done:
            i = futures[fut]
            trial = _trial(fut, i, items[i], keys[i])
            trials[i] = trial
            report(trial)
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()
    missing = [i for i, t in enumerate(trials) if t is None]
    if missing:  # never expected: as_completed yields every future; a gap must not pass silently
        raise RuntimeError(f"{who}: no outcome was reported for configs {missing}")
    out = [t for t in trials if t is not None]
    failed = [t for t in out if not t.ok]
    if failed and errors == "raise":
        lines = "; ".join(f"configs[{t.index}] = {t.config!r}: {t.error}" for t in failed)
        raise SweepError(
            f"{who}: {len(failed)} of {len(out)} configs failed: {lines}. The other results are "
            "kept in this error's .trials (or pass errors='return')", out
        )
    return out


def _trial(fut: Any, i: int, config: Any, k: Key) -> Trial:
    """The Trial of a finished future; a lost run (killed worker, cancelled) is a failure."""
    try:
        value, error, tb, seconds = fut.result()
    except Exception as err:
        lost = f"{type(err).__name__}: {err}".rstrip(": ")
        return Trial(i, config, k, error=f"{lost} (the run was lost, not finished)")
    return Trial(i, config, k, value=value, error=error, traceback=tb, seconds=seconds)


def _reporter(who: str, progress: object, n: int) -> Callable[[Trial], None]:
    if callable(progress):
        return progress
    finished = [0]

    def report(t: Trial) -> None:
        finished[0] += 1
        if progress:
            status = f"ok in {t.seconds:.1f}s" if t.ok else f"FAILED: {t.error}"
            print(f"{who}: {finished[0]}/{n} done: configs[{t.index}] {status}", flush=True)

    return report
