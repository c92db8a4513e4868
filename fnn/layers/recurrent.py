"""What the recurrent layers share: configuration, checks, initialisation and the carry.

`LSTM` (in ``lstm.py``) and `GRU` (in ``gru.py``) read ``(batch, time,
d_in)`` sequences and keep a *carry* (the state handed from one step to the
next): ``(h, c)`` for the LSTM, ``(h,)`` for the GRU, each ``(batch, units)``.

**Initial state.** ``forward`` and ``vjp`` (the layer protocol, used inside a
network) start every sequence from a zero carry, as Keras and PyTorch do by
default: a network passes one array from layer to layer, so there is no place
for a second input. Code that works with the layer directly passes the carry
explicitly: ``forward_with_carry(x, carry)`` returns ``(y, final_carry)``, and
``vjp_with_carry(x, carry)`` returns ``(y, final_carry, pullback)`` with
``pullback(dy, dcarry=None) -> (dlayer, dx, dcarry0)``, so the gradient
reaches the initial state too. That is what sampling one step at a time,
truncated backpropagation through time (carry the state across chunks) and
encoder–decoder models need.

**Parameters.** ``w`` ``(d_in, k·units)`` multiplies the input, ``u``
``(units, k·units)`` the previous ``h``, ``b`` ``(k·units,)`` is the bias;
``k`` = 4 for the LSTM, 3 for the GRU, and the column blocks are the gates in
the order each class documents. ``w`` starts Glorot-uniform, ``u``
orthogonal (Saxe et al. 2014, the Keras default for recurrent kernels: it
keeps ``h·u`` from growing or shrinking over many steps), ``b`` at zero (the
LSTM's forget block at ``forget_bias``).

**Cost.** The input projection ``x·w`` of every step is one matrix product
before the loop over time, and the weight gradients are one matrix product
each after the backward loop; only ``h·u`` and its transpose run per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import numpy as np

from fnn import _arrays
from fnn.layers import initializers
from fnn.layers._base import (
    Array,
    Layer,
    Pullback,
    Shape,
    check_cotangent,
    check_sequence,
    param_field,
    positive_int,
)
from fnn.random import KeyLike, split

__all__ = ["Carry", "Recurrent", "shifted", "time_major"]

Carry = tuple[Array, ...]
CarryPullback = Callable[..., tuple[Layer, Array | None, Carry]]


@attrs.frozen(eq=False)
class Recurrent(Layer):
    """Base of `LSTM` and `GRU`: configuration, checks and the carry (see the module)."""

    gates: ClassVar[int] = 1  # blocks of columns in w, u and b (4 for the LSTM, 3 for the GRU)
    carry_size: ClassVar[int] = 1  # arrays in the carry (2 for the LSTM: h and c)

    units: int = attrs.field(validator=positive_int)
    return_sequences: bool = attrs.field(default=True, kw_only=True)
    w_init: initializers.Initializer = attrs.field(
        default=initializers.glorot_uniform, converter=initializers.resolve, kw_only=True
    )
    u_init: initializers.Initializer = attrs.field(
        default=initializers.orthogonal, converter=initializers.resolve, kw_only=True
    )
    w: Array | None = param_field()
    u: Array | None = param_field()
    b: Array | None = param_field()

    @property
    def name(self) -> str:
        seq = "" if self.return_sequences else ", return_sequences=False"
        return f"{type(self).__name__}(units={self.units}{seq})"

    def output_shape(self, in_shape: Shape) -> Shape:
        if len(in_shape) != 2:
            raise ValueError(
                f"{self.name}: expects inputs of shape (batch, time, d_in), but the previous "
                f"layer gives (batch, {', '.join(map(str, in_shape))}); put an Embedding before "
                "it, or Reshape to (time, features)"
            )
        return (in_shape[0], self.units) if self.return_sequences else (self.units,)

    def _bias(self, dtype: np.dtype) -> Array:
        return np.zeros(self.gates * self.units, dtype)

    def _extra_params(self, dtype: np.dtype) -> dict[str, Array]:
        return {}

    def init(self, key: KeyLike, in_shape: Shape, dtype: np.dtype) -> tuple[Any, Shape]:
        out_shape = self.output_shape(in_shape)
        kw, ku = split(key)
        width = self.gates * self.units
        params: dict[str, Any] = {
            "w": self.w_init(kw, (in_shape[1], width), dtype),
            "u": self.u_init(ku, (self.units, width), dtype),
            "b": self._bias(np.dtype(dtype)),
            **self._extra_params(np.dtype(dtype)),
        }
        return attrs.evolve(self, **params), out_shape

    def _check(self, x: object) -> Array:
        return check_sequence(self, x, self.w, 0, "(batch, time, d_in)")

    def _check_carry(self, carry: object, x: Array) -> Carry:
        """The initial carry: zeros for ``None``, else a checked tuple of ``(batch, units)``."""
        shape = (x.shape[0], self.units)
        if carry is None:
            return tuple(np.zeros(shape, x.dtype) for _ in range(self.carry_size))
        what = "(h, c)" if self.carry_size == 2 else "(h,)"
        if not isinstance(carry, tuple | list) or len(carry) != self.carry_size:
            got = type(carry).__name__
            if isinstance(carry, tuple | list):
                got += f" of {len(carry)}"
            raise TypeError(
                f"{self.name}: carry must be a tuple {what} of arrays of shape {shape}, got "
                f"{got}; pass None for a zero initial state"
            )
        carry = [_arrays.plain(self.name, "carry", part) for part in carry]
        for part in carry:
            if not isinstance(part, np.ndarray) or part.dtype != x.dtype:
                got = f"dtype {part.dtype}" if isinstance(part, np.ndarray) else type(part).__name__
                raise TypeError(
                    f"{self.name}: each carry array must be a {x.dtype} NumPy array like x, got "
                    f"{got}; cast it with np.asarray(h, dtype=np.{x.dtype})"
                )
            if part.shape != shape:
                raise ValueError(
                    f"{self.name}: carry arrays must have shape (batch, units) = {shape}, got "
                    f"{part.shape}"
                )
        return tuple(carry)

    def _check_dcarry(self, dcarry: object, carry: Carry) -> Carry:
        if dcarry is None:
            return tuple(np.zeros_like(c) for c in carry)
        if not isinstance(dcarry, tuple | list) or len(dcarry) != len(carry):
            raise TypeError(
                f"{self.name}: dcarry must be a tuple like the final carry ({len(carry)} arrays "
                f"of shape {carry[0].shape}) or None, got {type(dcarry).__name__}"
            )
        dcarry = [_arrays.plain(self.name, "dcarry", part) for part in dcarry]
        for part, ref in zip(dcarry, carry, strict=True):
            if not isinstance(part, np.ndarray) or part.dtype != ref.dtype:
                raise TypeError(f"{self.name}: dcarry arrays must be {ref.dtype} NumPy arrays")
            if part.shape != ref.shape:
                raise ValueError(
                    f"{self.name}: dcarry arrays must have shape {ref.shape}, got {part.shape}"
                )
        return tuple(dcarry)

    def _sequence_cotangent(self, dy: object, y: Array, x: Array) -> Array:
        """``dL/dh`` for every step, time-major ``(time, batch, units)``, from ``dy``."""
        dy = check_cotangent(self, dy, y)
        if self.return_sequences:
            out: Array = dy.transpose(1, 0, 2)
            return out
        dh = np.zeros((x.shape[1], x.shape[0], self.units), y.dtype)
        dh[-1] = dy
        return dh

    def _output(self, hs: Array) -> Array:
        """The layer's output from the time-major states ``(time, batch, units)``."""
        out: Array = (
            np.ascontiguousarray(hs.transpose(1, 0, 2)) if self.return_sequences else hs[-1].copy()
        )
        return out

    # --- the scan: each subclass runs its loop over time in _scan / _scan_back. They work
    # time-major, (time, batch, features), so that every step reads and writes contiguous
    # rows (measured 25% faster than strided batch-major steps at batch 64, units 64).

    def _scan(self, xt: Array, carry: Carry) -> tuple[Array, Carry, dict[str, Array]]:
        """``(h of every step (time, batch, units), final carry, what backward needs)``
        for the time-major input ``xt`` ``(time, batch, d_in)``."""
        raise NotImplementedError

    def _scan_back(
        self,
        xt: Array,
        carry: Carry,
        cache: dict[str, Array],
        dh: Array,
        dcarry: Carry,
        need_dx: bool,
    ) -> tuple[dict[str, Array], Array | None, Carry]:
        """``(parameter gradients, dx (time, batch, d_in), dcarry0)`` from ``dh`` ``(time,
        batch, units)``."""
        raise NotImplementedError

    def forward_with_carry(self, x: Array, carry: Carry | None = None) -> tuple[Array, Carry]:
        """The output for ``x`` from the initial ``carry`` (zeros if ``None``), and the final carry.

        Args:
            x: ``(batch, time, d_in)``.
            carry: ``(h, c)`` for the LSTM, ``(h,)`` for the GRU, each
                ``(batch, units)`` of ``x``'s dtype; ``None`` for zeros.

        Returns:
            ``(y, final_carry)``: ``y`` as `forward` gives it; the final carry
            in the layout of ``carry`` (new arrays).
        """
        x = self._check(x)
        hs, final, _ = self._scan(time_major(x), self._check_carry(carry, x))
        return self._output(hs), final

    def vjp_with_carry(
        self, x: Array, carry: Carry | None = None, *, need_dx: bool = True
    ) -> tuple[Array, Carry, CarryPullback]:
        """Like `forward_with_carry`, plus ``pullback(dy, dcarry=None) -> (dlayer, dx, dcarry0)``.

        ``dcarry`` is the cotangent of the final carry (``None``: zeros, the
        final state is not used); ``dcarry0`` is the gradient with respect to
        the initial ``carry``, in the same layout.
        """
        x = self._check(x)
        carry0 = self._check_carry(carry, x)
        xt = time_major(x)
        hs, final, cache = self._scan(xt, carry0)
        y = self._output(hs)

        def pullback(
            dy: Array, dcarry: Carry | None = None
        ) -> tuple[Recurrent, Array | None, Carry]:
            dh = self._sequence_cotangent(dy, y, x)
            grads, dxt, dcarry0 = self._scan_back(
                xt, carry0, cache, dh, self._check_dcarry(dcarry, final), need_dx
            )
            dx = None if dxt is None else time_major(dxt)
            return self.zero_grad_like(**grads), dx, dcarry0

        return y, final, pullback

    def forward(self, x: Array, *, key: KeyLike | None = None, training: bool = False) -> Array:
        return self.forward_with_carry(x)[0]

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        y, _, pullback_with_carry = self.vjp_with_carry(x, need_dx=need_dx)

        def pullback(dy: Array) -> tuple[Layer, Array | None]:
            dlayer, dx, _ = pullback_with_carry(dy)
            return dlayer, dx

        return y, pullback


def time_major(x: Array) -> Array:
    """``(batch, time, ...)`` to a new contiguous ``(time, batch, ...)`` array, or back."""
    out: Array = np.ascontiguousarray(x.swapaxes(0, 1))
    return out


def shifted(first: Array, hs: Array) -> Array:
    """The previous step's state for every step: ``(first, hs[0], ..., hs[-2])``, time-major."""
    return np.concatenate([first[None], hs[:-1]], axis=0)
