"""Weight initialisers: pure functions ``(key, shape, dtype) -> array``.

Fans follow the Keras convention: for a Dense kernel of shape ``(d_in, d_out)``
``fan_in = d_in`` and ``fan_out = d_out``; for a convolution kernel of shape
``(kh, kw, c_in, c_out)`` both are multiplied by the receptive field ``kh*kw``.

=================  ===========================================
name               distribution
=================  ===========================================
``glorot_uniform`` U(-a, a), a = sqrt(6 / (fan_in + fan_out))
``glorot_normal``  N(0, 2 / (fan_in + fan_out))
``he_uniform``     U(-a, a), a = sqrt(6 / fan_in)
``he_normal``      N(0, 2 / fan_in)
``lecun_normal``   N(0, 1 / fan_in)
``orthogonal``     orthonormal rows or columns (recurrent kernels)
``zeros``          0
=================  ===========================================

Example:
    >>> import numpy as np
    >>> w = he_normal(0, (784, 32), np.float32)
    >>> w.shape, w.dtype
    ((784, 32), dtype('float32'))
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from fnn.random import KeyLike, as_key, generator

Initializer = Callable[[KeyLike, tuple[int, ...], np.dtype], np.ndarray]

__all__ = [
    "Initializer",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "orthogonal",
    "resolve",
    "zeros",
]


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a kernel shape (last two axes are in, out)."""
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _args(who: str, key: KeyLike, shape: object, dtype: object) -> tuple[int, ...]:
    """Check an initialiser's arguments; return the shape as a tuple of ints."""
    who = f"fnn.initializers.{who}"
    as_key(key, who)
    if not isinstance(shape, tuple | list) or not all(
        isinstance(d, int | np.integer) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ValueError(f"{who}: shape must be a tuple of positive ints, got {shape!r}")
    try:
        kind = np.dtype(dtype).kind  # type: ignore[call-overload]
    except TypeError:
        kind = "O"
    if kind != "f":
        raise TypeError(f"{who}: dtype must be floating (np.float32 or np.float64), got {dtype!r}")
    return tuple(int(d) for d in shape)


def _uniform(key: KeyLike, shape: tuple[int, ...], dtype: np.dtype, limit: float) -> np.ndarray:
    return generator(as_key(key)).uniform(-limit, limit, shape).astype(dtype)


def _normal(key: KeyLike, shape: tuple[int, ...], dtype: np.dtype, std: float) -> np.ndarray:
    return (generator(as_key(key)).standard_normal(shape) * std).astype(dtype)


def glorot_uniform(key: KeyLike, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Glorot/Xavier uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    shape = _args("glorot_uniform", key, shape, dtype)
    fan_in, fan_out = fans(shape)
    return _uniform(key, shape, dtype, math.sqrt(6.0 / (fan_in + fan_out)))


def glorot_normal(key: KeyLike, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Glorot/Xavier normal: N(0, 2 / (fan_in + fan_out))."""
    shape = _args("glorot_normal", key, shape, dtype)
    fan_in, fan_out = fans(shape)
    return _normal(key, shape, dtype, math.sqrt(2.0 / (fan_in + fan_out)))


def he_uniform(key: KeyLike, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """He/Kaiming uniform (for ReLU): U(-a, a) with a = sqrt(6 / fan_in)."""
    shape = _args("he_uniform", key, shape, dtype)
    fan_in, _ = fans(shape)
    return _uniform(key, shape, dtype, math.sqrt(6.0 / fan_in))


def he_normal(key: KeyLike, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """He/Kaiming normal (for ReLU): N(0, 2 / fan_in)."""
    shape = _args("he_normal", key, shape, dtype)
    fan_in, _ = fans(shape)
    return _normal(key, shape, dtype, math.sqrt(2.0 / fan_in))


def lecun_normal(key: KeyLike, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """LeCun normal (for SELU/tanh): N(0, 1 / fan_in)."""
    shape = _args("lecun_normal", key, shape, dtype)
    fan_in, _ = fans(shape)
    return _normal(key, shape, dtype, math.sqrt(1.0 / fan_in))


def orthogonal(key: KeyLike, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Orthogonal (Saxe et al. 2014): orthonormal rows or columns, whichever are fewer.

    The kernel is viewed as a matrix of ``prod(shape[:-1])`` rows and
    ``shape[-1]`` columns; it is the Q factor of the QR decomposition of a
    standard normal matrix, signs fixed by R's diagonal so that it is uniform
    over orthogonal matrices. The default for recurrent kernels (``LSTM.u``):
    multiplying by it keeps a vector's length, so a state neither explodes
    nor vanishes over many steps at initialisation.

    Raises:
        ValueError: ``shape`` has fewer than two axes.

    Example:
        >>> q = orthogonal(0, (3, 6), np.float64)
        >>> bool(np.allclose(q @ q.T, np.eye(3)))
        True
    """
    shape = _args("orthogonal", key, shape, dtype)
    if len(shape) < 2:
        raise ValueError(
            f"fnn.initializers.orthogonal: shape must have at least two axes (a matrix), got "
            f"{shape!r}; use another initialiser for biases and vectors"
        )
    rows, cols = math.prod(shape[:-1]), shape[-1]
    a = generator(as_key(key)).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
    return (q if rows >= cols else q.T).reshape(shape).astype(dtype)


def zeros(key: KeyLike, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """All zeros (the usual bias initialiser); ``key`` is ignored."""
    shape = _args("zeros", key, shape, dtype)
    return np.zeros(shape, dtype=dtype)


_BY_NAME: dict[str, Initializer] = {
    f.__name__: f
    for f in (glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_normal, orthogonal, zeros)
}


def resolve(init: Initializer | str) -> Initializer:
    """Turn an initialiser or its name into the function (once, at construction).

    Raises:
        ValueError: unknown name; the message lists the known ones.
        TypeError: neither a name nor a callable.
    """
    if isinstance(init, str):
        try:
            return _BY_NAME[init]
        except KeyError:
            raise ValueError(
                f"fnn.initializers: unknown initialiser {init!r}; choose one of {sorted(_BY_NAME)} "
                "or pass a function (key, shape, dtype) -> array"
            ) from None
    if not callable(init):
        raise TypeError(
            "fnn.initializers: an initialiser must be a function (key, shape, dtype) -> array "
            f"or a name, got {type(init).__name__}"
        )
    return init
