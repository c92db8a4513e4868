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

from collections.abc import Iterable

import attrs
import numpy as np

__all__ = ["Key", "KeyLike", "as_key", "fold_in", "generator", "key", "normal", "split", "uniform"]


def _check_seed(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise TypeError(
            f"fnn.random.Key: seed must be a non-negative int, got {value!r}; "
            "use fnn.random.key(0) or pass an int such as key=0"
        )


def _path(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


@attrs.frozen
class Key:
    """An immutable random key: a seed plus the path of splits that led to it."""

    seed: int = attrs.field(validator=_check_seed, converter=int)
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
    if num < 1:
        raise ValueError(f"fnn.random.split: num must be >= 1, got {num}")
    return tuple(Key(k.seed, (*k.path, i)) for i in range(num))


def fold_in(k: KeyLike, data: int) -> Key:
    """Derive the key for a counter (epoch, step, layer index) without splitting.

    ``fold_in(k, i)`` equals ``split(k, n)[i]`` for any ``n > i``.
    """
    k = as_key(k, "fnn.random.fold_in")
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
    return generator(k).standard_normal(shape).astype(dtype, copy=False)


def uniform(
    k: KeyLike,
    shape: tuple[int, ...],
    low: float = 0.0,
    high: float = 1.0,
    dtype: type | np.dtype = np.float64,
) -> np.ndarray:
    """Uniform samples on ``[low, high)`` of ``shape`` and ``dtype``."""
    return generator(k).uniform(low, high, shape).astype(dtype, copy=False)
