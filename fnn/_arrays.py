"""The input policy: what arrays and numbers fnn's entry points accept, decided once.

Every public function that takes arrays passes them through `plain` first:

- a plain ``np.ndarray`` is used as it is (read-only, any strides);
- a subclass of ``np.ndarray`` (``np.matrix``, ``np.memmap``, ...) is viewed as
  a plain ndarray with ``np.asarray`` (no copy), so fnn computes with NumPy's
  array semantics and never a subclass's (``np.matrix`` keeps rows 2-d and
  makes ``*`` a matrix product, which gave wrong accuracies);
- a masked array (``np.ma.MaskedArray``) is refused with a ``TypeError``: fnn
  cannot honour a mask, and computing with the data under it would silently
  use values somebody marked invalid (a masked ``-1`` label, a masked ``inf``);
- an array in non-native byte order is converted to native order (a copy with
  the same values), so dtypes compare equal to the network's.

Floating-point computation happens in float32 or float64 only (`compute_dtype`,
`check_compute_float`); `cast_finite` casts network inputs and loss targets
without letting a value overflow to infinity on the way. `real` turns a
Python or NumPy real number into a float without ``OverflowError``.
`ignoring_underflow` and `underflow_retried` run a function with underflow
ignored: a result too small to represent becoming zero (or subnormal) is
correct arithmetic, never an error.

Not public API: modules import it as ``from fnn import _arrays``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

import numpy as np

__all__: list[str] = []

P = ParamSpec("P")
R = TypeVar("R")

COMPUTE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The floating dtypes fnn computes in."""
_FLOAT_MAX = {dt: float(np.finfo(dt).max) for dt in COMPUTE_DTYPES}


@overload
def plain(who: str, name: str, value: np.ndarray) -> np.ndarray: ...


@overload
def plain(who: str, name: str, value: object) -> object: ...


def plain(who: str, name: str, value: object) -> object:
    """Apply the input policy to one argument; non-arrays come back unchanged.

    Args:
        who: the entry point, e.g. ``"fnn.metrics.accuracy"``, for the message.
        name: the argument, e.g. ``"pred"``.
        value: what the caller passed.

    Returns:
        A plain ``np.ndarray`` in native byte order for any ndarray (subclasses
        viewed with ``np.asarray``), or ``value`` itself when it is no array (the
        caller's own type check then speaks).

    Raises:
        TypeError: ``value`` is a masked array.

    Example:
        >>> import numpy as np
        >>> type(plain("f", "x", np.arange(3).view(np.recarray))).__name__
        'ndarray'
    """
    if type(value) is np.ndarray and value.dtype.isnative:  # the common case, first
        return value
    if not isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{who}: {name} is a masked array; fnn does not honour masks and will not compute "
            f"with the values under them. Decide what masked entries mean: {name}.filled(value) "
            f"replaces them, np.ma.compressed({name}) or indexing with ~np.ma.getmaskarray("
            f"{name}) drops them (drop the matching targets too)"
        )
    if type(value) is not np.ndarray:
        value = np.asarray(value)
    if not value.dtype.isnative:
        value = value.astype(value.dtype.newbyteorder("="))
    return value


def compute_dtype(who: str, dtype: object) -> np.dtype:
    """``dtype`` as a NumPy dtype if fnn computes in it (float32 or float64).

    float16 is refused: its largest value is 65504 and it carries about three
    significant digits, so squared gradients overflow and Adam's ``eps`` (1e-8)
    rounds to zero; training would turn to inf/NaN or stall with no error.
    Extended precision (``np.longdouble``) is refused too: BLAS does not
    provide it, so it would be slow and is not what fnn tests.

    Raises:
        TypeError: not a dtype, not floating, or not float32/float64.

    Example:
        >>> compute_dtype("fnn.init", "float32")
        dtype('float32')
    """
    try:
        if dtype is None:  # np.dtype(None) is float64: too easy to pass by accident
            raise TypeError
        dt: np.dtype = np.dtype(dtype)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise TypeError(
            f"{who}: dtype must be floating-point, np.float32 or np.float64, got {short(dtype)}"
        ) from None
    if dt in COMPUTE_DTYPES:
        return dt
    if dt == np.float16:
        why = (
            "float16 is not supported: its range ends at 65504 and it keeps about 3 digits, so "
            "losses, squared gradients and optimizer states overflow or round to zero silently"
        )
    elif dt.kind == "f":
        why = f"{dt} (extended precision) is not supported"
    else:
        why = f"got {dt}, which is not floating-point"
    raise TypeError(
        f"{who}: dtype must be floating-point, np.float32 or np.float64; {why}. "
        "Use np.float32 (the default) or np.float64 (for gradient checks)"
    )


def check_compute_float(who: str, name: str, a: np.ndarray) -> np.ndarray:
    """``a`` itself if its dtype is float32 or float64, else a ``TypeError`` with the fix."""
    if a.dtype in _FLOAT_MAX:
        return a
    what = "floating-point" if a.dtype.kind != "f" else "float32 or float64"
    raise TypeError(
        f"{who}: {name} must be a {what} array (fnn computes in float32 or float64), got dtype "
        f"{a.dtype}; convert it with {name}.astype(np.float32)"
    )


_DOT_SCAN_MIN = 4096
"""From this many elements a dot product scans faster than ``np.isfinite`` (no bool array)."""


def all_finite(a: np.ndarray) -> bool:
    """``np.isfinite(a).all()`` for a floating array, by a cheaper test where one is sound.

    For a large C-contiguous float32/float64 array, first ``s = Σ a_i²`` (one BLAS
    dot product, no temporary array): a square is never negative, so a NaN makes ``s``
    NaN and an infinity makes it +inf whatever the order of summation, and a finite
    ``s`` proves every element finite. Only when ``s`` is not finite (a NaN, an inf, or
    finite values whose squares overflow) does the exact element scan decide. The dot
    product runs with floating-point errors ignored, so it never warns or raises
    whatever the caller's ``np.errstate``.

    Example:
        >>> all_finite(np.full(5000, 3e38, np.float32)), all_finite(np.array([1.0, np.inf]))
        (True, False)
    """
    if a.size >= _DOT_SCAN_MIN and a.dtype in _FLOAT_MAX and a.flags.c_contiguous:
        flat = a.reshape(-1)
        with np.errstate(all="ignore"):
            squares = float(np.dot(flat, flat))
        if squares < math.inf:  # false for NaN too
            return True
    return bool(np.isfinite(a).all())


def cast_finite(
    who: str, name: str, a: np.ndarray, dtype: np.dtype, check_values: bool = True
) -> np.ndarray:
    """``a`` cast to ``dtype`` after checking it is finite and fits ``dtype``'s range.

    Integers always fit float32 and float64 (their largest value is about
    1.8e19); floats are checked for NaN/inf and, when ``dtype`` is narrower,
    for values that the cast would turn into infinity. ``check_values=False``
    skips both scans (for a caller that already checked these very values).

    Raises:
        ValueError: NaN or inf in ``a``, or a value beyond ``dtype``'s range.
    """
    if check_values and a.dtype.kind == "f":
        if not all_finite(a):
            raise ValueError(f"{who}: {name} contains NaN or inf; clean or impute it first")
        if a.dtype.itemsize > dtype.itemsize and a.size:
            biggest = max(abs(float(a.max())), abs(float(a.min())))
            limit = float(np.finfo(dtype).max)
            if biggest > limit:
                raise ValueError(
                    f"{who}: {name} holds values up to {biggest:.3g} in magnitude, beyond the "
                    f"range of {dtype} (largest {limit:.3g}): casting would turn them into inf. "
                    f"Rescale {name}, or compute in float64 (fnn.init(..., dtype=np.float64))"
                )
    return a.astype(dtype, copy=False)


_WIDTHS = (16384, 1024)  # values per row of a widened per-channel operation, widest first


def per_channel(
    op: np.ufunc,
    rows: np.ndarray,
    vec: np.ndarray,
    out: np.ndarray,
    tiled: np.ndarray | None = None,
) -> np.ndarray:
    """``op(rows, vec, out=out)`` for ``(m, c)`` rows and a ``(c,)`` vector, on long rows.

    NumPy runs a broadcast ``(m, c) ∘ (c,)`` one row of ``c`` values at a time,
    and for a few dozen channels (or one) that per-row overhead dominates. When
    ``c`` divides a width ``W`` (16384, or 1024 for fewer than ``16384 / c``
    rows) and both arrays are C-contiguous, the first ``m − m mod k`` rows
    (``k = W / c``) are viewed as rows of ``W`` values against the vector tiled
    ``k`` times (``tiled``, if the caller keeps it, saves the tiling): the same
    operation on the same elements, so the same bits. Measured ((25088, 32)
    float32, one thread, ms): 0.39 for ``x − μ`` row by row, 0.23 on rows of
    1024 values, 0.14 on rows of 16384 (BatchNorm's vjp + pullback on
    128x14x14x32: 6.5 ms with 1024, 5.3 with 16384).
    """
    c, m = rows.shape[1], rows.shape[0]
    width = next((w for w in _WIDTHS if c and w % c == 0 and w // c <= m), 0)
    if not width or not (rows.flags.c_contiguous and out.flags.c_contiguous):
        result: np.ndarray = op(rows, vec, out=out)
        return result
    k = width // c
    whole = m - m % k
    if tiled is None or tiled.size != width:
        tiled = np.tile(vec, k)
    op(rows[:whole].reshape(-1, width), tiled, out=out[:whole].reshape(-1, width))
    if whole < m:
        op(rows[whole:], vec, out=out[whole:])
    return out


def tiled_row(vec: np.ndarray) -> np.ndarray | None:
    """``vec`` repeated to the widest row `per_channel` uses, or None if it does not divide.

    For callers that apply one vector to many chunks: pass it as ``tiled`` and
    the tiling is done once (measured: BatchNorm's ``(x − μ)·s + β`` on
    (25088, 32) float32 in three chunks, 0.85 -> 0.73 ms).
    """
    c = vec.shape[0]
    return np.tile(vec, _WIDTHS[0] // c) if c and _WIDTHS[0] % c == 0 else None


_ZERO_ROWS: dict[np.dtype, np.ndarray] = {}


def relu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.maximum(x, 0, out=out)``: the same bits, faster on large float arrays.

    NumPy's vectorised ``maximum`` runs only when both operands are arrays;
    against the scalar 0 it takes an element-by-element loop (measured on
    128x14x14x32 float32: 0.65 ms, against 0.18 ms for the form used here). A
    C-contiguous float32/float64 array of at least 16384 values is therefore
    taken, by `per_channel` with one channel, as rows of 16384 values against a
    kept read-only row of zeros. ``maximum`` computes each element on its own,
    so the result is bit for bit ``np.maximum(x, 0)``: signed zeros, NaNs of
    either sign, infinities and subnormals alike (tested), and it raises no
    floating-point error either way.

    Example:
        >>> relu(np.array([-1.0, 0.5]))
        array([0. , 0.5])
    """
    if (
        x.size < _WIDTHS[0]
        or x.dtype not in _FLOAT_MAX
        or not x.flags.c_contiguous
        or (out is not None and not (out.flags.c_contiguous and out.shape == x.shape))
    ):
        result: np.ndarray = np.maximum(x, 0, out=out)
        return result
    if out is None:
        out = np.empty(x.shape, x.dtype)
    zeros = _ZERO_ROWS.get(x.dtype)
    if zeros is None:
        zeros = np.zeros(_WIDTHS[0], x.dtype)
        zeros.setflags(write=False)
        _ZERO_ROWS[x.dtype] = zeros
    per_channel(np.maximum, x.reshape(-1, 1), zeros[:1], out.reshape(-1, 1), zeros)
    return out


_NARROW, _MANY = 32, 32
"""`row_max` reads a column-major copy for at least ``_MANY`` rows of at most ``_NARROW``."""


def row_max(x: np.ndarray) -> np.ndarray:
    """``x.max(axis=-1, keepdims=True)``: the same values, faster for many narrow rows.

    NumPy reduces each row of a C-ordered array in a loop of its own, which for
    logits of a few classes (a (128, 10) batch) costs more than the work. On a
    column-major copy the same maxima come from a few passes over whole columns.
    A maximum is exact (no rounding, NaN propagates either way), so only the time
    changes; the one freedom is which of two equal zeros, +0 or −0, a row's maximum
    is, and a shift by either gives the same exponentials, losses and gradients.

    Example:
        >>> row_max(np.array([[1.0, 3.0], [-2.0, -5.0]]))
        array([[ 3.],
               [-2.]])
    """
    if x.ndim == 2 and x.shape[1] <= _NARROW and x.shape[0] >= _MANY:
        top: np.ndarray = np.maximum.reduce(np.asfortranarray(x), axis=1, keepdims=True)
    else:
        top = x.max(axis=-1, keepdims=True)
    return top


def shift_by_max(x: np.ndarray) -> np.ndarray:
    """``x − max(x)`` along the last axis (a fresh array), the stable softmax shift.

    ``exp`` of the result never overflows. The subtraction itself overflows
    only when a row's spread exceeds the dtype's largest value (logits of
    ``+3e38`` and ``-3e38`` in float32); then the shift is computed with
    overflow ignored and clamped at ``-finfo.max``, whose ``exp`` is 0 like the
    true value's, so no finite input raises or warns and no ``0 · -inf`` NaN
    appears downstream.

    Example:
        >>> shift_by_max(np.array([[1.0, 3.0]]))
        array([[-2.,  0.]])
    """
    top = row_max(x)
    out: np.ndarray
    limit = _FLOAT_MAX.get(x.dtype) or float(np.finfo(x.dtype).max)
    if x.size and not float(top.max()) - float(x.min()) <= limit:
        if not np.isfinite(top).all() or not np.isfinite(x.min()):
            out = np.subtract(x, top)  # non-finite input: IEEE arithmetic, caller's settings
            return out
        with np.errstate(over="ignore"):
            out = np.subtract(x, top)
        np.maximum(out, -limit, out=out)
        return out
    out = np.subtract(x, top)
    return out


_ROW_STARTS: dict[tuple[int, int], np.ndarray] = {}


def row_starts(rows: int, width: int) -> np.ndarray:
    """``arange(rows) · width`` (intp): where each row of a C-ordered ``(rows, width)``
    array starts in its flat view, so ``a.reshape(-1)[row_starts(*a.shape) + cols]`` is
    ``a[arange(rows), cols]`` at a fraction of the cost (one entry per row, such as each
    example's labelled class). Read-only and cached by shape: every step of a training
    loop asks for the same one.

    Example:
        >>> row_starts(3, 4)
        array([0, 4, 8])
    """
    key = (rows, width)
    starts = _ROW_STARTS.get(key)
    if starts is None:
        if len(_ROW_STARTS) >= 64:  # many batch shapes (an evaluation sweep): start afresh
            _ROW_STARTS.clear()
        starts = np.arange(rows, dtype=np.intp) * width
        starts.setflags(write=False)
        _ROW_STARTS[key] = starts
    return starts


def real(value: int | float | np.integer[Any] | np.floating[Any]) -> float:
    """A real number as a float; an int beyond float range becomes ``±inf``, never OverflowError.

    Example:
        >>> real(10**400), real(-(10**400)), real(3)
        (inf, -inf, 3.0)
    """
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def short(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (a 400-digit int stays readable)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def ignoring_underflow(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` with NumPy's underflow ignored, whatever the caller's ``np.errstate``.

    Underflow (a result too small for the dtype becoming subnormal or zero) is
    the correct IEEE 754 result: ``exp(-1000)`` is 0. Only underflow is
    changed; overflow, invalid operations and division by zero still follow
    the caller's settings. Each call enters its own ``np.errstate`` (thread-
    and re-entrancy-safe, about 2 µs): for functions that run long or have
    side effects, such as ``fit``. Small pure functions use `underflow_retried`.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with np.errstate(under="ignore"):
            return fn(*args, **kwargs)

    return wrapper


def underflow_retried(fn: Callable[P, R]) -> Callable[P, R]:
    """Like `ignoring_underflow` for a *pure* function, at no cost on the common path.

    ``fn`` runs under the caller's settings; only if NumPy raised (a
    ``FloatingPointError``, or a ``RuntimeWarning`` turned into an exception by
    ``-W error``) does it run again with underflow ignored. An error that was
    not underflow (overflow, invalid, divide) raises again from the second run,
    so the caller sees exactly what ``ignoring_underflow`` would give. Under
    NumPy's default settings (underflow ignored) the second run never happens.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (FloatingPointError, RuntimeWarning):
            with np.errstate(under="ignore"):
                return fn(*args, **kwargs)

    return wrapper


def call_underflow_retried(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` as `underflow_retried` would call it (no wrapper to build)."""
    try:
        return fn(*args, **kwargs)
    except (FloatingPointError, RuntimeWarning):
        with np.errstate(under="ignore"):
            return fn(*args, **kwargs)
