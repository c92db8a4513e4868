"""Learning-rate schedules: pure callables ``step -> lr``.

A schedule is a frozen ``attrs`` object called with the number of updates
already taken (``step = 0`` for the first update) and returning the learning
rate of that update as a Python float. Every optimizer in `fnn.optim`
takes either a float (a `constant` schedule) or a schedule as ``lr``;
``fnn.optim.learning_rate(opt, state)`` reports the rate the next update uses.

Example:
    >>> from fnn.optim import schedules
    >>> s = schedules.step_decay(0.1, step_size=10, factor=0.5)
    >>> [s(0), s(9), s(10), s(25)]
    [0.1, 0.1, 0.05, 0.025]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from fnn.optim import _checks

__all__ = [
    "Constant",
    "CosineDecay",
    "ExponentialDecay",
    "Schedule",
    "StepDecay",
    "as_schedule",
    "constant",
    "cosine_decay",
    "exponential_decay",
    "step_decay",
]

Schedule = Callable[[int], float]
"""Anything called as ``schedule(step) -> lr`` with ``step`` a non-negative int."""


def _step(who: str, step: object) -> int:
    return _checks.count(who, "step", step, minimum=0)


def _lr(who: str, value: object) -> float:
    return _checks.number(who, "lr", value, low=0.0, low_open=True, hint="e.g. lr=1e-3")


def _constant_lr(v: object) -> float:
    return _lr("fnn.optim.constant", v)


def _step_lr(v: object) -> float:
    return _lr("fnn.optim.step_decay", v)


def _step_size(v: object) -> int:
    return _checks.count("fnn.optim.step_decay", "step_size", v, minimum=1)


def _step_factor(v: object) -> float:
    return _checks.number("fnn.optim.step_decay", "factor", v, low=0.0, high=1.0, low_open=True)


def _exp_lr(v: object) -> float:
    return _lr("fnn.optim.exponential_decay", v)


def _exp_rate(v: object) -> float:
    who = "fnn.optim.exponential_decay"
    return _checks.number(who, "decay_rate", v, low=0.0, high=1.0, low_open=True)


def _exp_steps(v: object) -> int:
    return _checks.count("fnn.optim.exponential_decay", "decay_steps", v, minimum=1)


def _cos_lr(v: object) -> float:
    return _lr("fnn.optim.cosine_decay", v)


def _cos_total(v: object) -> int:
    return _checks.count("fnn.optim.cosine_decay", "total_steps", v, minimum=1)


def _cos_warmup(v: object) -> int:
    return _checks.count("fnn.optim.cosine_decay", "warmup_steps", v, minimum=0)


def _cos_final(v: object) -> float:
    return _checks.number("fnn.optim.cosine_decay", "final_lr", v, low=0.0)


@attrs.frozen
class Constant:
    """The same learning rate at every step: ``lr_t = lr``.

    Args:
        lr: the learning rate, a finite number > 0.

    Raises:
        ValueError: ``lr`` is not a finite number > 0.

    Example:
        >>> Constant(0.01)(1000)
        0.01
    """

    lr: float = attrs.field(converter=_constant_lr)

    def __call__(self, step: int) -> float:
        """The learning rate of update number ``step`` (0-based)."""
        _step("fnn.optim.constant", step)
        return self.lr


@attrs.frozen
class StepDecay:
    """Piecewise-constant decay: ``lr_t = lr · factor^⌊t / step_size⌋``.

    The rate is multiplied by ``factor`` every ``step_size`` updates (Keras'
    and PyTorch's "step" schedule).

    Args:
        lr: the initial learning rate, > 0.
        step_size: updates between two decays, an int >= 1.
        factor: the multiplier applied at each decay, in (0, 1].

    Raises:
        ValueError: an argument is outside its range.

    Example:
        >>> StepDecay(1.0, step_size=2, factor=0.5)(5)
        0.25
    """

    lr: float = attrs.field(converter=_step_lr)
    step_size: int = attrs.field(converter=_step_size)
    factor: float = attrs.field(converter=_step_factor)

    def __call__(self, step: int) -> float:
        """The learning rate of update number ``step`` (0-based)."""
        t = _step("fnn.optim.step_decay", step)
        return self.lr * self.factor ** (t // self.step_size)


@attrs.frozen
class ExponentialDecay:
    """Smooth exponential decay: ``lr_t = lr · decay_rate^(t / decay_steps)``.

    With ``staircase=True`` the exponent is rounded down, ``⌊t / decay_steps⌋``
    (then it equals `StepDecay`). Same formula as Keras' and Optax's
    ``exponential_decay``.

    Args:
        lr: the initial learning rate, > 0.
        decay_rate: the multiplier per ``decay_steps`` updates, in (0, 1].
        decay_steps: updates over which the rate is multiplied by ``decay_rate``, >= 1.
        staircase: decay in discrete jumps instead of continuously.

    Raises:
        ValueError: an argument is outside its range.

    Example:
        >>> round(ExponentialDecay(1.0, decay_rate=0.5, decay_steps=10)(5), 6)
        0.707107
    """

    lr: float = attrs.field(converter=_exp_lr)
    decay_rate: float = attrs.field(converter=_exp_rate)
    decay_steps: int = attrs.field(converter=_exp_steps)
    staircase: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def __call__(self, step: int) -> float:
        """The learning rate of update number ``step`` (0-based)."""
        t = _step("fnn.optim.exponential_decay", step)
        exponent = t // self.decay_steps if self.staircase else t / self.decay_steps
        return self.lr * self.decay_rate**exponent


def _cosine_check(instance: CosineDecay, attribute: Any, value: object) -> None:
    who = "fnn.optim.cosine_decay"
    if instance.warmup_steps >= instance.total_steps:
        raise ValueError(
            f"{who}: warmup_steps ({instance.warmup_steps}) must be smaller than total_steps "
            f"({instance.total_steps}); total_steps counts the warm-up too"
        )
    if instance.final_lr > instance.lr:
        raise ValueError(
            f"{who}: final_lr ({instance.final_lr}) must not exceed lr ({instance.lr}); "
            "a cosine decay goes down from lr to final_lr"
        )


@attrs.frozen
class CosineDecay:
    """Linear warm-up, then cosine decay from ``lr`` to ``final_lr``.

    With ``w = warmup_steps`` and ``T = total_steps`` (warm-up included):

    - ``t < w``:      ``lr_t = lr · (t + 1) / w`` (the first update already moves;
      update ``w − 1`` uses the full ``lr``),
    - ``w ≤ t < T``:  ``lr_t = final_lr + (lr − final_lr) · (1 + cos(π · (t − w) / (T − w))) / 2``,
    - ``t ≥ T``:      ``lr_t = final_lr``.

    This is SGDR's cosine annealing without restarts (Loshchilov & Hutter) with
    the linear warm-up used for large-batch training (Goyal et al.).

    Args:
        lr: the peak learning rate, > 0.
        total_steps: the length of the whole schedule in updates, including warm-up.
        warmup_steps: the length of the linear warm-up, ``0 <= warmup_steps < total_steps``.
        final_lr: the rate at and after ``total_steps``, ``0 <= final_lr <= lr``.

    Raises:
        ValueError: an argument is outside its range.

    Example:
        >>> s = CosineDecay(1.0, total_steps=10, warmup_steps=2)
        >>> [s(0), s(1), s(2), s(6), s(10)]
        [0.5, 1.0, 1.0, 0.5, 0.0]
    """

    lr: float = attrs.field(converter=_cos_lr)
    total_steps: int = attrs.field(converter=_cos_total)
    warmup_steps: int = attrs.field(default=0, converter=_cos_warmup)
    final_lr: float = attrs.field(default=0.0, converter=_cos_final, validator=_cosine_check)

    def __call__(self, step: int) -> float:
        """The learning rate of update number ``step`` (0-based)."""
        t = _step("fnn.optim.cosine_decay", step)
        w, total = self.warmup_steps, self.total_steps
        if t < w:
            return self.lr * (t + 1) / w
        if t >= total:
            return self.final_lr
        cosine = 0.5 * (1.0 + math.cos(math.pi * (t - w) / (total - w)))
        return self.final_lr + (self.lr - self.final_lr) * cosine


def constant(lr: float) -> Constant:
    """A constant learning rate ``lr_t = lr``; see `Constant`.

    Example:
        >>> constant(0.1)(7)
        0.1
    """
    return Constant(lr)


def step_decay(lr: float, step_size: int, factor: float = 0.1) -> StepDecay:
    """``lr_t = lr · factor^⌊t / step_size⌋``; see `StepDecay`.

    Example:
        >>> step_decay(1.0, step_size=3)(3)
        0.1
    """
    return StepDecay(lr, step_size, factor)


def exponential_decay(
    lr: float, decay_rate: float, decay_steps: int, *, staircase: bool = False
) -> ExponentialDecay:
    """``lr_t = lr · decay_rate^(t / decay_steps)``; see `ExponentialDecay`.

    Example:
        >>> exponential_decay(1.0, 0.5, 1)(3)
        0.125
    """
    return ExponentialDecay(lr, decay_rate, decay_steps, staircase)


def cosine_decay(
    lr: float, total_steps: int, warmup_steps: int = 0, final_lr: float = 0.0
) -> CosineDecay:
    """Linear warm-up then cosine decay to ``final_lr``; see `CosineDecay`.

    Example:
        >>> s = cosine_decay(1.0, total_steps=4)
        >>> [s(0), s(2), s(4)]
        [1.0, 0.5, 0.0]
    """
    return CosineDecay(lr, total_steps, warmup_steps, final_lr)


def as_schedule(who: str, lr: object) -> Schedule:
    """A float becomes `constant` (checked ``> 0``); a callable passes through.

    Raises:
        TypeError: ``lr`` is neither a number nor a callable.
        ValueError: ``lr`` is a number that is not finite and > 0.

    Example:
        >>> as_schedule("demo", 0.5)
        Constant(lr=0.5)
    """
    if callable(lr):
        return lr
    if isinstance(lr, bool) or not isinstance(lr, int | float | np.integer | np.floating):
        raise TypeError(
            f"{who}: lr must be a number or a schedule (a callable step -> lr such as "
            f"fnn.optim.cosine_decay(...)), got {type(lr).__name__}"
        )
    return Constant(_lr(who, lr))
