"""Long short-term memory (LSTM) with backpropagation through time written out.

One step, with ``x_t`` ``(batch, d_in)`` and the carry ``(h, c)``:

    z = x_t·w + h_{t-1}·u + b                       (batch, 4·units)
    i = σ(z_i),  f = σ(z_f),  g = tanh(z_g),  o = σ(z_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)

**Gate layout.** The columns of ``w``, ``u`` and ``b`` are four blocks of
``units`` in the order ``i, f, g, o`` (input gate, forget gate, candidate,
output gate): the order of both PyTorch (``weight_ih_l0`` is ``w.T``,
``weight_hh_l0`` is ``u.T``, ``bias_ih_l0 + bias_hh_l0`` is ``b``) and
Keras (``kernel``, ``recurrent_kernel``, ``bias``).

**Forget-gate bias.** ``b``'s forget block starts at ``forget_bias = 1``
(Gers et al. 2000; Jozefowicz et al. 2015; Keras's ``unit_forget_bias``), so
that at initialisation ``f ≈ σ(1) ≈ 0.73`` and the cell keeps its memory
while the other weights are still random; the other blocks start at zero.

**Backward through time** (derived on the math page "Recurrent layers"),
from ``t = T−1`` down to 0 with ``dh``, ``dc`` the gradients reaching
``h_t``, ``c_t`` from later steps (zero, or the final carry's cotangent, at
``t = T−1``):

    dh  += δ_t                      (the output's cotangent at step t)
    dc  += dh ⊙ o ⊙ (1 − tanh²(c_t))
    dz_i = dc ⊙ g ⊙ i(1 − i),   dz_f = dc ⊙ c_{t-1} ⊙ f(1 − f)
    dz_g = dc ⊙ i ⊙ (1 − g²),   dz_o = dh ⊙ tanh(c_t) ⊙ o(1 − o)
    dc  ← dc ⊙ f,   dh ← dz·uᵀ     (what reaches step t−1)

then, summed over steps, ``dL/dw = Σ_t x_tᵀ·dz_t``, ``dL/du = Σ_t
h_{t-1}ᵀ·dz_t``, ``dL/db = Σ_t Σ_batch dz_t``, ``dL/dx_t = dz_t·wᵀ``; the
``dh``, ``dc`` left after step 0 are the gradient of the initial carry.
Checked by ``tests/layers/test_recurrent.py``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, cast

import attrs
import numpy as np

from fnn import _arrays
from fnn.layers._base import Array
from fnn.layers.recurrent import Carry, Recurrent, shifted

__all__ = ["LSTM"]


def _finite(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    ok = isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool)
    if not (ok and math.isfinite(_arrays.real(value))):  # type: ignore[arg-type]
        raise ValueError(
            f"{type(instance).__name__}: {attribute.name} must be a finite number, "
            f"got {_arrays.short(value)}"
        )


@attrs.frozen(eq=False)
class LSTM(Recurrent):
    """Long short-term memory over ``(batch, time, d_in)`` sequences.

    The step, gate layout (``i, f, g, o`` column blocks, as PyTorch and
    Keras), forget-gate bias and backward pass are in the module docstring;
    the initial state and the carry methods (``forward_with_carry``,
    ``vjp_with_carry``) in `fnn.layers.recurrent`.

    Args:
        units: the size of ``h`` and ``c``.
        return_sequences: output ``h`` of every step ``(batch, time, units)``
            (default), or only the last one, ``(batch, units)``.
        forget_bias: the initial value of the forget gate's bias block (1.0).
        w_init: initialiser for ``w`` ``(d_in, 4·units)``; Glorot uniform.
        u_init: initialiser for ``u`` ``(units, 4·units)``; orthogonal.

    Raises:
        ValueError: ``units`` not a positive int; ``forget_bias`` not finite;
            ``x`` not ``(batch, time, d_in)`` with ``time ≥ 1`` for the
            ``d_in`` the layer was built for.
        TypeError: ``x`` is not a floating array of the parameters' dtype.

    Example:
        >>> import numpy as np
        >>> layer, out_shape = LSTM(4).init(0, (5, 3), np.float64)
        >>> layer.w.shape, layer.u.shape, layer.b[4:8].tolist(), out_shape
        ((3, 16), (4, 16), [1.0, 1.0, 1.0, 1.0], (5, 4))
        >>> y, (h, c) = layer.forward_with_carry(np.ones((2, 5, 3)))
        >>> y.shape, bool((y[:, -1] == h).all())
        ((2, 5, 4), True)
    """

    gates: ClassVar[int] = 4
    carry_size: ClassVar[int] = 2

    forget_bias: float = attrs.field(default=1.0, kw_only=True, validator=_finite)

    def _bias(self, dtype: np.dtype) -> Array:
        b = np.zeros(4 * self.units, dtype)
        b[self.units : 2 * self.units] = self.forget_bias
        return b

    def _scan(self, xt: Array, carry: Carry) -> tuple[Array, Carry, dict[str, Array]]:
        time, batch, d_in = xt.shape
        n = self.units
        w, u, b = cast(Array, self.w), cast(Array, self.u), cast(Array, self.b)
        # σ(z) = ½·tanh(z/2) + ½: one tanh over all four blocks of z·half, where half
        # is ½ on the i, f, o blocks and 1 on g; the scaling is folded into x·w + b and u.
        half = np.full(4 * n, 0.5, xt.dtype)
        half[2 * n : 3 * n] = 1.0
        xw = (xt.reshape(time * batch, d_in) @ w).reshape(time, batch, 4 * n)
        xw += b
        xw *= half
        u_half = u * half
        gates = np.empty((time, batch, 4 * n), xt.dtype)  # i, f, g, o after activation
        cs = np.empty((time, batch, n), xt.dtype)
        tanh_cs = np.empty((time, batch, n), xt.dtype)
        hs = np.empty((time, batch, n), xt.dtype)
        h, c = carry
        for t in range(time):
            z = h @ u_half
            z += xw[t]
            a = np.tanh(z, out=gates[t])
            a[:, : 2 * n] *= 0.5
            a[:, : 2 * n] += 0.5
            a[:, 3 * n :] *= 0.5
            a[:, 3 * n :] += 0.5
            c = np.multiply(a[:, n : 2 * n], c, out=cs[t])
            c += a[:, :n] * a[:, 2 * n : 3 * n]
            np.tanh(c, out=tanh_cs[t])
            h = np.multiply(a[:, 3 * n :], tanh_cs[t], out=hs[t])
        final = (hs[-1].copy(), cs[-1].copy())
        return hs, final, {"gates": gates, "cs": cs, "tanh_cs": tanh_cs, "hs": hs}

    def _scan_back(
        self,
        xt: Array,
        carry: Carry,
        cache: dict[str, Array],
        dh_out: Array,
        dcarry: Carry,
        need_dx: bool,
    ) -> tuple[dict[str, Array], Array | None, Carry]:
        time, batch, d_in = xt.shape
        n = self.units
        w, u = cast(Array, self.w), cast(Array, self.u)
        gates, cs, tanh_cs = cache["gates"], cache["cs"], cache["tanh_cs"]
        # The activations' derivatives, for every step at once: a(1 − a) for the
        # sigmoid gates, 1 − g² for the candidate; and o ⊙ (1 − tanh²(c)).
        slope = gates * (1 - gates)
        g = gates[..., 2 * n : 3 * n]
        slope[..., 2 * n : 3 * n] = 1 - g * g
        o_dtanh = gates[..., 3 * n :] * (1 - tanh_cs * tanh_cs)
        c_prev = shifted(carry[1], cs)
        dz = np.empty_like(gates)
        dh, dc = dcarry[0].copy(), dcarry[1].copy()
        u_t = u.T
        for t in range(time - 1, -1, -1):
            dh += dh_out[t]
            dc += dh * o_dtanh[t]
            a, d = gates[t], dz[t]
            np.multiply(dc, a[:, 2 * n : 3 * n], out=d[:, :n])
            np.multiply(dc, c_prev[t], out=d[:, n : 2 * n])
            np.multiply(dc, a[:, :n], out=d[:, 2 * n : 3 * n])
            np.multiply(dh, tanh_cs[t], out=d[:, 3 * n :])
            d *= slope[t]
            dc *= a[:, n : 2 * n]
            dh = d @ u_t
        flat_dz = dz.reshape(time * batch, 4 * n)
        h_prev = shifted(carry[0], cache["hs"]).reshape(time * batch, n)
        grads = {
            "w": xt.reshape(time * batch, d_in).T @ flat_dz,
            "u": h_prev.T @ flat_dz,
            "b": flat_dz.sum(axis=0),
        }
        dx = (flat_dz @ w.T).reshape(time, batch, d_in) if need_dx else None
        return grads, dx, (dh, dc)
