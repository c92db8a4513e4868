"""Explicit, splittable random keys (there is no global random state in fnn).

A `Key` is a small immutable value. The same key always gives the same
bits; `split` and `fold_in` derive new independent keys from it
without changing it, the way JAX's ``random`` module works. Under the hood a key
names a NumPy ``SeedSequence`` (entropy plus a spawn path), so derived streams
are statistically independent.

Anywhere fnn takes a ``key`` it also accepts a non-negative ``int`` seed, which
is the same as ``fnn.random.key(seed)``.

Example:
    >>> from fnn import random
    >>> k = random.key(0)
    >>> a, b = random.split(k)
    >>> bool((random.normal(a, (3,)) == random.normal(a, (3,))).all())
    True
    >>> bool((random.normal(a, (3,)) == random.normal(b, (3,))).any())
    False
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterable, Iterator

import attrs
import numpy as np

from fnn import _arrays

__all__ = ["Key", "KeyLike", "as_key", "fold_in", "generator", "key", "normal", "split", "uniform"]


def _check_seed(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise TypeError(
            f"fnn.random.Key: seed must be a non-negative int, got {value!r}; "
            "use fnn.random.key(0) or pass an int such as key=0"
        )


def _seed(value: object) -> object:
    # Left as given unless it is an int (the validator then names what is wrong).
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    return value


def _path(value: Iterable[int]) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise TypeError(f"fnn.random.Key: path must be a tuple of non-negative ints, got {value!r}")
    return tuple(int(v) for v in value)


@attrs.frozen
class Key:
    """An immutable random key: a seed plus the path of splits that led to it."""

    seed: int = attrs.field(validator=_check_seed, converter=_seed)
    path: tuple[int, ...] = attrs.field(default=(), converter=_path)

    def __repr__(self) -> str:
        return f"Key(seed={self.seed}, path={self.path})"


KeyLike = Key | int


def key(seed: int) -> Key:
    """Make a key from a non-negative integer seed."""
    return Key(seed)


def as_key(k: KeyLike, who: str = "fnn") -> Key:
    """Accept a `Key` or an int seed; anything else is a ``TypeError`` naming ``who``."""
    if isinstance(k, Key):
        return k
    if isinstance(k, int | np.integer) and not isinstance(k, bool) and k >= 0:
        return Key(int(k))
    raise TypeError(
        f"{who}: key must be an fnn.random.Key or a non-negative int seed, got {k!r}; "
        "pass key=fnn.random.key(0) (or key=0)"
    )


def split(k: KeyLike, num: int = 2) -> tuple[Key, ...]:
    """Derive ``num`` new independent keys from ``k`` (``k`` itself is unchanged)."""
    k = as_key(k, "fnn.random.split")
    if isinstance(num, bool) or not isinstance(num, int | np.integer):
        raise TypeError(f"fnn.random.split: num must be an int >= 1, got {num!r}")
    if num < 1:
        raise ValueError(f"fnn.random.split: num must be >= 1, got {num}")
    return tuple(Key(k.seed, (*k.path, i)) for i in range(num))


def fold_in(k: KeyLike, data: int) -> Key:
    """Derive the key for a counter (epoch, step, layer index) without splitting.

    ``fold_in(k, i)`` equals ``split(k, n)[i]`` for any ``n > i``.
    """
    k = as_key(k, "fnn.random.fold_in")
    if isinstance(data, bool) or not isinstance(data, int | np.integer):
        raise TypeError(f"fnn.random.fold_in: data must be an int >= 0, got {data!r}")
    if int(data) < 0:
        raise ValueError(f"fnn.random.fold_in: data must be >= 0, got {data}")
    return Key(k.seed, (*k.path, int(data)))


def generator(k: KeyLike) -> np.random.Generator:
    """A fresh NumPy ``Generator`` seeded by ``k``: same key, same stream."""
    k = as_key(k, "fnn.random.generator")
    seq = np.random.SeedSequence(entropy=k.seed, spawn_key=k.path)
    return np.random.Generator(np.random.PCG64(seq))


def normal(k: KeyLike, shape: tuple[int, ...], dtype: type | np.dtype = np.float64) -> np.ndarray:
    """Standard normal samples of ``shape`` and ``dtype``."""
    who = "fnn.random.normal"
    k, size, dt = as_key(k, who), _shape(who, shape), _float_dtype(who, dtype)
    return generator(k).standard_normal(size).astype(dt, copy=False)


def uniform(
    k: KeyLike,
    shape: tuple[int, ...],
    low: float = 0.0,
    high: float = 1.0,
    dtype: type | np.dtype = np.float64,
) -> np.ndarray:
    """Uniform samples on ``[low, high)`` of ``shape`` and ``dtype``."""
    who = "fnn.random.uniform"
    k, size, dt = as_key(k, who), _shape(who, shape), _float_dtype(who, dtype)
    big = float(np.finfo(dt).max)
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise TypeError(f"{who}: {name} must be a real number, got {v!r}")
        if not abs(_arrays.real(v)) <= big / 2:
            raise ValueError(
                f"{who}: {name} must be finite and within ±{big / 2:.3g} for {dt}, "
                f"got {_arrays.short(v)}"
            )
    if low > high:
        raise ValueError(f"{who}: low must be <= high, got low={low}, high={high}")
    return generator(k).uniform(low, high, size).astype(dt, copy=False)


def _shape(who: str, shape: object) -> tuple[int, ...]:
    if not isinstance(shape, tuple | list) or not all(
        isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ValueError(f"{who}: shape must be a tuple of non-negative ints, got {shape!r}")
    return tuple(int(d) for d in shape)


def _float_dtype(who: str, dtype: object) -> np.dtype:
    try:
        dt: np.dtype = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        dt = np.dtype(object)
    if dt.kind != "f":
        raise TypeError(f"{who}: dtype must be a floating dtype such as np.float32, got {dtype!r}")
    return dt


# ---------------------------------------------------------------------------
# Random draws of one part of a batch (private: for `fnn.value_and_grad`'s step in parts)

_ROWS_BEFORE: contextvars.ContextVar[int] = contextvars.ContextVar("fnn_rows_before", default=0)


def rows_before() -> int:
    """The rows of the batch before the part being computed: 0 unless a network runs its
    step in parts (`fnn.threads`), where a random layer draws, for its part, the values
    a call on the whole batch would draw for those rows."""
    return _ROWS_BEFORE.get()


@contextlib.contextmanager
def part_of_batch(rows: int) -> Iterator[None]:
    """Within the block, `rows_before` is ``rows`` (in this thread only)."""
    token = _ROWS_BEFORE.set(rows)
    try:
        yield
    finally:
        _ROWS_BEFORE.reset(token)


def skip_uniform(gen: np.random.Generator, count: int, dtype: np.dtype | type) -> None:
    """Advance a fresh `generator` past ``count`` values of ``gen.random(n, dtype=dtype)``.

    NumPy's PCG64 makes a float64 from one 64-bit step of its stream and two
    float32 from one (the low 32 bits first, the high half kept for the next
    value), so skipping is ``advance(count)``, or for float32 ``advance(count //
    2)`` and one more value when ``count`` is odd. `skip_is_exact` checks that
    this NumPy still draws that way.
    """
    if np.dtype(dtype) == np.float32:
        gen.bit_generator.advance(count // 2)  # type: ignore[attr-defined]
        if count % 2:
            gen.random(1, dtype=np.float32)
    else:
        gen.bit_generator.advance(count)  # type: ignore[attr-defined]


@functools.cache
def skip_is_exact() -> bool:
    """Whether `skip_uniform` reproduces this NumPy's uniform streams exactly (checked
    once per process: float32 and float64, every start from 0 to 8 of 9 values)."""
    for dtype in (np.float32, np.float64):
        whole = generator(key(2024)).random(9, dtype=dtype)
        for start in range(9):
            gen = generator(key(2024))
            skip_uniform(gen, start, dtype)
            if not np.array_equal(gen.random(9 - start, dtype=dtype), whole[start:]):
                return False
    return True
