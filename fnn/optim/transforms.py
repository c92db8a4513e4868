"""Stateless and simple gradient transformations: scaling, learning rates, clipping, decay.

Each acts on the trainable leaves only (see `fnn.optim.base`); ``u`` is the
incoming update, ``θ`` the parameter, products are elementwise, and every
scalar is cast to the leaf's dtype (float32 stays float32).

Example:
    >>> import numpy as np
    >>> from fnn import optim
    >>> tx = optim.chain(optim.clip_by_global_norm(1.0), optim.scale_by_learning_rate(0.1))
    >>> p = [np.zeros(2)]
    >>> tx.update([np.array([3.0, 4.0])], tx.init(p), p)[0]
    [array([-0.06, -0.08])]
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
import numpy as np

from fnn import _arrays
from fnn.optim import _checks
from fnn.optim.base import (
    Array,
    EmptyState,
    GradientTransformation,
    State,
    Step,
    checked_state,
    count_array,
    next_count,
)
from fnn.optim.masks import check_mask, resolve
from fnn.optim.schedules import Constant, Schedule, as_schedule

__all__ = [
    "AddDecayedWeights",
    "Clip",
    "ClipByGlobalNorm",
    "Scale",
    "ScaleByLearningRate",
    "ScheduleState",
    "add_decayed_weights",
    "clip",
    "clip_by_global_norm",
    "scale",
    "scale_by_learning_rate",
]


def _empty(step: Step, name: str, state: object) -> None:
    if type(state) is not EmptyState:
        raise step.state_error(name, EmptyState, state)


def _factor(v: object) -> float:
    return _checks.number("fnn.optim.scale", "factor", v)


@attrs.frozen
class Scale(GradientTransformation):
    """``u ← s · u``.

    Attributes:
        factor: ``s``, a finite number.
    """

    factor: float = attrs.field(converter=_factor)

    @property
    def name(self) -> str:
        return "scale"

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        return EmptyState()

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        _empty(step, self.name, state)
        out = list(updates)
        step.scale(out, self.factor)
        return out, state


def scale(factor: float) -> Scale:
    """Multiply every update by ``factor``.

    Example:
        >>> import numpy as np
        >>> p = [np.ones(1)]
        >>> scale(-2.0).update([np.ones(1)], scale(-2.0).init(p), p)[0]
        [array([-2.])]
    """
    return Scale(factor)


def _schedule_count(v: object) -> Array:
    return count_array("fnn.optim.ScheduleState", v)


@attrs.frozen(eq=False)
class ScheduleState(State):
    """The number of updates a `ScaleByLearningRate` has made (the schedule's step)."""

    COUNTS = ("count",)

    count: Array = attrs.field(converter=_schedule_count)


def _schedule(v: object) -> Schedule:
    return as_schedule("fnn.optim.scale_by_learning_rate", v)


def checked_rate(who: str, schedule: Schedule, t: int) -> float:
    """``schedule(t)``, which must be a finite number >= 0 (``who`` is used only in errors)."""
    value = schedule(t)
    if type(value) is float and value >= 0.0 and value != math.inf:  # the common case, fast
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(
            f"{who}: the lr schedule returned {type(value).__name__} at step {t}; "
            "a schedule must return a float"
        )
    if not math.isfinite(_arrays.real(value)) or value < 0:
        raise ValueError(
            f"{who}: the lr schedule returned {_arrays.short(value)} at step {t}; "
            "a learning rate must be finite and >= 0"
        )
    return float(value)


@attrs.frozen
class ScaleByLearningRate(GradientTransformation):
    """``u ← −lr_t · u`` with ``lr_t = lr(t)``, ``t`` the updates made before.

    The sign makes the result a descent step to add to the params.

    Attributes:
        lr: a schedule ``step -> lr`` (a number becomes ``constant(lr)``).
    """

    lr: Schedule = attrs.field(converter=_schedule)
    is_learning_rate: ClassVar[bool] = True

    @property
    def name(self) -> str:
        return "scale_by_learning_rate"

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        return ScheduleState(np.int64(0))

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        if type(state) is not ScheduleState:
            raise step.state_error(self.name, ScheduleState, state)
        if type(self.lr) is Constant:  # checked when built: no call, no check per step
            lr = self.lr.lr
        else:
            lr = checked_rate(f"{step.who}: {self.name}", self.lr, int(state.count))
        out = list(updates)
        step.scale(out, -lr)
        return out, checked_state(ScheduleState, count=next_count(state.count))

    def lr_factor(self, state: Any) -> float | None:
        return checked_rate(f"fnn.optim.{self.name}", self.lr, int(state.count))


def scale_by_learning_rate(lr: Any) -> ScaleByLearningRate:
    """Multiply by ``−lr_t``: the last link of an optimizer's chain.

    Args:
        lr: a float > 0 or a schedule ``step -> lr`` (``fnn.optim.cosine_decay``, ...).

    Raises:
        TypeError: ``lr`` is neither a number nor a schedule.
        ValueError: a number that is not finite and > 0.

    Example:
        >>> import numpy as np
        >>> tx = scale_by_learning_rate(0.5)
        >>> p = [np.zeros(1)]
        >>> tx.update([np.ones(1)], tx.init(p), p)[0]
        [array([-0.5])]
    """
    return ScaleByLearningRate(lr)


def _max_norm(v: object) -> float:
    return _checks.number("fnn.optim.clip_by_global_norm", "max_norm", v, low=0.0, low_open=True)


@attrs.frozen
class ClipByGlobalNorm(GradientTransformation):
    """Rescale all updates together so that their global norm is at most ``max_norm``.

    ``‖u‖ = sqrt(Σ_leaves Σ u²)`` over the trainable leaves; if ``‖u‖ > max_norm``
    every leaf becomes ``u · max_norm / ‖u‖``, else the updates pass unchanged.
    The direction is kept; only the step length is bounded (Pascanu et al., 2013).

    Attributes:
        max_norm: the largest allowed global norm, a finite number > 0.
    """

    max_norm: float = attrs.field(converter=_max_norm)

    @property
    def name(self) -> str:
        return "clip_by_global_norm"

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        return EmptyState()

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        _empty(step, self.name, state)
        total = math.sqrt(sum(float(np.vdot(updates[i], updates[i])) for i in step.active))
        if not total > self.max_norm:  # also passes NaN through unchanged
            return updates, state
        out = list(updates)
        step.scale(out, self.max_norm / total)
        return out, state


def clip_by_global_norm(max_norm: float) -> ClipByGlobalNorm:
    """Clip the updates' global norm to ``max_norm``; put it first in a chain.

    Example:
        >>> import numpy as np
        >>> tx = clip_by_global_norm(1.0)
        >>> p = [np.zeros(2)]
        >>> tx.update([np.array([3.0, 4.0])], tx.init(p), p)[0]
        [array([0.6, 0.8])]
    """
    return ClipByGlobalNorm(max_norm)


def _max_delta(v: object) -> float:
    return _checks.number("fnn.optim.clip", "max_delta", v, low=0.0, low_open=True)


@attrs.frozen
class Clip(GradientTransformation):
    """Clip every update entry to ``[−max_delta, max_delta]``.

    Attributes:
        max_delta: a finite number > 0.
    """

    max_delta: float = attrs.field(converter=_max_delta)

    @property
    def name(self) -> str:
        return "clip"

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        return EmptyState()

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        _empty(step, self.name, state)
        out = list(updates)
        for i in step.active:
            u = out[i]
            d = u.dtype.type(self.max_delta)
            if step.owns(u):
                np.clip(u, -d, d, out=u)
            else:
                out[i] = step.new(np.clip(u, -d, d, out=np.empty_like(u)))
        return out, state


def clip(max_delta: float) -> Clip:
    """Clip each update entry to ``[−max_delta, max_delta]``.

    Example:
        >>> import numpy as np
        >>> p = [np.zeros(3)]
        >>> clip(1.0).update([np.array([-3.0, 0.5, 2.0])], clip(1.0).init(p), p)[0]
        [array([-1. ,  0.5,  1. ])]
    """
    return Clip(max_delta)


def _weight_decay(v: object) -> float:
    return _checks.number("fnn.optim.add_decayed_weights", "weight_decay", v, low=0.0)


def _decay_mask(v: object) -> Any:
    return None if v is None else check_mask("fnn.optim.add_decayed_weights", v)


@attrs.frozen(eq=False)
class AddDecayedWeights(GradientTransformation):
    """``u ← u + λ · θ`` on the leaves selected by ``mask`` (all when ``None``).

    Before ``scale_by_adam`` it is coupled L2 regularisation (the gradient of
    ``(λ/2)·‖θ‖²``, rescaled by Adam); after it and before the learning rate it
    is AdamW's decoupled weight decay.

    Attributes:
        weight_decay: ``λ`` >= 0.
        mask: which leaves to decay (see ``fnn.optim.masked``), ``None`` for all.
    """

    weight_decay: float = attrs.field(converter=_weight_decay)
    mask: Any = attrs.field(default=None, converter=_decay_mask)

    @property
    def name(self) -> str:
        return "add_decayed_weights"

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        if self.mask is not None:
            resolve(step, self.name, self.mask)
        return EmptyState()

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        _empty(step, self.name, state)
        params = step.needs_params(self.name, params)
        if not self.weight_decay:
            return updates, state
        sel = None if self.mask is None else resolve(step, self.name, self.mask)
        out = list(updates)
        for i in step.active:
            if sel is not None and not sel[i]:
                continue
            u, p = out[i], params[i]
            decay = p * p.dtype.type(self.weight_decay)
            if step.owns(u):
                u += decay
            else:
                decay += u
                out[i] = step.new(np.asarray(decay))
        return out, state


def add_decayed_weights(weight_decay: float, mask: Any = None) -> AddDecayedWeights:
    """Add ``λ · θ`` to the updates (weight decay), on the leaves ``mask`` selects.

    "No decay on biases and norm scales" is ``mask=lambda p: p.endswith(".w")``.

    Example:
        >>> import numpy as np
        >>> tx = add_decayed_weights(0.5)
        >>> p = [np.array([2.0])]
        >>> tx.update([np.array([1.0])], tx.init(p), p)[0]
        [array([2.])]
    """
    return AddDecayedWeights(weight_decay, mask)
