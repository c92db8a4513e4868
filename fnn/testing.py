"""Gradient checks and Hypothesis strategies, public so users can test their own layers.

A check compares an analytic gradient with central finite differences in
float64. For a random cotangent ``dy`` (never all ones: a zero backward pass
must not pass) the scalar ``s(θ) = ⟨f(θ), dy⟩`` has directional derivative
``⟨∂s/∂θ, v⟩`` along a random direction ``v``; the check compares

    analytic = ⟨pullback(dy), v⟩    with    numeric = (s(θ + εv) − s(θ − εv)) / 2ε

for the input and separately for every parameter array, so a wrong gradient
in one place cannot hide behind a right one elsewhere. An entry passes when
``|analytic − numeric| ≤ atol + rtol · max(|analytic|, |numeric|)``.

Example:
    >>> import numpy as np, fnn
    >>> from fnn import testing
    >>> layer, _ = fnn.Dense(3).init(0, (4,), np.float64)
    >>> report = testing.check_layer(layer, np.random.default_rng(0).normal(size=(2, 4)))
    >>> report.ok
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs
import numpy as np

from fnn import _arrays, tree
from fnn.layers._base import Layer, check_pullback
from fnn.losses import Loss
from fnn.network import Network, value_and_grad
from fnn.network import loss as network_loss
from fnn.random import KeyLike, generator

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "GradientCheckError",
    "GradientReport",
    "arrays",
    "batch_sizes",
    "check_layer",
    "check_loss",
    "check_network",
    "check_vjp",
    "dense_layers",
    "elementwise_activations",
    "nested_layers",
    "networks",
    "shapes",
]

Array = np.ndarray

DEFAULT_EPS = 1e-6
DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-8


class GradientCheckError(AssertionError):
    """An analytic gradient disagrees with finite differences; the message is the report."""


@attrs.frozen
class Entry:
    """One comparison: where, the analytic and numeric directional derivatives."""

    where: str
    analytic: float
    numeric: float
    rel_error: float
    ok: bool


@attrs.frozen
class GradientReport:
    """All comparisons of one check. ``ok`` iff every entry passed."""

    who: str
    entries: tuple[Entry, ...]
    rtol: float
    atol: float

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.entries)

    @property
    def worst(self) -> Entry:
        """The entry with the largest relative error."""
        return max(self.entries, key=lambda e: e.rel_error)

    @property
    def max_rel_error(self) -> float:
        return self.worst.rel_error

    def __str__(self) -> str:
        head = (
            f"gradient check of {self.who}: {'ok' if self.ok else 'FAILED'}; worst relative "
            f"error {self.max_rel_error:.3g} at {self.worst.where} "
            f"(rtol={self.rtol:g}, atol={self.atol:g})"
        )
        width = max([28, *(len(e.where) for e in self.entries)])
        rows = [
            f"  {'ok  ' if e.ok else 'FAIL'} {e.where:<{width}} analytic {e.analytic: .10e}  "
            f"numeric {e.numeric: .10e}  rel.err {e.rel_error:.2e}"
            for e in self.entries
        ]
        return "\n".join([head, *rows])


def _entry(where: str, analytic: float, numeric: float, rtol: float, atol: float) -> Entry:
    diff = abs(analytic - numeric)
    scale = max(abs(analytic), abs(numeric))
    rel = diff / max(scale, atol / rtol)
    return Entry(where, analytic, numeric, rel, diff <= atol + rtol * scale)


def _finish(report: GradientReport, raise_on_fail: bool) -> GradientReport:
    if raise_on_fail and not report.ok:
        raise GradientCheckError(str(report))
    return report


def _require_float64(who: str, *arrays: Array) -> None:
    for a in arrays:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{who}: expected NumPy arrays, got {type(a).__name__}")
        if a.dtype != np.float64:
            raise TypeError(
                f"{who}: gradient checks run in float64 (central differences in float32 are "
                f"too noisy); got dtype {a.dtype}; build with dtype=np.float64 and pass "
                "x.astype(np.float64)"
            )


Probe = Callable[[float, Array, str], float]
"""``s(e, v, path)``: the scalar with the array at ``path`` moved by ``e·v``."""


def _directional(s: Probe, v: Array, path: str, eps: float) -> float:
    """Central difference (s(ε) − s(−ε)) / 2ε along direction ``v``."""
    return (s(eps, v, path) - s(-eps, v, path)) / (2 * eps)


def check_vjp(
    f: Callable[[Array], Array],
    vjp: Callable[[Array], tuple[Array, Callable[[Array], Array]]],
    x: Array,
    *,
    seed: int = 0,
    n_directions: int = 2,
    eps: float = DEFAULT_EPS,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    raise_on_fail: bool = True,
    who: str = "vjp",
) -> GradientReport:
    """Check ``vjp(x) = (f(x), pullback)`` with ``pullback(dy) = dL/dx`` for ``L = ⟨f(x), dy⟩``.

    Args:
        f: the forward function of one float64 array.
        vjp: returns ``(y, pullback)``; ``pullback(dy)`` returns ``dx``.
        x: the point to check at (float64).
        seed: seeds the random cotangent and directions.
        n_directions: random directions to try.
        eps, rtol, atol: finite-difference step and tolerances.
        raise_on_fail: raise `GradientCheckError` with the report.

    Returns:
        A `GradientReport`.
    """
    x = _arrays.plain(who, "x", x)
    _require_float64(who, x)
    rng = generator(seed)
    y, pullback = vjp(x)
    dy = rng.standard_normal(np.shape(y))
    dx = pullback(dy)

    def s(e: float, v: Array, _: str) -> float:
        return float(np.vdot(f(x + e * v), dy))

    entries = []
    for d in range(n_directions):
        v = rng.standard_normal(x.shape)
        numeric = _directional(s, v, "x", eps)
        entries.append(_entry(f"x (direction {d})", float(np.vdot(dx, v)), numeric, rtol, atol))
    return _finish(GradientReport(who, tuple(entries), rtol, atol), raise_on_fail)


def _perturb(t: Any, path: str, v: Array, e: float) -> Any:
    return tree.map_with_path(lambda p, a: a + e * v if p == path else a, t)


def _trainable_leaves(t: Any) -> list[tuple[str, Array]]:
    state = tree.state_paths(t)
    return [(p, a) for p, a in tree.leaves_with_path(t) if p not in state]


def check_layer(
    layer: Layer,
    x: Array,
    *,
    key: KeyLike | None = None,
    training: bool = False,
    seed: int = 0,
    n_directions: int = 2,
    eps: float = DEFAULT_EPS,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    raise_on_fail: bool = True,
) -> GradientReport:
    """Check a built layer's pullback for its input and for each trainable parameter array.

    The layer's ``forward`` (with the same ``key`` and ``training``) is the
    function differentiated numerically; ``vjp``'s pullback is the analytic side.
    The cotangent ``dy`` and directions are standard normal from ``seed``.

    Raises:
        TypeError: the layer or ``x`` is not float64; the pullback returned a
            gradient of another class or dtype, or no ``dx``.
        ValueError: the pullback returned a gradient of the wrong shape (the
            message names the parameter, both shapes and, for an extra leading
            axis, the missing sum over the batch).
        GradientCheckError: with ``raise_on_fail``, when any entry fails.
    """
    if not isinstance(layer, Layer):
        raise TypeError(
            f"fnn.testing.check_layer: layer must be a built fnn layer, got {type(layer).__name__}"
        )
    who = layer.name
    x = _arrays.plain(who, "x", x)
    _require_float64(who, x, *tree.leaves(layer))
    rng = generator(seed)
    y, pullback = layer.vjp(x, key=key, training=training)
    dy = rng.standard_normal(y.shape)
    dlayer, dx = pullback(dy)
    check_pullback(layer, dlayer, dx, x, True)  # the gradient's shapes, with the likely cause
    tree.check_same_structure(layer, dlayer)
    dx = cast(Array, dx)

    def s_of(lay: Layer, xx: Array) -> float:
        return float(np.vdot(lay.forward(xx, key=key, training=training), dy))

    def s_x(e: float, v: Array, _: str) -> float:
        return s_of(layer, x + e * v)

    def s_param(e: float, v: Array, path: str) -> float:
        return s_of(_perturb(layer, path, v, e), x)

    entries = []
    for d in range(n_directions):
        v = rng.standard_normal(x.shape)
        numeric = _directional(s_x, v, "x", eps)
        entries.append(_entry(f"x (direction {d})", float(np.vdot(dx, v)), numeric, rtol, atol))
    grads = dict(tree.leaves_with_path(dlayer))
    for path, leaf in _trainable_leaves(layer):
        for d in range(n_directions):
            v = rng.standard_normal(leaf.shape)
            numeric = _directional(s_param, v, path, eps)
            analytic = float(np.vdot(grads[path], v))
            entries.append(_entry(f"{path} (direction {d})", analytic, numeric, rtol, atol))
    return _finish(GradientReport(who, tuple(entries), rtol, atol), raise_on_fail)


def check_loss(
    loss_fn: Loss,
    pred: Array,
    y: Array,
    *,
    seed: int = 0,
    n_directions: int = 3,
    eps: float = DEFAULT_EPS,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    raise_on_fail: bool = True,
) -> GradientReport:
    """Check ``loss_fn.value_and_grad(pred, y)[1]`` against finite differences in ``pred``."""
    if not isinstance(loss_fn, Loss):
        raise TypeError(
            "fnn.testing.check_loss: loss_fn must be an fnn.losses.Loss, "
            f"got {type(loss_fn).__name__}"
        )
    who = loss_fn.name
    pred = _arrays.plain(who, "pred", pred)
    _require_float64(who, pred)
    rng = generator(seed)
    _, dpred = loss_fn.value_and_grad(pred, y)
    if dpred.shape != pred.shape or dpred.dtype != pred.dtype:
        raise GradientCheckError(
            f"{who}: gradient has shape {dpred.shape} and dtype {dpred.dtype}, expected "
            f"{pred.shape} and {pred.dtype}"
        )

    def s(e: float, v: Array, _: str) -> float:
        return loss_fn(pred + e * v, y)

    entries = []
    for d in range(n_directions):
        v = rng.standard_normal(pred.shape)
        numeric = _directional(s, v, "pred", eps)
        entries.append(
            _entry(f"pred (direction {d})", float(np.vdot(dpred, v)), numeric, rtol, atol)
        )
    return _finish(GradientReport(who, tuple(entries), rtol, atol), raise_on_fail)


def check_network(
    net: Network,
    x: Array,
    y: Array,
    loss_fn: Loss,
    *,
    key: KeyLike | None = None,
    training: bool = True,
    seed: int = 0,
    n_directions: int = 1,
    eps: float = DEFAULT_EPS,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    raise_on_fail: bool = True,
) -> GradientReport:
    """Check ``fnn.grad`` of a whole network against finite differences of ``fnn.loss``.

    Each trainable parameter array is perturbed along its own random
    direction(s); the loss is evaluated with the same ``key`` and ``training``.
    """
    who = "network"
    _require_float64(who, *tree.leaves(net))
    rng = generator(seed)
    _, grads = value_and_grad(net, x, y, loss_fn, key=key, training=training)
    gmap = dict(tree.leaves_with_path(grads))

    def s(e: float, v: Array, path: str) -> float:
        return network_loss(_perturb(net, path, v, e), x, y, loss_fn, key=key, training=training)

    entries = []
    for path, leaf in _trainable_leaves(net):
        for d in range(n_directions):
            v = rng.standard_normal(leaf.shape)
            numeric = _directional(s, v, path, eps)
            entries.append(
                _entry(
                    f"{path} (direction {d})", float(np.vdot(gmap[path], v)), numeric, rtol, atol
                )
            )
    return _finish(GradientReport(who, tuple(entries), rtol, atol), raise_on_fail)


# ----------------------------------------------------------------------------
# Hypothesis strategies (hypothesis is imported inside each function: it is a
# test dependency, not a runtime one, so `import fnn.testing` works without it)


def batch_sizes(max_size: int = 5) -> SearchStrategy[int]:
    """Batch sizes from 1 (always worth testing) to ``max_size``."""
    from hypothesis import strategies as st

    return st.integers(1, max_size)


def shapes(
    min_rank: int = 1, max_rank: int = 3, min_side: int = 1, max_side: int = 5
) -> SearchStrategy[tuple[int, ...]]:
    """Array shapes (batch axis included) with the given ranks and side lengths."""
    from hypothesis import strategies as st

    return st.lists(st.integers(min_side, max_side), min_size=min_rank, max_size=max_rank).map(
        tuple
    )


def arrays(
    shape: tuple[int, ...] | SearchStrategy[tuple[int, ...]],
    *,
    low: float = -3.0,
    high: float = 3.0,
    away_from: Sequence[float] = (),
    margin: float = 1e-3,
) -> SearchStrategy[Array]:
    """float64 arrays with elements in ``[low, high]``, each at least ``margin`` from
    every point in ``away_from`` (e.g. ``(0.0,)`` keeps ReLU inputs off its kink, where
    finite differences are meaningless)."""
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    def keep(v: float) -> bool:
        return all(abs(v - a) >= margin for a in away_from)

    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, width=64).filter(keep)
    return hnp.arrays(np.float64, shape, elements=elements)


def elementwise_activations() -> SearchStrategy[Layer]:
    """Every built-in parameter-free activation with generated hyper-parameters."""
    from hypothesis import strategies as st

    from fnn.layers import activations as act

    return st.one_of(
        st.just(act.ReLU()),
        st.just(act.Tanh()),
        st.just(act.Sigmoid()),
        st.just(act.GELU()),
        st.just(act.Identity()),
        st.floats(0.0, 0.5).map(lambda s: act.LeakyReLU(s)),
        st.floats(0.1, 2.0).map(lambda a: act.ELU(a)),
    )


def dense_layers(max_units: int = 6) -> SearchStrategy[Layer]:
    """Unbuilt Dense layers with and without bias."""
    from hypothesis import strategies as st

    from fnn.layers.dense import Dense

    return st.builds(Dense, st.integers(1, max_units), use_bias=st.booleans())


def networks(
    max_layers: int = 4, max_width: int = 6, max_input: int = 5
) -> SearchStrategy[Network]:
    """Built float64 MLPs: Dense layers interleaved with smooth activations.

    Activations are infinitely differentiable (tanh, sigmoid, GELU) so that
    central differences are accurate at every point: ELU, for one, has a jump in
    its second derivative at 0, where a central difference is off by O(ε).
    """
    from hypothesis import strategies as st

    from fnn.layers import activations as act
    from fnn.layers.dense import Dense
    from fnn.network import init

    smooth = st.sampled_from([act.Tanh(), act.Sigmoid(), act.GELU()])

    @st.composite
    def build(draw: Any) -> Network:
        n = draw(st.integers(1, max_layers))
        layers: list[Layer] = []
        for i in range(n):
            layers.append(Dense(draw(st.integers(1, max_width)), use_bias=draw(st.booleans())))
            if i < n - 1 or draw(st.booleans()):
                layers.append(draw(smooth))
        d_in = draw(st.integers(1, max_input))
        return init(layers, (d_in,), key=draw(st.integers(0, 2**31 - 1)), dtype=np.float64)

    return build()


def nested_layers(
    max_depth: int = 3, max_children: int = 3, max_side: int = 4
) -> SearchStrategy[tuple[Layer, tuple[int, ...]]]:
    """Unbuilt layers nested in containers, with the input shape (no batch) they take.

    Each draw is ``(layer, in_shape)``: a `fnn.Sequential`, `fnn.Residual`,
    `fnn.Parallel` (both merges) or plain layer, with containers nested up to
    ``max_depth`` deep. Vector inputs ``(d,)`` meet Dense, LayerNorm,
    BatchNorm and smooth activations; image inputs ``(height, width,
    channels)`` meet Conv2D (``"same"`` padding), LayerNorm, BatchNorm, smooth
    activations and Flatten (after which vector layers follow; not inside a
    Parallel, whose branches keep the input's rank, height and width). A
    Residual whose body changes the shape gets a projection shortcut
    (sometimes one is drawn anyway); a branch of a ``merge="sum"`` Parallel
    gets a projection where its output would not add. The nesting never
    exceeds ``max_depth`` container levels. Activations are smooth (tanh, sigmoid,
    GELU) so central differences are accurate everywhere. Every feature,
    channel and unit count is at least 2, and LayerNorm only normalises 3 or
    more features: normalising fewer values (or the outputs of a width-1
    layer) makes the map almost invariant to its input, a point where the
    gradient is of the order of ``eps`` and central differences cannot check
    it. BatchNorm in training mode needs a batch of at least 2 (take 3 or
    more: over 2 examples it gives exactly ±1, and a LayerNorm after it may
    see a constant row).

    Example:
        >>> import numpy as np, fnn
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5, database=None)
        ... @given(nested_layers(max_depth=2))
        ... def test(case):
        ...     layer, in_shape = case
        ...     built, out = layer.init(0, in_shape, np.float64)
        ...     assert built.forward(np.ones((2, *in_shape))).shape == (2, *out)
        >>> test()
    """
    from hypothesis import strategies as st

    from fnn.layers import (
        GELU,
        BatchNorm,
        Conv2D,
        Dense,
        Flatten,
        LayerNorm,
        Parallel,
        Residual,
        Sequential,
        Sigmoid,
        Tanh,
    )

    Shape = tuple[int, ...]
    units = st.integers(2, max(2, max_side))

    def leaf(draw: Any, shape: Shape, shifted: bool, allow_flatten: bool) -> Layer:
        # No BatchNorm where its input is shifted (or scaled) per channel by a parameter
        # (a bias, a norm's beta or gamma) with nothing but a Flatten or a sum in between:
        # the norm would be invariant to that parameter, whose gradient is then 0 up to
        # rounding, and rounding in the central difference could exceed the tolerance.
        options = ["act", "dense" if len(shape) == 1 else "conv"]
        if not shifted:
            options.append("batchnorm")
        if shape[-1] >= 3:
            options.append("norm")
        if len(shape) == 3 and allow_flatten:
            options.append("flatten")
        kind = draw(st.sampled_from(options))
        if kind == "dense":
            return Dense(draw(units), use_bias=draw(st.booleans()))
        if kind == "conv":
            return Conv2D(
                draw(units), draw(st.integers(1, 3)), padding="same", use_bias=draw(st.booleans())
            )
        if kind == "norm":
            return LayerNorm()
        if kind == "batchnorm":
            return BatchNorm(momentum=draw(st.sampled_from([0.0, 0.5, 0.9])))
        if kind == "flatten":
            return Flatten()
        return draw(st.sampled_from([Tanh(), Sigmoid(), GELU()]))  # type: ignore[no-any-return]

    def shifts(layer: Layer, shifted: bool) -> bool:
        """Whether ``layer``'s output is shifted per channel by a parameter (see `leaf`)."""
        if isinstance(layer, LayerNorm | BatchNorm):
            return True
        if isinstance(layer, Dense | Conv2D):
            return layer.use_bias
        return shifted and isinstance(layer, Flatten)

    def projection(draw: Any, shape: Shape, target: Shape) -> Layer:
        """A layer mapping ``shape`` to ``target`` (same height and width for images)."""
        if len(target) == 3:
            return Conv2D(target[-1], 1, use_bias=False)
        if len(shape) == 3:
            if target[0] == math.prod(shape):
                return Flatten()
            return Sequential([Flatten(), Dense(target[0], use_bias=False)])
        return Dense(target[0], use_bias=False)

    Node = tuple[Layer, Shape, bool]  # the layer, its output shape, "output shifted" (`leaf`)

    def levels(layer: Layer) -> int:
        """How many container levels ``layer`` holds (0 for a plain layer)."""
        kids = [c for _, c in layer.sublayers()]
        return 1 + max(levels(c) for c in kids) if kids else 0

    def node(draw: Any, shape: Shape, depth: int, shifted: bool, flatten: bool) -> Node:
        # ``depth``: how many container levels may still nest here (``max_depth`` in all).
        # ``flatten``: whether a Flatten may be drawn; not below a Parallel, whose branches
        # then all keep the input's rank (and, with "same" padding, its height and width).
        kinds = ["leaf"] + (["sequential", "residual", "parallel"] if depth > 0 else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "leaf":
            layer = leaf(draw, shape, shifted, flatten)
            return layer, layer.output_shape(shape), shifts(layer, shifted)
        if kind == "sequential":
            layers, out, flag = [], shape, shifted
            for _ in range(draw(st.integers(1, max_children))):
                child, out, flag = node(draw, out, depth - 1, flag, flatten)
                layers.append(child)
            return Sequential(layers), out, flag
        if kind == "residual":
            body, out, flag = node(draw, shape, depth - 1, shifted, flatten)
            if out == shape and draw(st.booleans()):
                return Residual(body), out, flag or shifted
            # A Sequential projection (Flatten, Dense) is needed only when the body flattens,
            # which at depth 1 (a plain body) means the body is a Flatten: then so is this.
            return Residual(body, shortcut=projection(draw, shape, out)), out, flag
        merge = draw(st.sampled_from(["concat", "sum"]))
        n = draw(st.integers(1, max_children))
        branches = [node(draw, shape, depth - 1, shifted, False) for _ in range(n)]
        target = branches[0][1]

        def fit(b: Layer, out: Shape, f: bool) -> Node:
            """Branch ``b`` made to give ``target`` (for merge="sum") within the depth."""
            if out == target:
                return b, out, f
            proj = projection(draw, out, target)
            if isinstance(b, Sequential):
                return Sequential([*b.layers, proj]), target, False
            if levels(b) + 1 <= depth - 1:
                return Sequential([b, proj]), target, False
            return projection(draw, shape, target), target, False  # one layer: no new level

        if merge == "sum":
            branches = [fit(*branch) for branch in branches]
        layer = Parallel([b for b, _, _ in branches], merge=merge)
        return layer, layer.output_shape(shape), any(f for _, _, f in branches)

    @st.composite
    def build(draw: Any) -> tuple[Layer, Shape]:
        side = st.integers(1, max_side)
        if draw(st.booleans()):
            shape: Shape = (draw(side), draw(side), draw(st.integers(2, 3)))
        else:
            shape = (draw(units),)
        return node(draw, shape, max_depth, False, True)[0], shape

    return build()
