"""The cluster side of fnn.distributed: the lazy import, argument checks, and `Shards`."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import attrs
import numpy as np

from fnn.losses import Loss
from fnn.network import Network

__all__ = ["Shards", "local_cluster", "shard"]

Array = np.ndarray
_INSTALL = 'install the extra with pip install "fnn[dask]" (or pip install distributed)'


# ---------------------------------------------------------------------------
# The cluster: a lazy import and the checks every function shares.


def dask_module(who: str) -> ModuleType:
    """The ``distributed`` module, or an ImportError naming the extra."""
    try:
        return importlib.import_module("distributed")
    except ImportError as err:
        raise ImportError(f"{who} needs Dask's distributed scheduler; {_INSTALL}") from err


_MALLOC_VAR = "MALLOC_TRIM_THRESHOLD_"


def local_cluster(n_workers: int = 2, **kwargs: Any) -> Any:
    """A Dask ``LocalCluster`` set up for fnn: single-threaded worker processes.

    The same as ``LocalCluster(n_workers, threads_per_worker=1, processes=True,
    dashboard_address=":0", **kwargs)`` (any of these can be overridden), with one
    difference: the workers start without the environment variable
    ``MALLOC_TRIM_THRESHOLD_`` that Dask's nanny sets by default (65536). Setting
    it switches off glibc's adaptive ``mmap`` threshold, so every array over
    128 KiB is mapped fresh from the kernel and returned to it when freed; fnn
    allocates new arrays every step (its values are immutable), and a training
    of a 784-64-10 MLP (600 Adam steps of batch 128) took 0.74 s instead of
    0.43 s in a process started with that variable. Workers of a cluster started
    elsewhere (``dask worker``) can be started with the Dask configuration
    ``distributed.nanny.pre-spawn-environ`` without that key to the same effect
    (see the docs page *Running on a cluster*).

    Args:
        n_workers: the number of worker processes, an int >= 1.
        **kwargs: passed on to ``distributed.LocalCluster``.

    Returns:
        The running ``LocalCluster``; use it as a context manager, or ``close()`` it.

    Raises:
        ImportError: the ``dask`` extra is not installed.
        TypeError: ``n_workers`` is not an int.
        ValueError: ``n_workers`` is < 1.

    Example:
        >>> from distributed import Client  # doctest: +SKIP
        >>> with local_cluster(2) as cluster, Client(cluster) as client:  # doctest: +SKIP
        ...     print(len(client.nthreads()))
        2
    """
    who = "fnn.distributed.local_cluster"
    n_workers = check_int(who, "n_workers", n_workers, 1)
    distributed = dask_module(who)
    import dask

    key = "distributed.nanny.pre-spawn-environ"
    environ = {k: v for k, v in dask.config.get(key, {}).items() if k != _MALLOC_VAR}
    options: dict[str, Any] = {
        "threads_per_worker": 1, "processes": True, "dashboard_address": ":0", **kwargs
    }
    with dask.config.set({key: environ}):  # read by each nanny when it is made
        return distributed.LocalCluster(n_workers=n_workers, **options)


def workers_of(who: str, client: object) -> list[str]:
    """The addresses of the client's workers, sorted; errors for a non-client or no workers."""
    dask = dask_module(who)
    if not isinstance(client, dask.Client):
        raise TypeError(
            f"{who}: client must be a dask.distributed Client, got {type(client).__name__}; "
            "e.g. Client(LocalCluster(n_workers=2)) or Client('tcp://scheduler:8786')"
        )
    workers = sorted(client.nthreads())
    if not workers:
        raise ValueError(
            f"{who}: the cluster has no workers; start some (dask worker tcp://SCHEDULER:8786, "
            "or LocalCluster(n_workers=2)) or wait for them with client.wait_for_workers(1)"
        )
    return workers


def check_net_loss(who: str, net: object, loss_fn: object) -> tuple[Network, Loss]:
    if not isinstance(net, Network):
        raise TypeError(
            f"{who}: net must be an fnn.Network (from fnn.init), got {type(net).__name__}"
        )
    if not isinstance(loss_fn, Loss):
        raise TypeError(
            f"{who}: loss_fn must be an fnn.losses.Loss such as fnn.losses.mse, "
            f"got {type(loss_fn).__name__}"
        )
    return net, loss_fn


def check_int(who: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{who}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{who}: {name} must be >= {minimum}, got {value}")
    return int(value)


def check_pair(who: str, x: object, y: object) -> tuple[Array, Array]:
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        bad = type(x if not isinstance(x, np.ndarray) else y).__name__
        raise TypeError(f"{who}: x and y must be NumPy arrays, got {bad}; convert with np.asarray")
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"{who}: x and y need a batch axis, got shapes {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{who}: x has {x.shape[0]} rows but y has {y.shape[0]}; they must match along "
            "the first (batch) axis"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{who}: the data is empty; pass at least one row")
    return x, y


# ---------------------------------------------------------------------------
# Shards: row blocks of (x, y) held on the workers.


@attrs.frozen(eq=False)
class Shards:
    """Row blocks of a data set ``(x, y)`` held on a Dask cluster; build with `shard`.

    Attributes:
        parts: one ``(x_future, y_future)`` pair per shard, in row order.
        sizes: the rows of each shard.
        workers: the address of the worker holding each shard.
        x_row: the shape of one row of ``x`` (batch axis excluded) and its dtype.
        y_row: the same for ``y``.
    """

    parts: tuple[tuple[Any, Any], ...]
    sizes: tuple[int, ...]
    workers: tuple[str, ...]
    x_row: tuple[tuple[int, ...], np.dtype]
    y_row: tuple[tuple[int, ...], np.dtype]

    @property
    def n(self) -> int:
        """The total number of rows."""
        return sum(self.sizes)

    @property
    def k(self) -> int:
        """The number of shards."""
        return len(self.sizes)


def _row_spec(a: Array) -> tuple[int, tuple[int, ...], np.dtype]:
    """(rows, row shape, dtype) of an array; runs on the driver or on a worker."""
    return int(a.shape[0]), tuple(a.shape[1:]), a.dtype


def _meta(a: object) -> tuple[str, tuple[int, ...], str]:
    """What a worker-held part is: (type name, shape, dtype), for checks on the driver."""
    if isinstance(a, np.ndarray):
        return "ndarray", tuple(a.shape), str(a.dtype)
    return type(a).__name__, (), ""


def split_sizes(n: int, k: int) -> list[int]:
    """Rows of ``k`` contiguous blocks of ``n`` rows, as ``np.array_split`` makes them."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def shard(client: Any, x: Any, y: Any, k: int | None = None) -> Shards:
    """Scatter ``(x, y)`` to the workers as contiguous row blocks, one per worker by default.

    With ``x`` and ``y`` arrays of ``n`` rows, shard ``i`` holds rows
    ``[s_i, s_i + n_i)``, the blocks of ``np.array_split(x, k)`` (sizes differ
    by at most one), and goes to worker ``i mod W`` of the ``W`` workers sorted
    by address. Data that is already split (each machine loaded its own part)
    is given as two lists of per-shard arrays or Dask futures of arrays; every
    shard must then have the same dtypes and row shapes.

    Args:
        client: a ``dask.distributed.Client``.
        x: ``(n, ...)`` inputs, or a list of per-shard inputs (arrays or futures).
        y: ``(n, ...)`` targets, or a list like ``x``.
        k: the number of shards (default: one per worker); only for arrays.

    Returns:
        The `Shards`: futures of the blocks, their sizes and workers.

    Raises:
        ImportError: ``distributed`` is not installed.
        TypeError: ``client`` is not a Client, or ``x``/``y`` of the wrong kind.
        ValueError: no workers, more shards than rows, lengths that differ,
            an empty shard, or shards of different dtypes or row shapes.

    Example:
        Needs a cluster; ``docs/cluster.md`` runs the same:

        >>> import numpy as np
        >>> from distributed import Client, LocalCluster  # doctest: +SKIP
        >>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))  # doctest: +SKIP
        >>> x, y = np.zeros((1001, 3)), np.zeros(1001)
        >>> shards = shard(client, x, y)  # doctest: +SKIP
        >>> shards.sizes, shards.x_row  # doctest: +SKIP
        ((501, 500), ((3,), dtype('float64')))
    """
    who = "fnn.distributed.shard"
    workers = workers_of(who, client)
    if isinstance(x, list | tuple) or isinstance(y, list | tuple):
        if k is not None:
            raise ValueError(f"{who}: k applies to arrays; for already split data leave it out")
        return _shard_parts(who, client, workers, x, y)
    x, y = check_pair(who, x, y)
    n = x.shape[0]
    kk = len(workers) if k is None else check_int(who, "k", k, 1)
    if kk > n:
        raise ValueError(
            f"{who}: {kk} shards but only {n} rows; every shard needs at least one row, "
            f"pass k <= {n}"
        )
    parts, places, start = [], [], 0
    for i, size in enumerate(split_sizes(n, kk)):
        w = workers[i % len(workers)]
        xf, yf = client.scatter([x[start : start + size], y[start : start + size]],
                                workers=[w], hash=False)
        parts.append((xf, yf))
        places.append(w)
        start += size
    _, x_shape, x_dtype = _row_spec(x)
    _, y_shape, y_dtype = _row_spec(y)
    sizes = tuple(split_sizes(n, kk))
    return Shards(tuple(parts), sizes, tuple(places), (x_shape, x_dtype), (y_shape, y_dtype))


def _shard_parts(who: str, client: Any, workers: list[str], xs: Any, ys: Any) -> Shards:
    """Shards from data already split into per-shard arrays or futures."""
    dask = dask_module(who)
    if not (isinstance(xs, list | tuple) and isinstance(ys, list | tuple)):
        raise TypeError(f"{who}: x and y must both be arrays or both be lists of per-shard parts")
    if len(xs) != len(ys) or not xs:
        raise ValueError(
            f"{who}: x has {len(xs)} parts and y has {len(ys)}; pass one (x, y) part per shard"
        )
    metas: list[list[tuple[str, tuple[int, ...], str]]] = [[], []]
    remote: list[tuple[int, int, Any]] = []
    for side, parts in enumerate((xs, ys)):
        for i, p in enumerate(parts):
            if isinstance(p, np.ndarray):
                metas[side].append(_meta(p))
            elif isinstance(p, dask.Future):
                metas[side].append(("", (), ""))
                remote.append((side, i, client.submit(_meta, p, pure=False)))
            else:
                raise TypeError(
                    f"{who}: part {i} of {'xy'[side]} is {type(p).__name__}; parts must be "
                    "NumPy arrays or Dask futures of arrays"
                )
    gathered = client.gather([f for _, _, f in remote])
    for (side, i, _), meta in zip(remote, gathered, strict=True):
        metas[side][i] = meta
    _check_metas(who, metas)
    out, places = [], []
    for i, (xp, yp) in enumerate(zip(xs, ys, strict=True)):
        w = workers[i % len(workers)]
        pair = []
        for p in (xp, yp):
            if isinstance(p, np.ndarray):
                p = client.scatter(p, workers=[w], hash=False)
            pair.append(p)
        out.append((pair[0], pair[1]))
        holders = client.who_has(pair[0]).get(pair[0].key, ())
        places.append(sorted(holders)[0] if holders else w)
    sizes = tuple(m[1][0] for m in metas[0])
    x_row = (metas[0][0][1][1:], np.dtype(metas[0][0][2]))
    y_row = (metas[1][0][1][1:], np.dtype(metas[1][0][2]))
    return Shards(tuple(out), sizes, tuple(places), x_row, y_row)


def _check_metas(who: str, metas: list[list[tuple[str, tuple[int, ...], str]]]) -> None:
    """Parts are arrays with rows; x and y of a shard agree in length; one dtype and row shape."""
    for side, name in ((0, "x"), (1, "y")):
        for i, (kind, shape, _) in enumerate(metas[side]):
            if kind != "ndarray":
                raise TypeError(f"{who}: shard {i}'s {name} is a {kind}, not a NumPy array")
            if not shape or shape[0] == 0:
                raise ValueError(f"{who}: shard {i}'s {name} has no rows (shape {shape})")
        first = metas[side][0]
        for i, (_, shape, dtype) in enumerate(metas[side]):
            if dtype != first[2]:
                raise ValueError(
                    f"{who}: shards of different dtypes: {name} of shard 0 is {first[2]} but "
                    f"shard {i} is {dtype}; cast every part to one dtype, e.g. "
                    f"{name}.astype(np.{first[2]})"
                )
            if shape[1:] != first[1][1:]:
                raise ValueError(
                    f"{who}: shards of different row shapes: {name} of shard 0 has rows of "
                    f"shape {first[1][1:]} but shard {i} has {shape[1:]}"
                )
    for i, (mx, my) in enumerate(zip(*metas, strict=True)):
        if mx[1][0] != my[1][0]:
            raise ValueError(
                f"{who}: shard {i} has {mx[1][0]} rows of x but {my[1][0]} of y; "
                "each shard's x and y must have the same length"
            )


def check_shards(who: str, shards: object, net: Network) -> Shards:
    if not isinstance(shards, Shards):
        raise TypeError(
            f"{who}: shards must come from fnn.distributed.shard(client, x, y), "
            f"got {type(shards).__name__}"
        )
    shape, dtype = shards.x_row
    if shape != net.input_shape:
        raise ValueError(
            f"{who}: the shards hold rows of shape {shape} but the network takes "
            f"{net.input_shape}; shard the inputs the network was built for"
        )
    if dtype.kind not in "fiu":
        raise TypeError(f"{who}: the shards' x has dtype {dtype}; fnn takes real numbers")
    return shards
