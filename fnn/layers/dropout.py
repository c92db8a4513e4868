"""Inverted dropout: random zeroing in training mode, the identity in evaluation mode."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
import numpy as np

from fnn import _arrays
from fnn import random as fnn_random
from fnn.layers._base import Array, Layer, Pullback, check_input, input_only_pullback
from fnn.random import KeyLike, as_key, generator

__all__ = ["Dropout"]


def _check_drop_prob(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"Dropout: drop_prob must be a number in [0, 1), got {value!r}")
    if not (math.isfinite(_arrays.real(value)) and 0.0 <= _arrays.real(value) < 1.0):
        raise ValueError(
            f"Dropout: drop_prob must be in [0, 1) (the probability of zeroing a unit), "
            f"got {value!r}; 0 disables dropout, and 1 would drop everything"
        )


@attrs.frozen(eq=False)
class Dropout(Layer):
    """Inverted dropout with drop probability ``drop_prob`` (``p``).

    Training mode: ``y = x · m / (1 − p)`` with a mask ``m`` of independent
    Bernoulli(1 − p) draws, one per element, from ``key``; the same key gives
    the same mask (bit for bit). Scaling by ``1 / (1 − p)`` keeps
    ``E[y] = x``, so evaluation mode needs no rescaling: there ``y = x``.

    Backward (the mask is fixed by the key): ``dL/dx = δ · m / (1 − p)`` in
    training mode, ``δ`` in evaluation mode.

    When a network computes a training step in parts of the batch on fnn's
    threads (`fnn.threads`), each part draws its own rows of the mask the whole
    batch would have drawn (skipping ahead in the key's random stream), so the
    mask, and the step, do not depend on the thread count.

    Inside a network, :func:`fnn.forward` / :func:`fnn.value_and_grad` with
    ``training=True`` and a ``key`` give this layer ``fold_in(key, index)``.

    Args:
        drop_prob: probability of zeroing each element, in ``[0, 1)``.

    Raises:
        ValueError: ``drop_prob`` outside ``[0, 1)``; training mode without a key.
        TypeError: ``drop_prob`` is not a number; ``x`` is not a floating array.

    Example:
        >>> import numpy as np
        >>> layer = Dropout(0.5)
        >>> x = np.ones((2, 4), np.float32)
        >>> bool((layer.forward(x) == x).all())  # evaluation mode: the identity
        True
        >>> y = layer.forward(x, key=0, training=True)
        >>> sorted(set(y.ravel().tolist())) == [0.0, 2.0], y.dtype
        (True, dtype('float32'))
    """

    stochastic: ClassVar[bool] = True

    @property
    def per_example(self) -> bool:  # type: ignore[override]
        """Each example's output depends on that example and its rows of the mask only, and
        a part of a batch draws the mask rows the whole batch would (see `_scaled_mask`), so
        a network may run its step in parts (`fnn.threads`), when this NumPy's random
        streams can be skipped exactly (`fnn.random.skip_is_exact`, checked once). Not for
        a subclass, which may draw otherwise (it must say so itself, as for any layer)."""
        return type(self) is Dropout and fnn_random.skip_is_exact()

    drop_prob: float = attrs.field(validator=_check_drop_prob)

    @property
    def name(self) -> str:
        return f"Dropout(drop_prob={self.drop_prob})"

    def _scaled_mask(self, x: Array, key: KeyLike | None) -> Array:
        """``m / (1 − p)`` in ``x``'s dtype (float32 draws for float32 inputs)."""
        if key is None:
            raise ValueError(
                f"{self.name}: training-mode forward needs a key to draw the dropout mask; "
                "pass key=fnn.random.key(0) (a new key each step), or training=False "
                "for evaluation"
            )
        draw_dtype = np.float32 if x.dtype == np.float32 else np.float64
        gen = generator(as_key(key, self.name))
        before = fnn_random.rows_before()  # > 0 for a later part of a batch computed in parts
        if before:  # skip the draws of the batch's earlier rows: the same mask, part by part
            fnn_random.skip_uniform(gen, before * math.prod(x.shape[1:]), draw_dtype)
        u = gen.random(x.shape, dtype=draw_dtype)
        keep = u >= self.drop_prob
        out: Array = keep.astype(x.dtype)
        out *= x.dtype.type(1.0 / (1.0 - float(self.drop_prob)))
        return out

    def forward(self, x: Array, *, key: KeyLike | None = None, training: bool = False) -> Array:
        x = check_input(self, x, None, "(batch, ...)")
        if not training:
            return x.copy()
        out: Array = x * self._scaled_mask(x, key)
        return out

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        x = check_input(self, x, None, "(batch, ...)")
        scale = self._scaled_mask(x, key) if training else None
        y = x.copy() if scale is None else x * scale

        def dx_of(dy: Array) -> Array:
            return dy.copy() if scale is None else dy * scale

        return y, input_only_pullback(self, y, dx_of, need_dx)
