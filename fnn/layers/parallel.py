"""Parallel branches merged by concatenation or sum: a container layer (`fnn.layers.containers`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

import attrs
import numpy as np
from typing_extensions import Self

from fnn.layers._base import Array, Layer, Pullback, Shape, check_cotangent
from fnn.layers.containers import ChildFn, Container, Trace, as_layer, dims, unchecked
from fnn.random import KeyLike

__all__ = ["Parallel"]


def _branches_tuple(value: object) -> tuple[Layer, ...]:
    if not isinstance(value, list | tuple):
        raise TypeError(
            f"Parallel: branches must be a list or tuple of layers, got {type(value).__name__}"
        )
    if not value:
        raise ValueError("Parallel: needs at least one branch, got an empty list")
    return tuple(as_layer("Parallel", f"branches[{i}]", b) for i, b in enumerate(value))


def _check_merge(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in ("concat", "sum"):
        raise ValueError(
            f"Parallel: merge must be 'concat' (join the outputs along the last axis) or "
            f"'sum' (add them), got {value!r}"
        )


@attrs.frozen(eq=False, slots=False)
class Parallel(Container):
    """Branches applied to the same input, merged: ``y = merge(b_0(x), …, b_n(x))``.

    ``merge="concat"`` joins the outputs along the last (feature or channel)
    axis, so they must agree on every other axis; ``merge="sum"`` adds them,
    so they must have one shape.

    Backward: dL/dx = Σ_i dL/dx through branch i. With ``"sum"`` every branch
    gets δ = dL/dy itself; with ``"concat"`` branch i gets its own slice of δ
    along the last axis. See the math pages.

    Args:
        branches: a non-empty list of layers (a list inside becomes a `Sequential`).
        merge: ``"concat"`` (default) or ``"sum"``.

    Raises:
        TypeError: a branch is not a layer or a list of layers.
        ValueError: no branches, an unknown ``merge``; at ``init``, branch
            outputs that cannot be concatenated or added (names the shapes).

    Example:
        >>> import numpy as np, fnn
        >>> par = Parallel([fnn.Dense(2), [fnn.Dense(3), fnn.Tanh()]])
        >>> built, out = par.init(0, (4,), np.float64)
        >>> out, built.forward(np.ones((5, 4))).shape
        ((5,), (5, 5))
    """

    branches: tuple[Layer, ...] = attrs.field(converter=_branches_tuple)
    merge: Literal["concat", "sum"] = attrs.field(
        default="concat", kw_only=True, validator=_check_merge
    )

    @property
    def name(self) -> str:
        n = len(self.branches)
        return f"Parallel({n} branch{'es' if n != 1 else ''}, merge={self.merge!r})"

    def _make_sublayers(self) -> tuple[tuple[str, Layer], ...]:
        return tuple((f"branches[{i}]", b) for i, b in enumerate(self.branches))

    def with_sublayers(self, children: Sequence[Layer]) -> Self:
        return cast(Self, unchecked(type(self), branches=tuple(children), merge=self.merge))

    def _merged_shape(self, shapes: Sequence[Shape]) -> Shape:
        listed = ", ".join(f"branches[{i}] {dims(s)}" for i, s in enumerate(shapes))
        if self.merge == "sum":
            if any(s != shapes[0] for s in shapes):
                raise ValueError(
                    f"{self.name}: branch outputs {listed} cannot be added; give every branch "
                    "the same output shape (or use merge='concat')"
                )
            return shapes[0]
        if any(len(s) == 0 or s[:-1] != shapes[0][:-1] for s in shapes):
            raise ValueError(
                f"{self.name}: branch outputs {listed} cannot be concatenated along the last "
                "axis; they must agree on every other axis (same height and width for images)"
            )
        return (*shapes[0][:-1], sum(s[-1] for s in shapes))

    def thread_shapes(self, in_shape: Shape, fn: ChildFn) -> tuple[Self, Shape]:
        new: list[Layer] = []
        shapes: list[Shape] = []
        for i, branch in enumerate(self.branches):
            child, shape = self._run(i, fn, i, branch, in_shape)
            new.append(child)
            shapes.append(shape)
        return self._rebuilt(self.branches, new), self._merged_shape(shapes)

    def _merge(self, ys: list[Array]) -> Array:
        self._merged_shape([y.shape[1:] for y in ys])  # the init-time check, at run time too
        if self.merge == "sum":
            if len(ys) == 1:
                return ys[0]
            out: Array = ys[0] + ys[1]
            for y in ys[2:]:
                out += y  # out was just allocated by the sum above
            return out
        merged: Array = np.concatenate(ys, axis=-1)
        return merged

    def trace(
        self, x: Array, *, key: KeyLike | None = None, training: bool = False
    ) -> tuple[Array, Trace]:
        x, key = self._enter(x, key)
        out: Trace = []
        ys = [self._child_trace(i, x, key, training, out) for i in range(len(self.branches))]
        return self._merge(ys), out

    def vjp_with_state(
        self,
        x: Array,
        *,
        key: KeyLike | None = None,
        training: bool = False,
        need_dx: bool = True,
    ) -> tuple[Array, Pullback, Parallel]:
        x, key = self._enter(x, key)
        runs = [self._child_vjp(i, x, key, training, need_dx) for i in range(len(self.branches))]
        y = self._merge([r[0] for r in runs])
        bounds = np.cumsum([0] + [r[0].shape[-1] for r in runs]).tolist()

        def pullback(dy: Array) -> tuple[Layer, Array | None]:
            dy = check_cotangent(self, dy, y)
            grads: list[Layer] = []
            dx: Array | None = None
            owned = False  # whether dx is an array allocated here (safe to add into)
            for i, (_, pb, _) in enumerate(runs):
                part = dy if self.merge == "sum" else dy[..., bounds[i] : bounds[i + 1]]
                dbranch, dxi = pb(part)
                grads.append(dbranch)
                if not need_dx:
                    continue
                if dx is None:
                    dx = dxi
                elif owned:
                    dx += cast(Array, dxi)
                else:
                    dx, owned = dx + cast(Array, dxi), True
            return self.with_sublayers(grads), dx

        return y, pullback, self._rebuilt(self.branches, [r[2] for r in runs])
