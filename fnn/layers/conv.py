"""2-D convolution over ``(batch, height, width, channels)`` images, as matrix products.

Forward (cross-correlation, as in every deep-learning library): with the input
padded to ``xp``, stride ``(sh, sw)`` and dilation ``(dh, dw)``,

    y[n, p, q, o] = b[o] + Σ_{i, j, c} xp[n, p·sh + i·dh, q·sw + j·dw, c] · w[i, j, c, o].

im2col writes every receptive field as a row of ``X`` of shape
``(batch·out_h·out_w, kh·kw·c_in)`` (a stride view and one copy), and the kernel
as ``W`` of shape ``(kh·kw·c_in, c_out)``; then ``Y = X·W + b``.

Backward, with δ = dL/dY reshaped to ``(batch·out_h·out_w, c_out)``: since Y is
linear in W and in X, exactly as in a Dense layer,

- dL/dW = Xᵀ·δ, reshaped to ``(kh, kw, c_in, c_out)``;
- dL/db = Σ_rows δ, shape ``(c_out,)``;
- dL/dX = δ·Wᵀ, shape ``(batch·out_h·out_w, kh·kw·c_in)`` (computed as one
  ``(batch·out_h·out_w, c_in)`` block per kernel offset), and because each
  padded input cell ``xp[n, r, s, c]`` appears in every row whose window covers
  it, dL/dxp is the sum of the entries of dL/dX that hold a copy of that cell
  (col2im, the adjoint of im2col); dL/dx is the interior of dL/dxp (padding
  cells are constants).

With stride 1 the same sum is itself a convolution ("transposed convolution"):

    dL/dx[n, r, s, c] = Σ_{i,j,o} δp[n, r + i·dh, s + j·dw, o] · w[kh−1−i, kw−1−j, c, o]

with δ padded by ``k_eff − 1 − pad`` on each side (``k_eff = (k − 1)·dilation + 1``)
and the kernel flipped in space with its channel axes swapped. fnn computes it
that way, one im2col and one product, when no padding exceeds ``k_eff − 1``
and ``c_out <= c_in`` (otherwise col2im moves less memory).

The bias rides in the product: the im2col matrix gets a column of ones, so
``[X 1]·[W; b] = Y`` and ``[X 1]ᵀ·δ`` stacks dL/dW on dL/db. Both passes run
per chunk of the batch (about 4 MiB of im2col rows each; ``fnn.parallel.split``),
on several threads inside ``fnn.threads(n)``; the chunks' dL/dW are added in
chunk order, so a given thread count always gives the same bits.

Stride-1 convolutions are mostly computed without an im2col matrix, where that
measured faster on the BLAS kernel in use (``fnn.layers._conv_rule``,
``docs/math/conv.md``): by shifted products (``fnn.layers._shifted``: one
product per kernel offset on a shifted slice of the flat padded input, added
up) or, for 3x3 kernels, by
Winograd F(2x2, 3x3) (``fnn.layers._winograd``: 16 products with ``K = c_in``,
2.25x fewer multiplications, and additions to transform). Their pullbacks are
the exact adjoints of their forward steps. Both run per chunk of the batch and
on threads in the same way.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, cast

import attrs
import numpy as np

from fnn import parallel
from fnn._diagnose import channels_first_hint
from fnn.layers import _conv_rule as rule
from fnn.layers import _im2col as ops
from fnn.layers import _shifted as sh
from fnn.layers import _winograd as wg
from fnn.layers import initializers
from fnn.layers._base import (
    Array,
    Layer,
    Pullback,
    Shape,
    check_built,
    check_cotangent,
    check_dtype,
    check_input,
    param_field,
    positive_int,
)
from fnn.random import KeyLike, split

__all__ = ["Conv2D"]

_FORMULATION = "auto"
"""How stride-1 convolutions are computed: ``"auto"`` (the measured rule of
:meth:`Conv2D._formulation`), or ``"im2col"``, ``"shifted"``, ``"winograd"`` to
force one where it applies (others fall back to im2col). Tests and
``benchmarks/cnn.py --compare`` set it."""


class _Passes(Protocol):
    """The chunked passes of a fast formulation (``_winograd.Winograd``, ``_shifted.Shifted``)."""

    item_bytes: int

    def forward(self, chunk: tuple[int, int], x: Array, y: Array) -> None: ...

    def prepare_backward(self, need_dx: bool) -> None: ...

    def backward(
        self, chunk: tuple[int, int], dy: Array, dx: Array | None
    ) -> tuple[Array, Array]: ...

    def kernel_grad(self, dw: Array) -> Array: ...


@attrs.frozen(eq=False)
class Conv2D(Layer):
    """2-D convolution layer (cross-correlation) with optional bias.

    ``y[n, p, q, o] = b[o] + Σ_{i,j,c} xp[n, p·sh + i·dh, q·sw + j·dw, c] · w[i, j, c, o]``
    where ``xp`` is ``x`` zero-padded; computed as one matrix product of the
    im2col matrix with the kernel, or with stride 1 by shifted products or
    (3x3 kernels) Winograd F(2x2, 3x3) where that is faster (the same values
    up to float rounding). The backward pass (derived in the module
    docstring) is dL/dW = Xᵀ·δ, dL/db = Σ δ, dL/dx = col2im(δ·Wᵀ).

    Output size per spatial axis: ``floor((n + pad_before + pad_after − k_eff) / stride) + 1``
    with ``k_eff = (k − 1)·dilation + 1``; ``"same"`` padding gives ``ceil(n / stride)``.

    Args:
        filters: ``c_out``, the number of output channels.
        kernel_size: ``k`` or ``(kh, kw)``.
        strides: ``s`` or ``(sh, sw)`` (default 1).
        padding: ``"valid"`` (default, no padding), ``"same"`` (TensorFlow
            rule, extra cell at the bottom/right), an int ``p``, ``(ph, pw)``, or
            ``((top, bottom), (left, right))``.
        dilation: ``d`` or ``(dh, dw)`` (default 1): gaps between kernel taps.
        use_bias: add the bias ``b`` (default ``True``).
        w_init: initialiser (or its name) for the kernel ``w`` of shape
            ``(kh, kw, c_in, c_out)``; fans are ``kh·kw·c_in`` and
            ``kh·kw·c_out`` (see ``fnn.layers.initializers``). Glorot uniform by
            default; ``"he_normal"`` suits ReLU networks.
        b_init: initialiser (or its name) for ``b`` of shape ``(c_out,)``; zeros by default.

    Raises:
        ValueError: non-positive sizes, unknown padding, an input that is not
            ``(batch, height, width, channels)``, a kernel larger than the
            padded input, or a channel count other than the one built for
            (with a hint when ``x`` looks like ``(batch, channels, height, width)``).
        TypeError: ``x`` is not a floating array of the parameters' dtype.

    Example:
        >>> import numpy as np
        >>> layer, out_shape = Conv2D(8, 3, padding="same").init(0, (28, 28, 1), np.float32)
        >>> out_shape, layer.w.shape, layer.forward(np.zeros((2, 28, 28, 1), np.float32)).shape
        ((28, 28, 8), (3, 3, 1, 8), (2, 28, 28, 8))
    """

    per_example: ClassVar[bool] = True  # each example its own: may run in parts

    filters: int = attrs.field(validator=positive_int)
    kernel_size: tuple[int, int] = attrs.field(converter=ops.to_pair, validator=ops.check_pair)
    strides: tuple[int, int] = attrs.field(
        default=(1, 1), kw_only=True, converter=ops.to_pair, validator=ops.check_pair
    )
    padding: str | ops.Pads = attrs.field(
        default="valid", kw_only=True, converter=ops.to_padding, validator=ops.check_padding
    )
    dilation: tuple[int, int] = attrs.field(
        default=(1, 1), kw_only=True, converter=ops.to_pair, validator=ops.check_pair
    )
    use_bias: bool = attrs.field(default=True, kw_only=True)
    w_init: initializers.Initializer = attrs.field(
        default=initializers.glorot_uniform, converter=initializers.resolve, kw_only=True
    )
    b_init: initializers.Initializer = attrs.field(
        default=initializers.zeros, converter=initializers.resolve, kw_only=True
    )
    w: Array | None = param_field()
    b: Array | None = param_field()

    @property
    def name(self) -> str:
        kh, kw = self.kernel_size
        return f"Conv2D(filters={self.filters}, kernel_size=({kh}, {kw}))"

    def _expects(self, field_name: str) -> bool:
        return field_name != "b" or self.use_bias

    def _k_eff(self) -> tuple[int, int]:
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        return (kh - 1) * dh + 1, (kw - 1) * dw + 1

    def _geometry(
        self, hw: tuple[int, int], in_shape: Shape = ()
    ) -> tuple[ops.Pads, tuple[int, int]]:
        """The explicit pads and ``(out_h, out_w)`` for an input of spatial size ``hw``."""
        k_eff = self._k_eff()
        pads = ops.resolve_padding(self.padding, hw, k_eff, self.strides)
        out = tuple(
            ops.out_size(n, k, s, *p)
            for n, k, s, p in zip(hw, k_eff, self.strides, pads, strict=True)
        )
        if min(out) < 1:
            padded = (hw[0] + sum(pads[0]), hw[1] + sum(pads[1]))
            raise ValueError(
                f"{self.name}: the kernel (extent {k_eff[0]}x{k_eff[1]} with dilation "
                f"{self.dilation}) is larger than the padded input {padded[0]}x{padded[1]}; "
                + (
                    channels_first_hint(in_shape)
                    or "use padding='same', a smaller kernel or dilation, or a larger input"
                )
            )
        return pads, (out[0], out[1])

    def output_shape(self, in_shape: Shape) -> Shape:
        h, w, _ = ops.image_shape(self.name, in_shape)
        _, (oh, ow) = self._geometry((h, w), in_shape)
        return (oh, ow, self.filters)

    def init(self, key: KeyLike, in_shape: Shape, dtype: np.dtype) -> tuple[Conv2D, Shape]:
        out_shape = self.output_shape(in_shape)
        kw_key, kb_key = split(key)
        w = self.w_init(kw_key, (*self.kernel_size, in_shape[2], self.filters), dtype)
        b = self.b_init(kb_key, (self.filters,), dtype) if self.use_bias else None
        return attrs.evolve(self, w=w, b=b), out_shape

    def _check(self, x: object) -> Array:
        if self.w is None:
            check_built(self)
        x = check_input(self, x, 4, "(batch, height, width, channels)")
        w = cast(Array, self.w)
        ops.check_channels(self.name, x, w.shape[2])
        check_dtype(self, x, w)
        return x

    def _columns(self, x: Array, pads: ops.Pads, out_hw: tuple[int, int]) -> Array:
        """The im2col matrix of (a chunk of) a checked batch, with a ones column for the bias.

        For a 1x1 kernel it is a view of ``x`` itself (no copy, no ones column).
        """
        if self.kernel_size == (1, 1) and self.strides == (1, 1) and pads == ((0, 0), (0, 0)):
            return ops.rows(x)  # every pixel is its own receptive field
        xp = ops.pad(x, pads)
        geometry = (self.kernel_size, self.strides, self.dilation, out_hw)
        return ops.im2col(xp, *geometry, ones=self.b is not None)

    def _forward(self, x: Array) -> tuple[Array, list[tuple[tuple[int, int], Array]], ops.Pads]:
        """``(y, [(chunk, its im2col matrix), ...], pads)``: Y = X·W + b, one chunk per thread."""
        pads, out_hw = self._geometry((x.shape[1], x.shape[2]))
        w = cast(Array, self.w).reshape(-1, self.filters)
        w_ones = w if self.b is None else np.concatenate([w, self.b[None]])  # [W; b]
        rows = out_hw[0] * out_hw[1]
        y = ops.empty((x.shape[0] * rows, self.filters), x.dtype)

        def run(chunk: tuple[int, int]) -> Array:
            cols = self._columns(x[chunk[0] : chunk[1]], pads, out_hw)
            out = y[chunk[0] * rows : chunk[1] * rows]
            if cols.shape[1] == w.shape[0] + 1:
                ops.matmul(cols, w_ones, out=out)  # [X 1]·[W; b]
            else:
                ops.matmul(cols, w, out=out)
                if self.b is not None:
                    out += self.b  # a slice of y, which was just allocated
            return cols

        k = w.shape[0] + (self.b is not None)
        chunks = parallel.split(x.shape[0], item_bytes=rows * k * x.dtype.itemsize)
        parts = list(zip(chunks, parallel.map(run, chunks), strict=True))
        return y.reshape(x.shape[0], *out_hw, self.filters), parts, pads

    def _input_grad_weights(self, w: Array, pads: ops.Pads) -> tuple[bool, Array]:
        """``(transposed, weights)``: how :meth:`_input_grad` computes dL/dx, and its matrix.

        Made contiguous once per pullback: a strided kernel costs a copy in every
        chunk's product (measured 0.75 vs 0.54 ms per 3872-row chunk, 16 -> 32).
        """
        k_eff = self._k_eff()
        back = [k - 1 - p for k, pair in zip(k_eff, pads, strict=True) for p in pair]
        c_in = w.shape[2]
        if self.strides == (1, 1) and min(back) >= 0 and self.filters <= c_in:
            # the flipped kernel with its channel axes swapped, (kh·kw·c_out, c_in)
            return True, np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(-1, c_in)
        # W[k]ᵀ per kernel offset k: (kh·kw, c_out, c_in)
        return False, np.ascontiguousarray(w.reshape(-1, c_in, self.filters).transpose(0, 2, 1))

    def _input_grad(self, dy: Array, plan: tuple[bool, Array], pads: ops.Pads, out: Array) -> None:
        """Write dL/dx of a chunk into ``out``: a transposed convolution or col2im of δ·Wᵀ."""
        transposed, weights = plan
        if transposed:
            # dx[n, r, s, c] = Σ δp[n, r + i'·dh, s + j'·dw, o] · w[kh−1−i', kw−1−j', c, o]
            # with δ padded by k_eff − 1 − pad: one im2col and one product. Its im2col
            # holds kh·kw·c_out values per input pixel (col2im's product: kh·kw·c_in per
            # output pixel), so it pays only when c_out <= c_in. Measured (CPU ms, one
            # thread, batch 128, 3x3): 32 -> 32 on 14x14, same: 9.1 vs 10.2 for col2im;
            # 16 -> 32 on 13x13, valid: 4.8 vs 3.5.
            back = [(k - 1 - p[0], k - 1 - p[1]) for k, p in zip(self._k_eff(), pads, strict=True)]
            dyp = ops.pad(dy, (back[0], back[1]))
            cols = ops.im2col(dyp, self.kernel_size, (1, 1), self.dilation, out.shape[1:3])
            ops.matmul(cols, weights, out=out.reshape(cols.shape[0], weights.shape[1]))
            return
        # dcols[k] = δ · W[k]ᵀ for each kernel offset k (one batched product), then
        # scatter-add every window's gradient back onto the cells it read
        delta = dy.reshape(-1, self.filters)
        geometry = (self.kernel_size, self.strides, self.dilation)
        ops.col2im(ops.matmul(delta, weights), dy.shape[1:3], pads, *geometry, out=out)

    def _formulation(self, c_in: int, in_hw: tuple[int, int], pads: ops.Pads) -> str:
        """``"winograd"``, ``"shifted"`` or ``"im2col"``: how to compute this layer.

        Winograd F(2x2, 3x3) applies to 3x3 kernels, stride 1, no dilation;
        shifted products to any stride-1 kernel; im2col to all. With
        ``_FORMULATION == "auto"`` strides other than 1 take im2col and stride 1
        takes what measured fastest on this kind of BLAS kernel
        (`fnn.layers._conv_rule`, ``docs/math/conv.md``).
        """
        if self.strides != (1, 1) or _FORMULATION == "im2col":
            return "im2col"
        if _FORMULATION == "winograd":
            winograd = self.kernel_size == (3, 3) and self.dilation == (1, 1)
            return "winograd" if winograd else "im2col"
        if _FORMULATION == "shifted":
            return "shifted"
        return rule.choose(self.kernel_size, self.dilation, c_in, self.filters, in_hw, pads)

    def _plan(self, x: Array, pads: ops.Pads, keep: bool) -> _Passes | None:
        """The chunked passes of a fast formulation for ``x``, or ``None`` for im2col."""
        hw = (x.shape[1], x.shape[2])
        how = self._formulation(x.shape[3], hw, pads) if len(x) else "im2col"  # (0 images)
        w = cast(Array, self.w)
        if how == "winograd":
            return wg.Winograd(w, self.b, x.shape, pads, keep)
        if how == "shifted":
            return sh.Shifted(w, self.b, x.shape, pads, self.dilation, keep)
        return None

    def _planned_forward(
        self, x: Array, out_hw: tuple[int, int], passes: _Passes
    ) -> tuple[Array, list[tuple[int, int]]]:
        """``(y, chunks)``: the forward pass of ``passes``, per chunk (on threads)."""
        y = ops.empty((x.shape[0], *out_hw, self.filters), x.dtype)
        chunks = parallel.split(x.shape[0], item_bytes=passes.item_bytes)
        parallel.map(lambda c: passes.forward(c, x[c[0] : c[1]], y[c[0] : c[1]]), chunks)
        return y, chunks

    def _planned_vjp(
        self, x: Array, out_hw: tuple[int, int], passes: _Passes, need_dx: bool
    ) -> tuple[Array, Pullback]:
        """vjp by a fast formulation: each pullback is the exact adjoint of its forward."""
        y, chunks = self._planned_forward(x, out_hw, passes)

        def pullback(dy: Array) -> tuple[Conv2D, Array | None]:
            dy = check_cotangent(self, dy, y)
            dx = ops.empty(x.shape, x.dtype) if need_dx else None
            passes.prepare_backward(need_dx)

            def run(chunk: tuple[int, int]) -> tuple[Array, Array]:
                a, b = chunk
                return passes.backward(chunk, dy[a:b], None if dx is None else dx[a:b])

            partials = parallel.map(run, chunks)
            dw, db = partials[0]
            for dw_part, db_part in partials[1:]:  # a fixed order: fixed bits per thread count
                dw, db = dw + dw_part, db + db_part
            grads = {"w": passes.kernel_grad(dw)}
            if self.b is not None:
                grads["b"] = db
            return self.zero_grad_like(**grads), dx

        return y, pullback

    def forward(self, x: Array, *, key: KeyLike | None = None, training: bool = False) -> Array:
        x = self._check(x)
        pads, out_hw = self._geometry((x.shape[1], x.shape[2]))
        passes = self._plan(x, pads, keep=False)
        if passes is not None:
            return self._planned_forward(x, out_hw, passes)[0]
        return self._forward(x)[0]

    def vjp(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback]:
        x = self._check(x)
        pads, out_hw = self._geometry((x.shape[1], x.shape[2]))
        passes = self._plan(x, pads, keep=True)
        if passes is not None:
            return self._planned_vjp(x, out_hw, passes, need_dx)
        y, parts, pads = self._forward(x)
        w = cast(Array, self.w)
        rows, k = y.shape[1] * y.shape[2], w.size // self.filters

        def pullback(dy: Array) -> tuple[Conv2D, Array | None]:
            dy = check_cotangent(self, dy, y)
            delta = dy.reshape(-1, self.filters)
            dx = ops.empty(x.shape, x.dtype) if need_dx else None
            plan = self._input_grad_weights(w, pads) if need_dx else None

            def run(part: tuple[tuple[int, int], Array]) -> tuple[Array, Array | None]:
                (start, stop), cols = part
                d = delta[start * rows : stop * rows]
                if dx is not None and plan is not None:
                    self._input_grad(dy[start:stop], plan, pads, dx[start:stop])
                g = ops.matmul_tn(cols, d)  # [X 1]ᵀ·δ: dL/dW on top of dL/db
                if cols.shape[1] == k + 1:
                    return g[:k], g[k]
                return g, (None if self.b is None else ops.column_sums(d))

            partials = parallel.map(run, parts)
            dw, db = partials[0]
            for dw_part, db_part in partials[1:]:  # a fixed order: fixed bits per thread count
                dw = dw + dw_part
                db = None if db is None else db + db_part
            grads = {"w": dw.reshape(w.shape)}
            if db is not None:
                grads["b"] = db
            return self.zero_grad_like(**grads), dx

        return y, pullback
