"""Training progress display: a tqdm bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["Progress", "format_logs"]


def format_logs(logs: Mapping[str, float]) -> str:
    """``"name value  name value"`` with 4 significant digits.

    Example:
        >>> format_logs({"loss": 0.123456, "val_accuracy": 0.9})
        'loss 0.1235  val_accuracy 0.9'
    """
    return "  ".join(f"{k} {v:.4g}" for k, v in logs.items())


class Progress:
    """A tqdm bar per epoch when stderr is a terminal, else one plain line per epoch.

    ``fit`` drives it: ``start(n)`` before epoch ``n`` (1-based), ``step()``
    after each batch, ``end(n, logs, seconds)`` after the epoch. Disabled, it
    prints nothing. tqdm is optional (``pip install fnn[progress]``).

    Args:
        enabled: show anything at all.
        total_epochs: the last epoch number, for ``epoch n/total``.
        steps: batches per epoch (the bar's length).

    Example:
        >>> p = Progress(True, total_epochs=2, steps=3)
        >>> p.end(1, {"loss": 0.51234}, 0.04)
        epoch 1/2  loss 0.5123  (0.0s)
    """

    def __init__(self, enabled: bool, total_epochs: int, steps: int) -> None:
        self.enabled, self.total, self.steps = enabled, total_epochs, steps
        self.tqdm: Any = None
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            try:
                self.tqdm = importlib.import_module("tqdm").tqdm
            except ImportError:  # pragma: no cover - depends on the environment
                self.tqdm = None

    def start(self, n: int) -> None:
        if self.tqdm is not None:
            self.bar = self.tqdm(total=self.steps, desc=f"epoch {n}/{self.total}", leave=True)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def end(self, n: int, logs: Mapping[str, float], seconds: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(format_logs(logs), refresh=True)
            self.bar.close()
        elif self.enabled:
            print(f"epoch {n}/{self.total}  {format_logs(logs)}  ({seconds:.1f}s)", flush=True)


