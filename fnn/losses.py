"""Losses and their gradients with respect to the prediction.

Reduction convention (one rule for every loss): **the mean over the batch**.
For element-wise losses (MSE, binary cross-entropy) that is the mean over every
element of the prediction, as in Keras and PyTorch; for the softmax
cross-entropies it is the per-example sum over classes, averaged over the batch.

Each loss, its targets ``y``, its value and its gradient dL/dpred:

- ``mse``: targets of pred's shape. mean((p − y)²); 2(p − y)/N.
- ``binary_cross_entropy``: targets of pred's shape in [0, 1], pred probabilities.
  −mean(y log p + (1 − y) log(1 − p)); (p − y) / (p(1 − p)) / N.
- ``binary_cross_entropy_with_logits``: as above with p = σ(z) for logits z;
  (σ(z) − y)/N.
- ``softmax_cross_entropy``: one-hot (or probability) targets (batch, classes).
  −Σ y log softmax(z) / B; (softmax(z)·Σ_c y − y)/B.
- ``sparse_softmax_cross_entropy``: integer labels (batch,).
  −Σ_b log softmax(z)[b, y_b] / B; (softmax(z) − onehot(y))/B.

**Sequences and masks.** Both softmax cross-entropies also take logits
``(batch, time, classes)``, with labels ``(batch, time)`` (or one-hot targets
``(batch, time, classes)``): every ``(b, t)`` *position* is then one example,
and the loss is the per-position sum over classes averaged over the
``B·T`` positions. A mask for padding travels with the targets as the pair
``y = (labels, mask)``, ``mask`` of shape ``(batch, time)`` (``(batch,)`` for
2-d logits), bool or 0/1, true where a position counts: the loss is then the
average over the ``n = Σ mask`` unmasked positions only, and its gradient is
``(softmax(z) − onehot(y))/n`` there and exactly 0 at masked positions,
whatever their logits and labels (padding may hold any label, -1 included;
an out-of-range label at an unmasked position is an error). A fully masked
batch (``n = 0``) has loss 0 and gradient 0: there is nothing to predict, and
a step on it changes nothing. The pair passes through `fnn.value_and_grad`,
`fnn.evaluate` and `fnn.fit` (which shuffles and batches both arrays of ``y``
together), so ``fit(net, opt, loss, (x, (labels, mask)), ...)`` trains on
padded sequences. The other losses take no mask.

N is the number of elements of the prediction, B the batch size (the number of
positions, B·T or Σ mask, for sequences). Probabilities
given to ``binary_cross_entropy`` are clipped to [eps, 1 − eps] (eps of the
dtype) so that the log is finite; logits are never clipped. Per-element (or
per-example) terms are computed in pred's dtype and summed in float64.

At the edges of the domain (each promise is tested in tests/test_losses.py):

- ``mse``: at p = y the value and gradient are 0.
- ``binary_cross_entropy`` at probabilities exactly 0 and 1: value and
  gradient are those at the clipped p_c. A right answer (p = y ∈ {0, 1})
  costs −log(1 − eps) ≈ eps per element (not 0) with gradient ∓1/((1 − eps)N),
  the true derivative −1/p or 1/(1 − p), which does not vanish at the
  boundary; a wrong one (p = 1 − y) costs −log(eps) per element (15.94 in
  float32, 36.04 in float64) with gradient ∓1/(eps·N) instead of ∓inf.
- ``binary_cross_entropy_with_logits`` at z = ±1000 (any |z| where σ saturates):
  a right answer (σ(z) = y) costs exactly 0 with gradient 0; a wrong one costs
  |z| with gradient ±1/N; a target of ½ costs |z|/2 with gradient ±½/N.
- ``softmax_cross_entropy`` and ``sparse_softmax_cross_entropy`` at logits
  ±1000: all mass on the labelled class costs exactly 0 with gradient 0; all
  mass on another class c costs z_c − z_y (2000) with gradient +1/B at c and
  −1/B at the label. With one class, softmax is 1: the value is 0 and the
  gradient 0 for any logits (and, for ``softmax_cross_entropy``, any target).
  The same holds per position for sequences, with 1/n for 1/B.
- No finite input makes any loss raise or warn because of underflow; logits
  whose spread in a row exceeds the dtype's largest value are shifted as if
  the spread were that largest value.

A `Loss` is a small immutable object: ``loss(pred, y)`` gives the value
as a Python float and ``loss.value_and_grad(pred, y)`` gives the value and
dL/dpred (same shape and dtype as ``pred``). Targets are never broadcast:
``pred`` and ``y`` must have exactly the shapes the loss documents.

Example:
    >>> import numpy as np
    >>> pred, y = np.array([[1.0], [3.0]]), np.array([[0.0], [1.0]])
    >>> mse(pred, y)
    2.5
    >>> mse.value_and_grad(pred, y)[1]
    array([[1.],
           [2.]])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from fnn import _arrays
from fnn.layers.activations import sigmoid

Array = np.ndarray
Target = Array | tuple[Array, Array]
"""What a loss takes as ``y``: an array of targets, or ``(targets, mask)``."""
LossFn = Callable[[Array, Any], tuple[float, Array]]
_INT64 = np.dtype(np.int64)

__all__ = [
    "Loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "mse",
    "softmax_cross_entropy",
    "sparse_softmax_cross_entropy",
]


@attrs.frozen
class Loss:
    """A loss: a name plus ``value_and_grad(pred, y) -> (value, dL/dpred)``."""

    name: str
    fn: LossFn = attrs.field(repr=False)

    def value_and_grad(self, pred: Array, y: Target) -> tuple[float, Array]:
        """Return the loss value and its gradient with respect to ``pred``.

        ``y`` is the targets, or for the softmax cross-entropies the pair
        ``(targets, mask)`` (see the module docstring).
        """
        return self.fn(pred, y)

    def __call__(self, pred: Array, y: Target) -> float:
        return self.fn(pred, y)[0]


def _check_pred(who: str, pred: object) -> Array:
    pred = _arrays.plain(who, "pred", pred)
    if not isinstance(pred, np.ndarray):
        raise TypeError(f"{who}: pred must be a NumPy array, got {type(pred).__name__}")
    _arrays.check_compute_float(who, "pred", pred)  # float32 or float64
    if pred.ndim < 1 or pred.shape[0] == 0:
        raise ValueError(f"{who}: pred must have a non-empty batch axis, got shape {pred.shape}")
    if pred.size == 0:
        raise ValueError(
            f"{who}: pred has shape {pred.shape}, which holds no values per example; "
            "check the output layer size (units=0?)"
        )
    return pred


def _check_target(who: str, pred: Array, y: object) -> Array:
    """A float target of exactly ``pred``'s shape, cast to ``pred``'s dtype."""
    y = _arrays.plain(who, "y", y)
    if not isinstance(y, np.ndarray):
        raise TypeError(
            f"{who}: y must be a NumPy array, got {type(y).__name__}; use np.asarray(y)"
        )
    if y.shape != pred.shape:
        hint = ""
        if y.ndim == 1 and pred.shape == (y.shape[0], 1):
            hint = " reshape the target with y.reshape(-1, 1)"
        elif y.ndim == 1 and pred.ndim == 2 and y.shape[0] == pred.shape[0]:
            hint = " for integer class labels use fnn.losses.sparse_softmax_cross_entropy"
        elif y.shape[::-1] == pred.shape:
            hint = " did you pass y transposed?"
        raise ValueError(
            f"{who}: y has shape {y.shape} but pred has shape {pred.shape}; targets are "
            f"never broadcast, they must match exactly;{hint or ' check the output layer size'}"
        )
    if y.dtype.kind not in "fiub":
        raise TypeError(f"{who}: y must be numeric, got dtype {y.dtype}")
    # NaN/inf and float64 targets beyond a float32 pred's range are refused before the cast.
    return _arrays.cast_finite(who, "y", y, pred.dtype)


def _no_mask(who: str, y: object) -> None:
    if isinstance(y, tuple):
        raise TypeError(
            f"{who}: y is a tuple, but this loss takes no mask: y must be an array of targets "
            "of pred's shape (a pair (labels, mask) is for the softmax cross-entropies)"
        )


def _mean(terms: Array, count: int) -> float:
    """The one reduction every loss ends with: ``Σ terms / count``, accumulated in float64.

    ``count`` is the number of elements (element-wise losses) or examples (the
    softmax cross-entropies). Accumulating in float64 keeps a float32 batch's
    sum from overflowing when its mean would not, and is more accurate.
    """
    return float(terms.sum(dtype=np.float64) / count)


@_arrays.underflow_retried
def _mse(pred: Array, y: Array) -> tuple[float, Array]:
    _no_mask("mse", y)
    pred = _check_pred("mse", pred)
    y = _check_target("mse", pred, y)
    diff = pred - y
    n = pred.dtype.type(diff.size)
    return _mean(diff * diff, diff.size), diff * (2 / n)


mse = Loss("mse", _mse)


def _check_probability_target(who: str, y: Array) -> None:
    if ((y < 0) | (y > 1)).any():
        raise ValueError(f"{who}: targets must lie in [0, 1], got values outside it")


@_arrays.underflow_retried
def _bce(pred: Array, y: Array) -> tuple[float, Array]:
    who = "binary_cross_entropy"
    _no_mask(who, y)
    pred = _check_pred(who, pred)
    y = _check_target(who, pred, y)
    _check_probability_target(who, y)
    if ((pred < 0) | (pred > 1)).any() or not np.isfinite(pred).all():
        raise ValueError(
            f"{who}: pred must be probabilities in [0, 1]; for raw scores (logits) use "
            "fnn.losses.binary_cross_entropy_with_logits"
        )
    eps = np.finfo(pred.dtype).eps
    p = np.clip(pred, eps, 1 - eps)
    n = pred.dtype.type(pred.size)
    terms = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return _mean(terms, pred.size), (p - y) / (p * (1 - p)) / n


binary_cross_entropy = Loss("binary_cross_entropy", _bce)


@_arrays.underflow_retried
def _bce_logits(z: Array, y: Array) -> tuple[float, Array]:
    who = "binary_cross_entropy_with_logits"
    _no_mask(who, y)
    z = _check_pred(who, z)
    y = _check_target(who, z, y)
    _check_probability_target(who, y)
    n = z.dtype.type(z.size)
    # log(1 + e^z) − y·z, written so that no exponent is positive.
    terms = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return _mean(terms, z.size), (sigmoid(z) - y) / n


binary_cross_entropy_with_logits = Loss("binary_cross_entropy_with_logits", _bce_logits)


def _log_softmax(z: Array) -> Array:
    shifted = _arrays.shift_by_max(z)
    out: Array = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


def _check_logits(who: str, z: object) -> Array:
    z = _check_pred(who, z)
    if z.ndim not in (2, 3):
        raise ValueError(
            f"{who}: logits must have shape (batch, classes) or (batch, time, classes), got "
            f"{z.shape}; add a batch axis with z[None], or reshape to (batch, -1, classes)"
        )
    return z


@_arrays.underflow_retried
def _softmax_ce(z: Array, y: object) -> tuple[float, Array]:
    who = "softmax_cross_entropy"
    y, mask = _split_pair(who, y)
    z = _check_logits(who, z)
    if z.ndim == 3 or mask is not None:
        return _positions_ce(who, z, y, mask)
    y = _arrays.plain(who, "y", y)
    if isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "iu":
        raise ValueError(
            f"{who}: got integer labels of shape {y.shape}; it expects one-hot or probability "
            "targets of shape (batch, classes); use fnn.losses.sparse_softmax_cross_entropy "
            "for integer labels"
        )
    y = _check_target(who, z, y)
    _check_probability_target(who, y)
    logp = _log_softmax(z)
    b = z.dtype.type(z.shape[0])
    grad = (np.exp(logp) * y.sum(axis=-1, keepdims=True) - y) / b
    return _mean(-(y * logp), z.shape[0]), grad


softmax_cross_entropy = Loss("softmax_cross_entropy", _softmax_ce)


def _check_labels(who: str, z: Array, y: object) -> Array:
    y = _arrays.plain(who, "y", y)
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{who}: y must be a NumPy array of integer labels, got {type(y).__name__}")
    if y.shape == z.shape:
        raise ValueError(
            f"{who}: y has shape {y.shape}, like one-hot targets; it expects integer labels of "
            f"shape (batch,); use fnn.losses.softmax_cross_entropy for one-hot targets or "
            "pass y.argmax(axis=1)"
        )
    if y.shape != (z.shape[0],):
        hint = " flatten the labels with y.ravel()" if y.size == z.shape[0] else ""
        raise ValueError(
            f"{who}: y has shape {y.shape} but expected integer labels of shape "
            f"({z.shape[0]},) for logits of shape {z.shape};{hint or ' one label per example'}"
        )
    if y.dtype.kind not in "iu":
        raise TypeError(
            f"{who}: labels must be integers, got dtype {y.dtype}; use y.astype(np.int64)"
        )
    classes = z.shape[1]
    # Seen as unsigned, a negative label is huge: one comparison finds both kinds.
    # (int64, the usual labels, is viewed as uint64 in place: the same bits, no copy)
    unsigned = y.view(np.uint64) if y.dtype is _INT64 else y.astype(np.uint64, copy=False)
    if y.size and unsigned.max() >= classes:
        bad = y[(y < 0) | (y >= classes)][0]
        raise ValueError(
            f"{who}: label {bad} is out of range for {classes} classes (labels must be in "
            f"0..{classes - 1}); check the output layer size"
        )
    return y


@_arrays.underflow_retried
def _sparse_softmax_ce(z: Array, y: object) -> tuple[float, Array]:
    who = "sparse_softmax_cross_entropy"
    y, mask = _split_pair(who, y)
    z = _check_logits(who, z)
    if z.ndim == 3 or mask is not None:
        return _positions_sparse_ce(who, z, y, mask)
    y = _check_labels(who, z, y)
    # One exp over the logits serves both the value and the gradient:
    # log softmax(z)[y] = s[y] − log Σ e^s with s = z − max z (no overflow).
    shifted = _arrays.shift_by_max(z)
    e = np.exp(shifted)
    total = e.sum(axis=-1)
    n = z.shape[0]
    # The flat index of each example's labelled logit (labels are in range: checked above);
    # ``a.reshape(-1)[at]`` is ``a[arange(n), y]`` and costs a third as much.
    at = _arrays.row_starts(n, z.shape[1]) + y.astype(np.intp, copy=False)
    b = z.dtype.type(n)
    value = _mean(np.log(total) - shifted.reshape(-1)[at], n)
    grad = e  # e was just allocated by np.exp: turn it into (softmax − onehot)/B in place
    grad /= (total * b)[:, None]
    if grad.flags.c_contiguous:  # its flat view is a view (always, for a network's output)
        grad.reshape(-1)[at] -= 1 / b
    else:  # logits in another layout (e.g. transposed): a flat view would be a copy
        grad[np.arange(n), y] -= 1 / b
    return value, grad


sparse_softmax_cross_entropy = Loss("sparse_softmax_cross_entropy", _sparse_softmax_ce)


# ---------------------------------------------------------------------------
# Sequences and masks: the softmax cross-entropies over (batch, time, classes)
# logits, averaged over the (unmasked) positions.


def _split_pair(who: str, y: object) -> tuple[object, object]:
    """``y`` or ``(y, mask)`` as ``(y, mask)``, ``mask`` ``None`` without one."""
    if isinstance(y, tuple):
        if len(y) != 2:
            raise TypeError(
                f"{who}: y must be an array of targets or a pair (targets, mask), got a tuple of "
                f"{len(y)} items"
            )
        return y[0], y[1]
    if isinstance(y, np.ma.MaskedArray):
        raise TypeError(
            f"{who}: y is a masked array; fnn will not compute with the values under its mask. "
            "To skip the masked positions pass the pair (y.filled(0), ~np.ma.getmaskarray(y)) "
            "(the mask marks the positions that count); or replace them with y.filled(value)"
        )
    return y, None


def _check_mask(who: str, z: Array, mask: object) -> Array:
    """The mask as booleans of shape ``z.shape[:-1]`` (True: the position counts)."""
    mask = _arrays.plain(who, "mask", mask)
    positions = z.shape[:-1]
    if not isinstance(mask, np.ndarray):
        raise TypeError(
            f"{who}: mask must be a NumPy array of shape {positions}, got {type(mask).__name__}; "
            "use np.asarray(mask, dtype=bool)"
        )
    if mask.shape != positions:
        hint = "one entry per position of pred without its class axis"
        if mask.shape == z.shape:
            hint = "a mask has one entry per position, not per class: pass mask[..., 0]"
        elif mask.shape == positions[::-1]:
            hint = "did you pass the mask transposed?"
        raise ValueError(
            f"{who}: mask has shape {mask.shape} but expected {positions} for logits of shape "
            f"{z.shape}; {hint}"
        )
    if mask.dtype == bool:
        return mask
    if mask.dtype.kind not in "iuf":
        raise TypeError(f"{who}: mask must be bool or 0/1 numbers, got dtype {mask.dtype}")
    keep: Array = mask == 1
    if not (keep | (mask == 0)).all():
        bad = mask[~(keep | (mask == 0))].flat[0]
        raise ValueError(
            f"{who}: mask must hold only 0 and 1 (or False and True), got {bad}; 1/True marks "
            "a position that counts, 0/False one to skip (padding)"
        )
    return keep


def _positions_ce(who: str, z: Array, y: object, mask: object) -> tuple[float, Array]:
    """softmax_cross_entropy over positions: one-hot ``y`` of ``z``'s shape, optional mask."""
    y = _arrays.plain(who, "y", y)
    if isinstance(y, np.ndarray) and y.shape == z.shape[:-1] and y.dtype.kind in "iu":
        raise ValueError(
            f"{who}: got integer labels of shape {y.shape}; it expects one-hot or probability "
            f"targets of shape {z.shape}; use fnn.losses.sparse_softmax_cross_entropy for "
            "integer labels"
        )
    keep = None if mask is None else _check_mask(who, z, mask)
    if keep is not None and isinstance(y, np.ndarray) and y.shape == z.shape:
        if y.dtype.kind not in "fiub":
            raise TypeError(f"{who}: y must be numeric, got dtype {y.dtype}")
        y = np.where(keep[..., None], y, 0)  # padding may hold anything: it is never read
    y = _check_target(who, z, y)
    _check_probability_target(who, y)
    classes = z.shape[-1]
    z2, y2 = z.reshape(-1, classes), y.reshape(-1, classes)
    logp = _log_softmax(z2)
    count = y2.shape[0] if keep is None else int(np.count_nonzero(keep))
    if count == 0:
        return 0.0, np.zeros_like(z)
    n = z.dtype.type(count)
    grad = (np.exp(logp) * y2.sum(axis=-1, keepdims=True) - y2) / n
    terms = y2 * logp
    if keep is not None:
        flat_keep = keep.reshape(-1)
        grad[~flat_keep] = 0
        terms = terms[flat_keep]
    return -_mean(terms, count), grad.reshape(z.shape)


def _check_position_labels(who: str, z: Array, y: object, keep: Array | None) -> Array:
    """Integer labels of shape ``z.shape[:-1]``, in range wherever ``keep`` is true."""
    y = _arrays.plain(who, "y", y)
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{who}: y must be a NumPy array of integer labels, got {type(y).__name__}")
    positions = z.shape[:-1]
    if y.shape != positions:
        hint = " one label per position"
        if y.shape == z.shape:
            hint = " for one-hot targets use fnn.losses.softmax_cross_entropy"
        elif y.shape == (*positions, 1):
            hint = " drop the last axis with y[..., 0]"
        raise ValueError(
            f"{who}: y has shape {y.shape} but expected integer labels of shape {positions} "
            f"(the logits' shape {z.shape} without the class axis);{hint}"
        )
    if y.dtype.kind not in "iu":
        raise TypeError(
            f"{who}: labels must be integers, got dtype {y.dtype}; use y.astype(np.int64)"
        )
    classes = z.shape[-1]
    bad = (y < 0) | (y >= classes)
    if keep is not None:
        bad &= keep
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        fix = (
            "mask the position out (mask False) if it is padding, or check the output layer size"
            if keep is not None
            else "check the output layer size; for padding pass y = (labels, mask) with mask "
            "False there"
        )
        unmasked = " and not masked" if keep is not None else ""
        raise ValueError(
            f"{who}: label {y[where]} at position {where} is out of range for {classes} "
            f"classes (labels must be in 0..{classes - 1}){unmasked}; {fix}"
        )
    return y


def _positions_sparse_ce(who: str, z: Array, y: object, mask: object) -> tuple[float, Array]:
    """sparse_softmax_cross_entropy over positions: labels ``z.shape[:-1]``, optional mask."""
    keep = None if mask is None else _check_mask(who, z, mask)
    labels = _check_position_labels(who, z, y, keep).reshape(-1)
    classes = z.shape[-1]
    z2 = z.reshape(-1, classes)
    flat_keep = None if keep is None else keep.reshape(-1)
    if flat_keep is not None:
        labels = np.where(flat_keep, labels, 0)  # padding's labels are never read
    count = labels.size if flat_keep is None else int(np.count_nonzero(flat_keep))
    if count == 0:
        return 0.0, np.zeros_like(z)
    shifted = _arrays.shift_by_max(z2)
    e = np.exp(shifted)
    total = e.sum(axis=-1)
    rows = np.arange(z2.shape[0])
    n = z.dtype.type(count)
    terms = np.log(total) - shifted[rows, labels]
    grad = e  # just allocated by np.exp: (softmax − onehot)/n in place
    grad /= (total * n)[:, None]
    grad[rows, labels] -= 1 / n
    if flat_keep is not None:
        grad[~flat_keep] = 0
        terms = terms[flat_keep]
    return _mean(terms, count), grad.reshape(z.shape)
