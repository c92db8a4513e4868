"""Early stopping rules, what callbacks receive, and the stop signal."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from fnn.network import Network
from fnn.train.history import History

__all__ = ["STOP", "EarlyStopping", "EpochRecord", "Signal"]


class Signal(enum.Enum):
    """What a callback returns: ``Signal.STOP`` ends training after this epoch."""

    CONTINUE = "continue"
    STOP = "stop"


STOP = Signal.STOP
"""Return this from a callback to stop training after the current epoch."""



def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(
            f"EarlyStopping: {attribute.name} must be a number >= 0, got {value!r}"
        )


def _check_mode(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in ("auto", "min", "max"):
        raise ValueError(
            f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {value!r}; "
            "'min' for losses and errors, 'max' for accuracies"
        )


@attrs.frozen
class EarlyStopping:
    """Stop when a monitored log has not improved for ``patience`` epochs.

    An epoch improves on the best value so far when
    ``value < best − min_delta`` (mode ``"min"``) or ``value > best + min_delta``
    (mode ``"max"``); NaN never improves. Training stops after ``patience``
    epochs in a row without improvement. With ``restore_best``, ``fit``
    returns the network and optimizer state exactly as they were at the end of
    the best epoch. The bookkeeping lives inside one ``fit`` call: a resumed
    run starts with no best value.

    Attributes:
        monitor: a log name such as ``"val_loss"`` or ``"val_accuracy"``.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (min for losses and for
            ``fnn.metrics.mse``/``mae``, max for other metrics).
        patience: epochs without improvement before stopping (``>= 0``).
        min_delta: the smallest change that counts as an improvement.
        restore_best: return the best epoch's parameters instead of the last.

    Raises:
        ValueError: a bad mode, or a negative patience or min_delta.

    Example:
        >>> rule = EarlyStopping("val_accuracy", patience=2)
        >>> rule.mode, rule.restore_best
        ('auto', True)
    """

    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = attrs.field(default="auto", validator=_check_mode)
    patience: int = attrs.field(default=5, validator=_non_negative)
    min_delta: float = attrs.field(default=0.0, validator=_non_negative)
    restore_best: bool = True


@attrs.frozen
class EpochRecord:
    """What a callback sees after each epoch (immutable).

    Attributes:
        epoch: the epoch index just finished.
        logs: this epoch's logs (read-only mapping of name -> float).
        net: the network after the epoch.
        opt_state: the optimizer state after the epoch.
        history: the history up to and including this epoch.
    """

    epoch: int
    logs: Mapping[str, float]
    net: Network
    opt_state: Any
    history: History


