"""Gated recurrent unit (GRU) with backpropagation through time written out.

One step, with ``x_t`` ``(batch, d_in)`` and the carry ``(h,)``; ``a`` is the
input part and ``m`` the recurrent part of the candidate:

    a = x_t·w + b                                   (batch, 3·units)
    r = σ(a_r + (h_{t-1}·u)_r),   z = σ(a_z + (h_{t-1}·u)_z)
    m = (h_{t-1}·u)_n + b_hn
    n = tanh(a_n + r ⊙ m)
    h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

**Gate layout and convention.** The columns of ``w``, ``u`` and ``b`` are
three blocks of ``units`` in the order ``r, z, n`` (reset gate, update gate,
candidate), and the reset gate multiplies ``h·u_n + b_hn`` *after* the matrix
product. This is PyTorch's ``nn.GRU`` (``weight_ih_l0`` is ``w.T``,
``weight_hh_l0`` is ``u.T``, ``b`` is ``bias_ih_l0`` plus ``bias_hh_l0`` on
the ``r`` and ``z`` blocks, ``b_hn`` is ``bias_hh_l0``'s ``n`` block), which
is also Keras's ``reset_after=True`` (its default), except that Keras orders
the blocks ``z, r, n``. The original GRU (Cho et al. 2014, Keras's
``reset_after=False``) applies ``r`` before the product, ``(r ⊙ h)·u_n``; it
is not this layer.

**Backward through time** (derived on the math page "Recurrent layers"),
from ``t = T−1`` down to 0, ``dh`` the gradient reaching ``h_t``:

    dh  += δ_t
    da_n = dh ⊙ (1 − z) ⊙ (1 − n²)
    da_z = dh ⊙ (h_{t-1} − n) ⊙ z(1 − z)
    da_r = da_n ⊙ m ⊙ r(1 − r),    dm = da_n ⊙ r
    dh  ← dh ⊙ z + [da_r, da_z, dm]·uᵀ     (what reaches step t−1)

then ``dL/dw = Σ_t x_tᵀ·da_t``, ``dL/db = Σ da``,
``dL/du = Σ_t h_{t-1}ᵀ·[da_r, da_z, dm]_t``, ``dL/db_hn = Σ dm``,
``dL/dx_t = da_t·wᵀ``. Checked by ``tests/layers/test_recurrent.py``.
"""

from __future__ import annotations

from typing import ClassVar, cast

import attrs
import numpy as np

from fnn.layers._base import Array, param_field
from fnn.layers.recurrent import Carry, Recurrent, shifted

__all__ = ["GRU"]


@attrs.frozen(eq=False)
class GRU(Recurrent):
    """Gated recurrent unit over ``(batch, time, d_in)`` sequences.

    The step, gate layout (``r, z, n`` column blocks, reset after the
    product: PyTorch's convention) and backward pass are in the module
    docstring; the initial state and the carry methods (``forward_with_carry``,
    ``vjp_with_carry``) in `fnn.layers.recurrent`.

    Args:
        units: the size of ``h``.
        return_sequences: output ``h`` of every step ``(batch, time, units)``
            (default), or only the last one, ``(batch, units)``.
        w_init: initialiser for ``w`` ``(d_in, 3·units)``; Glorot uniform.
        u_init: initialiser for ``u`` ``(units, 3·units)``; orthogonal.

    The biases ``b`` ``(3·units,)`` and ``b_hn`` ``(units,)`` start at zero.

    Raises:
        ValueError: ``units`` not a positive int; ``x`` not ``(batch, time,
            d_in)`` with ``time ≥ 1`` for the ``d_in`` the layer was built for.
        TypeError: ``x`` is not a floating array of the parameters' dtype.

    Example:
        >>> import numpy as np
        >>> layer, out_shape = GRU(4, return_sequences=False).init(0, (5, 3), np.float32)
        >>> layer.w.shape, layer.b_hn.shape, out_shape
        ((3, 12), (4,), (4,))
        >>> layer.forward(np.ones((2, 5, 3), np.float32)).shape
        (2, 4)
    """

    gates: ClassVar[int] = 3
    carry_size: ClassVar[int] = 1

    b_hn: Array | None = param_field()

    def _extra_params(self, dtype: np.dtype) -> dict[str, Array]:
        return {"b_hn": np.zeros(self.units, dtype)}

    def _scan(self, xt: Array, carry: Carry) -> tuple[Array, Carry, dict[str, Array]]:
        time, batch, d_in = xt.shape
        n = self.units
        w, u, b = cast(Array, self.w), cast(Array, self.u), cast(Array, self.b)
        b_hn = cast(Array, self.b_hn)
        xa = (xt.reshape(time * batch, d_in) @ w).reshape(time, batch, 3 * n)
        xa += b
        rzs = np.empty((time, batch, 2 * n), xt.dtype)  # r, z after the sigmoid
        ms = np.empty((time, batch, n), xt.dtype)
        ns = np.empty((time, batch, n), xt.dtype)
        hs = np.empty((time, batch, n), xt.dtype)
        (h,) = carry
        for t in range(time):
            hu = h @ u
            rz = np.add(xa[t, :, : 2 * n], hu[:, : 2 * n], out=rzs[t])
            rz *= 0.5  # σ(v) = ½·tanh(v/2) + ½
            np.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            m = np.add(hu[:, 2 * n :], b_hn, out=ms[t])
            cand = np.multiply(rz[:, :n], m, out=ns[t])
            cand += xa[t, :, 2 * n :]
            np.tanh(cand, out=cand)
            h = np.subtract(h, cand, out=hs[t])
            h *= rz[:, n:]
            h += cand
        return hs, (hs[-1].copy(),), {"rzs": rzs, "ms": ms, "ns": ns, "hs": hs}

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
        rzs, ms, ns = cache["rzs"], cache["ms"], cache["ns"]
        slope_rz = rzs * (1 - rzs)  # σ'(v) = σ(1 − σ), every step at once
        slope_n = 1 - ns * ns
        h_prev = shifted(carry[0], cache["hs"])
        da = np.empty((time, batch, 3 * n), xt.dtype)  # cotangent of a = x·w + b
        dhu = np.empty((time, batch, 3 * n), xt.dtype)  # cotangent of [(h·u)_r, (h·u)_z, m]
        dh = dcarry[0].copy()
        u_t = u.T
        for t in range(time - 1, -1, -1):
            dh += dh_out[t]
            d, e = da[t], dhu[t]
            through_z = dh * rzs[t, :, n:]
            da_n = np.subtract(dh, through_z, out=d[:, 2 * n :])
            da_n *= slope_n[t]
            da_z = np.subtract(h_prev[t], ns[t], out=d[:, n : 2 * n])
            da_z *= dh
            da_z *= slope_rz[t, :, n:]
            np.multiply(da_n, rzs[t, :, :n], out=e[:, 2 * n :])
            da_r = np.multiply(da_n, ms[t], out=d[:, :n])
            da_r *= slope_rz[t, :, :n]
            e[:, : 2 * n] = d[:, : 2 * n]
            dh = e @ u_t
            dh += through_z
        flat_da = da.reshape(time * batch, 3 * n)
        flat_dhu = dhu.reshape(time * batch, 3 * n)
        grads = {
            "w": xt.reshape(time * batch, d_in).T @ flat_da,
            "u": h_prev.reshape(time * batch, n).T @ flat_dhu,
            "b": flat_da.sum(axis=0),
            "b_hn": flat_dhu[:, 2 * n :].sum(axis=0),
        }
        dx = (flat_da @ w.T).reshape(time, batch, d_in) if need_dx else None
        return grads, dx, (dh,)
