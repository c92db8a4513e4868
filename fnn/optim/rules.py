"""Update directions with per-leaf buffers: momentum, Adam, RMSprop, Adagrad.

Each ``scale_by_*`` (and ``trace``) maps a gradient ``g`` to a direction ``u``
and keeps its buffers as trees like the params, zero at start unless noted.
``t`` is the 1-based number of the update, products and powers are elementwise,
and every scalar is cast to the leaf's dtype (a float32 network stays float32).
The optimizers of `fnn.optim.aliases` put a learning rate after them.

Example:
    >>> import numpy as np
    >>> from fnn import optim
    >>> tx = optim.trace(0.5)
    >>> p = [np.zeros(1)]
    >>> u1, s = tx.update([np.ones(1)], tx.init(p), p)
    >>> u2, s = tx.update([np.ones(1)], s, p)
    >>> u1, u2  # b ← 0.5·b + g
    ([array([1.])], [array([1.5])])
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar

import attrs
import numpy as np

from fnn.optim import _checks
from fnn.optim.base import (
    Array,
    Chain,
    EmptyState,
    GradientTransformation,
    State,
    Step,
    as_array,
    count_array,
    frozen_array,
)

__all__ = [
    "RMSprop",
    "ScaleByAdagrad",
    "ScaleByAdagradState",
    "ScaleByAdam",
    "ScaleByAdamState",
    "ScaleByRms",
    "ScaleByRmsState",
    "Sgd",
    "Trace",
    "TraceState",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_rms",
    "trace",
]


def unit(who: str, name: str, value: object) -> float:
    """A number in [0, 1)."""
    return _checks.number(who, name, value, low=0.0, high=1.0, high_open=True)


def positive(who: str, name: str, value: object) -> float:
    return _checks.number(who, name, value, low=0.0, low_open=True)


def non_negative(who: str, name: str, value: object) -> float:
    return _checks.number(who, name, value, low=0.0)


def _bool(who: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{who}: {name} must be a bool, got {type(value).__name__}")
    return value


# attrs converters (named functions, so that type checkers follow them).


def _trace_momentum(v: object) -> float:
    return unit("fnn.optim.trace", "momentum", v)


def _trace_nesterov(v: object) -> bool:
    return _bool("fnn.optim.trace", "nesterov", v)


def _adam_count(v: object) -> Array:
    return count_array("fnn.optim.ScaleByAdamState", v)


def _adam_b1(v: object) -> float:
    return unit("fnn.optim.scale_by_adam", "b1", v)


def _adam_b2(v: object) -> float:
    return unit("fnn.optim.scale_by_adam", "b2", v)


def _adam_eps(v: object) -> float:
    return positive("fnn.optim.scale_by_adam", "eps", v)


def _rms_decay(v: object) -> float:
    return unit("fnn.optim.scale_by_rms", "decay", v)


def _rms_eps(v: object) -> float:
    return positive("fnn.optim.scale_by_rms", "eps", v)


def _adagrad_eps(v: object) -> float:
    return positive("fnn.optim.scale_by_adagrad", "eps", v)


def _adagrad_a0(v: object) -> float:
    return non_negative("fnn.optim.scale_by_adagrad", "initial_accumulator", v)


def _sgd_momentum(v: object) -> float:
    return unit("fnn.optim.sgd", "momentum", v)


def _sgd_nesterov(v: object) -> bool:
    return _bool("fnn.optim.sgd", "nesterov", v)


def _rmsprop_decay(v: object) -> float:
    return unit("fnn.optim.rmsprop", "decay", v)


def _rmsprop_eps(v: object) -> float:
    return positive("fnn.optim.rmsprop", "eps", v)


def _rmsprop_momentum(v: object) -> float:
    return unit("fnn.optim.rmsprop", "momentum", v)


def _zeros(step: Step, params: list[Array], fill: float = 0.0) -> Any:
    return step.build([frozen_array(np.full_like(p, fill)) for p in params])


class _Direction(GradientTransformation):
    """Marks the transformations that give an update direction (``Optimizer.rule``)."""

    direction: ClassVar[bool] = True


@attrs.frozen(eq=False)
class TraceState(State):
    """The momentum buffer of `Trace`, a tree like the params."""

    SLOTS = ("momentum",)

    momentum: Any


@attrs.frozen
class Trace(_Direction):
    """Momentum: ``b ← μ · b + g``, then ``u = b`` (heavy ball) or ``u = g + μ · b`` (Nesterov).

    This is PyTorch's and Optax's form (the learning rate comes after the
    buffer), so a schedule changes the step at once rather than through the buffer.

    Attributes:
        momentum: ``μ`` in [0, 1).
        nesterov: use Nesterov momentum.
    """

    momentum: float = attrs.field(converter=_trace_momentum)
    nesterov: bool = attrs.field(
        default=False, converter=_trace_nesterov
    )

    @property
    def name(self) -> str:
        return "trace"

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        return TraceState(_zeros(step, params))

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        if type(state) is not TraceState:
            raise step.state_error(self.name, TraceState, state)
        bufs = list(step.buffer(self.name, "momentum", state.momentum))
        out = list(updates)
        for i in step.active:
            g = out[i]
            mu = g.dtype.type(self.momentum)
            b = as_array(bufs[i] * mu)
            b += g
            bufs[i] = frozen_array(b)
            if self.nesterov:
                u = as_array(b * mu)
                u += g
                out[i] = step.new(u)
            else:
                out[i] = b  # shared with the state: not fresh, nobody writes into it
        return out, TraceState(step.build(bufs))


def trace(momentum: float, nesterov: bool = False) -> Trace:
    """Momentum (heavy ball or Nesterov); see `Trace`.

    Example:
        >>> trace(0.9, nesterov=True).nesterov
        True
    """
    return Trace(momentum, nesterov)


@attrs.frozen(eq=False)
class ScaleByAdamState(State):
    """`ScaleByAdam`'s update count and first and second moment trees."""

    SLOTS = ("mu", "nu")
    COUNTS = ("count",)

    count: Array = attrs.field(converter=_adam_count)
    mu: Any = None
    nu: Any = None


@attrs.frozen
class ScaleByAdam(_Direction):
    """Adam's direction (Kingma & Ba, 2015)::

        m ← β₁ · m + (1 − β₁) · g
        v ← β₂ · v + (1 − β₂) · g²
        u = m̂ / (√v̂ + ε),   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)

    ``ε`` is added outside the square root, as in the paper, Optax and PyTorch.

    Attributes:
        b1: ``β₁`` in [0, 1).
        b2: ``β₂`` in [0, 1).
        eps: ``ε`` > 0.
    """

    b1: float = attrs.field(default=0.9, converter=_adam_b1)
    b2: float = attrs.field(default=0.999, converter=_adam_b2)
    eps: float = attrs.field(default=1e-8, converter=_adam_eps)

    @property
    def name(self) -> str:
        return "scale_by_adam"

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        return ScaleByAdamState(np.int64(0), _zeros(step, params), _zeros(step, params))

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        if type(state) is not ScaleByAdamState:
            raise step.state_error(self.name, ScaleByAdamState, state)
        ms = list(step.buffer(self.name, "mu", state.mu))
        vs = list(step.buffer(self.name, "nu", state.nu))
        t = int(state.count) + 1
        # m̂ / (√v̂ + ε) = m / (√v + ε·√c₂) · √c₂ / c₁ with c = 1 − βᵗ: fewer passes.
        root_c2 = math.sqrt(1.0 - self.b2**t)
        factor, eps = root_c2 / (1.0 - self.b1**t), self.eps * root_c2
        out = list(updates)
        for i in step.active:
            g, m_old, v_old = out[i], ms[i], vs[i]
            f = g.dtype.type
            m = as_array(g - m_old)
            m *= f(1.0 - self.b1)
            m += m_old
            v = as_array(g * g)
            v -= v_old
            v *= f(1.0 - self.b2)
            v += v_old
            u = as_array(np.sqrt(v))
            u += f(eps)
            np.divide(m, u, out=u)
            u *= f(factor)
            ms[i], vs[i], out[i] = frozen_array(m), frozen_array(v), step.new(u)
        return out, ScaleByAdamState(t, step.build(ms), step.build(vs))


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> ScaleByAdam:
    """Adam's bias-corrected direction ``m̂ / (√v̂ + ε)``; see `ScaleByAdam`.

    Example:
        >>> import numpy as np
        >>> tx = scale_by_adam()
        >>> p = [np.zeros(2)]
        >>> np.round(tx.update([np.array([3.0, -0.5])], tx.init(p), p)[0][0], 6)
        array([ 1., -1.])
    """
    return ScaleByAdam(b1, b2, eps)


@attrs.frozen(eq=False)
class ScaleByRmsState(State):
    """`ScaleByRms`'s running mean of squared gradients, a tree like the params."""

    SLOTS = ("nu",)

    nu: Any


@attrs.frozen
class ScaleByRms(_Direction):
    """RMSprop's direction (Hinton, 2012): ``v ← ρ · v + (1 − ρ) · g²``, ``u = g / (√v + ε)``.

    ``ε`` outside the root as in PyTorch (Optax puts it inside: ``g / √(v + ε)``).

    Attributes:
        decay: ``ρ`` in [0, 1).
        eps: ``ε`` > 0.
    """

    decay: float = attrs.field(default=0.9, converter=_rms_decay)
    eps: float = attrs.field(default=1e-8, converter=_rms_eps)

    @property
    def name(self) -> str:
        return "scale_by_rms"

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        return ScaleByRmsState(_zeros(step, params))

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        if type(state) is not ScaleByRmsState:
            raise step.state_error(self.name, ScaleByRmsState, state)
        vs = list(step.buffer(self.name, "nu", state.nu))
        out = list(updates)
        for i in step.active:
            g, v_old = out[i], vs[i]
            f = g.dtype.type
            v = as_array(g * g)
            v -= v_old
            v *= f(1.0 - self.decay)
            v += v_old
            s = as_array(np.sqrt(v))
            s += f(self.eps)
            np.divide(g, s, out=s)
            vs[i], out[i] = frozen_array(v), step.new(s)
        return out, ScaleByRmsState(step.build(vs))


def scale_by_rms(decay: float = 0.9, eps: float = 1e-8) -> ScaleByRms:
    """RMSprop's direction ``g / (√v + ε)``; see `ScaleByRms`.

    Example:
        >>> import numpy as np
        >>> tx = scale_by_rms(decay=0.75)
        >>> p = [np.zeros(1)]
        >>> np.round(tx.update([np.array([4.0])], tx.init(p), p)[0][0], 6)  # 4 / √(0.25·16)
        array([2.])
    """
    return ScaleByRms(decay, eps)


@attrs.frozen(eq=False)
class ScaleByAdagradState(State):
    """`ScaleByAdagrad`'s running sum of squared gradients, a tree like the params."""

    SLOTS = ("sum_sq",)

    sum_sq: Any


@attrs.frozen
class ScaleByAdagrad(_Direction):
    """Adagrad's direction (Duchi et al., 2011): ``a ← a + g²``, ``u = g / (√a + ε)``.

    Attributes:
        eps: ``ε`` > 0.
        initial_accumulator: ``a₀`` >= 0, the accumulator's starting value.
    """

    eps: float = attrs.field(
        default=1e-10, converter=_adagrad_eps
    )
    initial_accumulator: float = attrs.field(
        default=0.1,
        converter=_adagrad_a0,
    )

    @property
    def name(self) -> str:
        return "scale_by_adagrad"

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        return ScaleByAdagradState(_zeros(step, params, self.initial_accumulator))

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        if type(state) is not ScaleByAdagradState:
            raise step.state_error(self.name, ScaleByAdagradState, state)
        acc = list(step.buffer(self.name, "sum_sq", state.sum_sq))
        out = list(updates)
        for i in step.active:
            g = out[i]
            a = as_array(g * g)
            a += acc[i]
            u = as_array(np.sqrt(a))
            u += g.dtype.type(self.eps)
            np.divide(g, u, out=u)
            acc[i], out[i] = frozen_array(a), step.new(u)
        return out, ScaleByAdagradState(step.build(acc))


def scale_by_adagrad(eps: float = 1e-10, initial_accumulator: float = 0.1) -> ScaleByAdagrad:
    """Adagrad's direction ``g / (√a + ε)``; see `ScaleByAdagrad`.

    Example:
        >>> import numpy as np
        >>> tx = scale_by_adagrad(initial_accumulator=0.0)
        >>> p = [np.zeros(1)]
        >>> np.round(tx.update([np.array([5.0])], tx.init(p), p)[0][0], 6)
        array([1.])
    """
    return ScaleByAdagrad(eps, initial_accumulator)


class _Delegate(_Direction):
    """A named direction made of other transformations (its state is theirs)."""

    @property
    def inner(self) -> GradientTransformation:
        raise NotImplementedError

    def parts(self) -> tuple[Any, ...]:
        return (self.inner,)

    def part_states(self, state: Any) -> tuple[Any, ...]:
        return (state,)

    def with_part_states(self, state: Any, states: Any) -> Any:
        return states[0]

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        return self.inner.init_leaves(step, params)

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        return self.inner.update_leaves(step, updates, state, params)


@attrs.frozen
class _Identity(GradientTransformation):
    """Updates unchanged (plain SGD's direction)."""

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        return EmptyState()

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        if type(state) is not EmptyState:
            raise step.state_error("sgd", EmptyState, state)
        return updates, state


@attrs.frozen
class Sgd(_Delegate):
    """SGD's direction: ``u = g``, or `Trace` momentum when ``momentum > 0``.

    Attributes:
        momentum: ``μ`` in [0, 1); 0 for plain SGD (no buffer).
        nesterov: Nesterov momentum (needs ``momentum > 0``).
    """

    momentum: float = attrs.field(default=0.0, converter=_sgd_momentum)
    nesterov: bool = attrs.field(
        default=False, converter=_sgd_nesterov
    )

    def __attrs_post_init__(self) -> None:
        if self.nesterov and not self.momentum:
            raise ValueError("fnn.optim.sgd: nesterov=True needs momentum > 0, e.g. momentum=0.9")

    @property
    def name(self) -> str:
        return "sgd"

    @property
    def inner(self) -> GradientTransformation:
        return _sgd_inner(self.momentum, self.nesterov)


@attrs.frozen
class RMSprop(_Delegate):
    """RMSprop's direction: `ScaleByRms`, then `Trace` momentum when ``momentum > 0``::

        v ← ρ · v + (1 − ρ) · g²,  s = g / (√v + ε)
        u = s  (μ = 0);   b ← μ · b + s, u = b  (μ > 0)

    Attributes:
        decay: ``ρ`` in [0, 1).
        eps: ``ε`` > 0.
        momentum: ``μ`` in [0, 1).
    """

    decay: float = attrs.field(default=0.9, converter=_rmsprop_decay)
    eps: float = attrs.field(default=1e-8, converter=_rmsprop_eps)
    momentum: float = attrs.field(default=0.0, converter=_rmsprop_momentum)

    @property
    def name(self) -> str:
        return "rmsprop"

    @property
    def inner(self) -> GradientTransformation:
        return _rmsprop_inner(self.decay, self.eps, self.momentum)


# The rules above are rebuilt from their hyper-parameters on every update: cache them.


@functools.lru_cache(maxsize=256)
def _sgd_inner(momentum: float, nesterov: bool) -> GradientTransformation:
    return Trace(momentum, nesterov) if momentum else _Identity()


@functools.lru_cache(maxsize=256)
def _rmsprop_inner(decay: float, eps: float, momentum: float) -> GradientTransformation:
    rms = ScaleByRms(decay, eps)
    return Chain([rms, Trace(momentum)]) if momentum else rms
