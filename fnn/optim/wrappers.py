"""Transformations around a training run: gradient accumulation, weight averages, plateaus.

- `multi_steps` accumulates ``k`` gradients and applies an inner transformation
  to their mean once every ``k`` calls (a large batch in small pieces);
- `ema` keeps an exponential moving average of the parameters for evaluation;
- `reduce_on_plateau` scales the updates down when a validation metric stops
  improving (``fnn.fit`` feeds it the epoch's metrics through ``fnn.optim.observe``).

Example:
    >>> import numpy as np
    >>> from fnn import optim
    >>> opt = optim.multi_steps(optim.sgd(1.0), 2)
    >>> p = {"w": np.zeros(1)}
    >>> s = opt.init(p)
    >>> p1, s = opt.update({"w": np.array([1.0])}, s, p)   # accumulated, params unchanged
    >>> p2, s = opt.update({"w": np.array([3.0])}, s, p1)  # one step with the mean, 2
    >>> p1["w"], p2["w"]
    (array([0.]), array([-2.]))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from fnn import _arrays
from fnn.optim import _checks
from fnn.optim.base import (
    Array,
    GradientTransformation,
    State,
    Step,
    as_array,
    as_transformation,
    count_array,
    frozen_array,
)
from fnn.optim.optimizer import lift, walk_states

__all__ = [
    "Ema",
    "EmaState",
    "MultiSteps",
    "MultiStepsState",
    "ReduceOnPlateau",
    "ReduceOnPlateauState",
    "ema",
    "ema_params",
    "multi_steps",
    "reduce_on_plateau",
]


def _negative_zeros(a: Array) -> Array:
    return np.full(a.shape, -0.0, a.dtype)


def _mini_step(v: object) -> Array:
    return count_array("fnn.optim.MultiStepsState", v)


def _multi_inner(v: object) -> GradientTransformation:
    return as_transformation("fnn.optim.multi_steps", v)


def _plateau_count(v: object) -> Array:
    return count_array("fnn.optim.ReduceOnPlateauState", v)


@attrs.frozen(eq=False)
class MultiStepsState(State):
    """`MultiSteps`'s position in the cycle, the gradient sum so far, and the inner state."""

    SLOTS = ("acc",)
    SUBSTATES = ("inner",)

    mini_step: Array = attrs.field(converter=_mini_step)
    acc: Any = None
    inner: Any = None


def _every_k(v: object) -> int:
    return _checks.count("fnn.optim.multi_steps", "every_k", v, minimum=1)


@attrs.frozen(eq=False)
class MultiSteps(GradientTransformation):
    """Gradient accumulation: ``inner`` applied to the mean of every ``k`` gradients.

    Calls ``1 … k−1`` of each cycle add ``g`` to a sum and return the update
    ``-0.0`` (the params do not move); call ``k`` applies ``inner`` to
    ``ḡ = (g₁ + … + g_k) / k`` and resets the sum. With mean losses, ``k``
    micro-batches of size ``b`` then give the step of one batch of ``k·b``
    (to round-off), for any ``inner``; its counts (Adam's bias correction, the
    schedule) advance once per cycle.

    Attributes:
        inner: the transformation applied once per cycle.
        every_k: ``k >= 1``.
    """

    inner: GradientTransformation = attrs.field(
        converter=_multi_inner
    )
    every_k: int = attrs.field(converter=_every_k)

    @property
    def name(self) -> str:
        return "multi_steps"

    def parts(self) -> tuple[Any, ...]:
        return (self.inner,)

    def part_states(self, state: Any) -> tuple[Any, ...]:
        return (state.inner,)

    def with_part_states(self, state: Any, states: Any) -> Any:
        return attrs.evolve(state, inner=states[0])

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        acc = step.build([frozen_array(np.zeros_like(p)) for p in params])
        return MultiStepsState(np.int64(0), acc, self.inner.init_leaves(step, params))

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        if type(state) is not MultiStepsState:
            raise step.state_error(self.name, MultiStepsState, state)
        acc = list(step.buffer(self.name, "acc", state.acc))
        mini = int(state.mini_step)
        for i in step.active:
            acc[i] = as_array(acc[i] + updates[i])
        if mini + 1 < self.every_k:
            out = list(updates)
            for i in step.active:
                acc[i] = frozen_array(acc[i])
                out[i] = step.new(_negative_zeros(out[i]))
            return out, MultiStepsState(mini + 1, step.build(acc), state.inner)
        mean = list(updates)
        for i in step.active:
            m = acc[i]
            m /= m.dtype.type(self.every_k)
            mean[i] = step.new(m)
            acc[i] = frozen_array(np.zeros_like(m))
        out, inner = self.inner.update_leaves(step, mean, state.inner, params)
        return out, MultiStepsState(0, step.build(acc), inner)


def multi_steps(inner: Any, every_k: int) -> Any:
    """Accumulate ``every_k`` gradients, then apply ``inner`` to their mean; see `MultiSteps`.

    Args:
        inner: a transformation or an `Optimizer` (the result is then one too).
        every_k: micro-batches per step, ``>= 1``.

    Returns:
        A `MultiSteps` transformation, or an Optimizer when ``inner`` is one.

    Raises:
        TypeError: ``inner`` is not a transformation, or ``every_k`` not an int.
        ValueError: ``every_k < 1``.

    Example:
        >>> from fnn import optim
        >>> multi_steps(optim.adam(1e-3), 4).name
        'adam'
    """
    return lift([inner], MultiSteps(inner, every_k))


@attrs.frozen(eq=False)
class EmaState(State):
    """`Ema`'s moving average of the parameters, a tree like the params."""

    SLOTS = ("ema",)

    ema: Any


def _decay(v: object) -> float:
    return _checks.number("fnn.optim.ema", "decay", v, low=0.0, high=1.0, high_open=True)


@attrs.frozen
class Ema(GradientTransformation):
    """An exponential moving average of the parameters, kept for evaluation.

    The updates pass unchanged; with ``θ' = θ + u`` the parameters after this
    update, ``ē ← δ · ē + (1 − δ) · θ'`` from ``ē = θ`` at ``init``. Leaves the
    chain does not train (state, frozen) are copied from the params, so
    ``fnn.optim.ema_params(state)`` is a whole network to evaluate. Put it last
    in a chain, after the learning rate.

    Attributes:
        decay: ``δ`` in [0, 1), e.g. 0.999.
    """

    decay: float = attrs.field(converter=_decay)

    @property
    def name(self) -> str:
        return "ema"

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        return EmaState(step.build([_own_copy(p) for p in params]))

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        if type(state) is not EmaState:
            raise step.state_error(self.name, EmaState, state)
        params = step.needs_params(self.name, params)
        old = step.buffer(self.name, "ema", state.ema)
        new = [_own_copy(p) for p in params]  # untrained leaves follow the params
        for i in step.active:
            e, f = old[i], old[i].dtype.type
            avg = as_array(params[i] + updates[i])  # θ'
            avg -= e
            avg *= f(1.0 - self.decay)
            avg += e  # ē + (1 − δ)(θ' − ē) = δ·ē + (1 − δ)·θ'
            new[i] = frozen_array(avg)
        return updates, EmaState(step.build(new))


def _own_copy(a: Array) -> Array:
    return a if not a.flags.writeable else frozen_array(a.copy())


def ema(decay: float) -> Ema:
    """Keep an exponential moving average of the parameters; see `Ema` and `ema_params`.

    Example:
        >>> import numpy as np
        >>> from fnn import optim
        >>> opt = optim.chain(optim.sgd(1.0), ema(0.5))
        >>> p = {"w": np.array([0.0])}
        >>> _, s = opt.update({"w": np.array([-2.0])}, opt.init(p), p)  # θ' = 2
        >>> optim.ema_params(s)["w"]
        array([1.])
    """
    return Ema(decay)


def ema_params(state: Any) -> Any:
    """The averaged parameters kept by the first `ema` in an optimizer's state.

    Args:
        state: the state of an optimizer or transformation containing ``ema``.

    Returns:
        A tree like the params (for a network, a network to evaluate).

    Raises:
        ValueError: the state holds no ``EmaState``.
    """
    found: list[Any] = []

    def visit(s: State) -> State:
        if isinstance(s, EmaState):
            found.append(s.ema)
        return s

    walk_states(state, visit)
    if not found:
        raise ValueError(
            f"fnn.optim.ema_params: the state ({type(state).__name__}) holds no EmaState; "
            "add fnn.optim.ema(decay) at the end of the optimizer's chain"
        )
    return found[0]


def _scalar(v: object) -> Array:
    if isinstance(v, bool) or not isinstance(v, int | float | np.number | np.ndarray):
        raise TypeError(f"fnn.optim.ReduceOnPlateauState: expected a number, got {v!r}")
    if isinstance(v, int):
        v = _arrays.real(v)  # 10**400 is inf (like a best value not yet seen), not OverflowError
    a = np.asarray(v, np.float64)
    if a.shape != ():
        raise ValueError(f"fnn.optim.ReduceOnPlateauState: expected a scalar, got shape {a.shape}")
    return frozen_array(a.copy())


@attrs.frozen(eq=False)
class ReduceOnPlateauState(State):
    """`ReduceOnPlateau`'s current scale, best value, epochs without improvement, cooldown."""

    scale: Array = attrs.field(converter=_scalar)
    best: Array = attrs.field(converter=_scalar)
    wait: Array = attrs.field(converter=_plateau_count)
    cooldown_left: Array = attrs.field(converter=_plateau_count)


def _mode(v: object) -> str:
    if v not in ("min", "max"):
        raise ValueError(f"fnn.optim.reduce_on_plateau: mode must be 'min' or 'max', got {v!r}")
    return str(v)


def _monitor(v: object) -> str:
    if not isinstance(v, str) or not v:
        raise TypeError(f"fnn.optim.reduce_on_plateau: monitor must be a metric name, got {v!r}")
    return v


_W = "fnn.optim.reduce_on_plateau"


def _patience(v: object) -> int:
    return _checks.count(_W, "patience", v, minimum=0)


def _factor(v: object) -> float:
    return _checks.number(_W, "factor", v, low=0.0, high=1.0, low_open=True, high_open=True)


def _min_delta(v: object) -> float:
    return _checks.number(_W, "min_delta", v, low=0.0)


def _cooldown(v: object) -> int:
    return _checks.count(_W, "cooldown", v, minimum=0)


def _min_scale(v: object) -> float:
    return _checks.number(_W, "min_scale", v, low=0.0, high=1.0)


@attrs.frozen
class ReduceOnPlateau(GradientTransformation):
    """Multiply the updates by a scale that drops by ``factor`` when a metric plateaus.

    After each epoch, ``fnn.optim.observe`` (``fit`` calls it) gives the epoch's
    metrics; when ``monitor`` has not improved by more than ``min_delta`` on the
    best value for ``patience`` epochs in a row, ``scale ← max(scale · factor,
    min_scale)``, and the next ``cooldown`` epochs are not counted (PyTorch's and
    Keras' ``ReduceLROnPlateau``). The scale starts at 1; put this last in a chain.

    Attributes:
        patience: epochs without improvement before a reduction, ``>= 0``.
        factor: the multiplier, in (0, 1).
        monitor: the metric, e.g. ``"val_loss"`` (``fit`` logs ``val_*`` with
            validation data) or ``"loss"``.
        mode: ``"min"`` (lower is better) or ``"max"``.
        min_delta: the smallest change that counts as an improvement, ``>= 0``.
        cooldown: epochs after a reduction before epochs are counted again.
        min_scale: the scale never goes below this, in [0, 1].
    """

    patience: int = attrs.field(converter=_patience)
    factor: float = attrs.field(
        converter=_factor
    )
    monitor: str = attrs.field(default="val_loss", converter=_monitor)
    mode: str = attrs.field(default="min", converter=_mode)
    min_delta: float = attrs.field(
        default=0.0, converter=_min_delta
    )
    cooldown: int = attrs.field(
        default=0, converter=_cooldown
    )
    min_scale: float = attrs.field(
        default=0.0, converter=_min_scale
    )

    @property
    def name(self) -> str:
        return "reduce_on_plateau"

    def init_leaves(self, step: Step, params: list[Array]) -> Any:
        return ReduceOnPlateauState(1.0, math.inf if self.mode == "min" else -math.inf, 0, 0)

    def update_leaves(
        self, step: Step, updates: list[Array], state: Any, params: list[Array] | None
    ) -> tuple[list[Array], Any]:
        if type(state) is not ReduceOnPlateauState:
            raise step.state_error(self.name, ReduceOnPlateauState, state)
        s = float(state.scale)
        if s == 1.0:
            return updates, state
        out = list(updates)
        step.scale(out, s)
        return out, state

    def lr_factor(self, state: Any) -> float | None:
        return float(state.scale)

    def monitors(self) -> tuple[str, ...]:
        return (self.monitor,)

    def observe(self, state: Any, logs: Mapping[str, float]) -> Any:
        if type(state) is not ReduceOnPlateauState:
            raise TypeError(
                f"{_W}: state must be the ReduceOnPlateauState from init(params), "
                f"got {type(state).__name__}"
            )
        if self.monitor not in logs:
            raise ValueError(
                f"{_W}: monitors {self.monitor!r}, which the logs do not hold; they hold "
                f"{sorted(logs)} (val_* names need validation=(x_val, y_val) in fit)"
            )
        value = float(logs[self.monitor])
        best, scale = float(state.best), float(state.scale)
        wait, cool = int(state.wait), int(state.cooldown_left)
        if self.mode == "min":
            improved = value < best - self.min_delta
        else:
            improved = value > best + self.min_delta
        if improved:  # NaN never improves
            best, wait = value, 0
        else:
            wait += 1
        if cool > 0:  # epochs in the cooldown are not counted
            cool, wait = cool - 1, 0
        elif wait > 0 and wait >= self.patience:
            scale, cool, wait = max(scale * self.factor, self.min_scale), self.cooldown, 0
        return ReduceOnPlateauState(scale, best, wait, cool)


def reduce_on_plateau(
    patience: int,
    factor: float,
    *,
    monitor: str = "val_loss",
    mode: str = "min",
    min_delta: float = 0.0,
    cooldown: int = 0,
    min_scale: float = 0.0,
) -> ReduceOnPlateau:
    """Scale the updates by ``factor`` after ``patience`` epochs without improvement.

    See `ReduceOnPlateau`. ``fit`` calls ``fnn.optim.observe`` after every epoch
    and checks before training that the monitored metric is logged.

    Example:
        >>> import numpy as np
        >>> from fnn import optim
        >>> opt = optim.chain(optim.adam(1e-2), reduce_on_plateau(patience=1, factor=0.1))
        >>> s = opt.init([np.zeros(1)])
        >>> for v in [1.0, 0.9, 0.95]:  # one epoch without beating 0.9
        ...     s = optim.observe(opt, s, {"val_loss": v})
        >>> round(optim.learning_rate(opt, s), 6)
        0.001
    """
    return ReduceOnPlateau(patience, factor, monitor, mode, min_delta, cooldown, min_scale)
