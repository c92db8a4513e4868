"""The record of a training run: per-epoch logs, JSON round trip, loss-curve plots."""

from __future__ import annotations

import math
import os
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from fnn._diagnose import check_folder

__all__ = ["History"]


def _freeze_logs(logs: Mapping[str, Sequence[float]]) -> Mapping[str, tuple[float, ...]]:
    if not isinstance(logs, Mapping):
        raise TypeError(f"History: logs must map names to per-epoch values, got {logs!r}")
    return types.MappingProxyType({str(k): _floats(vs, "logs") for k, vs in logs.items()})


def _numbers(values: object, kind: type, what: str) -> tuple[Any, ...]:
    try:
        return tuple(kind(v) for v in values)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise TypeError(
            f"History: {what} must be a sequence of {kind.__name__}s, got {values!r}"
        ) from None


def _ints(values: Iterable[int]) -> tuple[int, ...]:
    return _numbers(values, int, "epochs and skipped")


def _floats(values: Iterable[float], what: str = "seconds") -> tuple[float, ...]:
    return _numbers(values, float, what)


def _json_float(v: float) -> float | None:
    return v if math.isfinite(v) else None


@attrs.frozen
class History:
    """What ``fit`` did, epoch by epoch: an immutable record, easy to turn into JSON.

    ``logs`` maps a name to one value per epoch: ``"loss"`` (the mean training
    loss over the epoch's batches, in training mode), each metric's name
    (measured on the training data at the end of the epoch, in evaluation
    mode), ``"val_loss"`` and ``"val_<metric>"`` with validation data, and
    ``"lr"``, the learning rate the epoch's first update used (when the
    optimizer can tell it, see ``fnn.optim.learning_rate``).

    Attributes:
        epochs: the epoch indices (0-based, counting from ``start_epoch``).
        logs: name -> tuple of per-epoch floats (NaN where unknown).
        seconds: wall time of each epoch.
        skipped: batches skipped per epoch for a non-finite loss.
        best_epoch: the best epoch of the monitored quantity (early stopping).
        restored_epoch: the epoch whose parameters ``fit`` returned, when
            early stopping restored the best epoch; ``None`` otherwise.
        stop_reason: ``"early_stopping"``, ``"callback"`` or ``None``.

    Example:
        >>> h = History(epochs=(0, 1), logs={"loss": [0.9, 0.5]})
        >>> h.loss, h["loss"], h.to_dict()["logs"]
        ((0.9, 0.5), (0.9, 0.5), {'loss': [0.9, 0.5]})
    """

    epochs: tuple[int, ...] = attrs.field(default=(), converter=_ints)
    logs: Mapping[str, tuple[float, ...]] = attrs.field(factory=dict, converter=_freeze_logs)
    seconds: tuple[float, ...] = attrs.field(default=(), converter=_floats)
    skipped: tuple[int, ...] = attrs.field(default=(), converter=_ints)
    best_epoch: int | None = None
    restored_epoch: int | None = None
    stop_reason: str | None = None

    def __getitem__(self, name: str) -> tuple[float, ...]:
        if name not in self.logs:
            raise KeyError(f"History: no log named {name!r}; it has {sorted(self.logs)}")
        return self.logs[name]

    @property
    def loss(self) -> tuple[float, ...]:
        """The mean training loss of each epoch."""
        return self["loss"]

    @property
    def lr(self) -> tuple[float, ...]:
        """The learning rate of each epoch's first update (NaN if unknown)."""
        return self.logs.get("lr", (math.nan,) * len(self.epochs))

    def append(
        self, epoch: int, logs: Mapping[str, float], seconds: float, skipped: int
    ) -> History:
        """A new history with one more epoch (missing names are NaN).

        Example:
            >>> History().append(0, {"loss": 1.0}, 0.1, 0).loss
            (1.0,)
        """
        n = len(self.epochs)
        names = list(self.logs) + [k for k in logs if k not in self.logs]
        new = {k: (*self.logs.get(k, (math.nan,) * n), logs.get(k, math.nan)) for k in names}
        return attrs.evolve(
            self,
            epochs=(*self.epochs, epoch),
            logs=new,
            seconds=(*self.seconds, seconds),
            skipped=(*self.skipped, skipped),
        )

    def __add__(self, other: History) -> History:
        """Join the history of a run and of its resumption (``h1 + h2``)."""
        if not isinstance(other, History):
            return NotImplemented
        out = self
        for i, e in enumerate(other.epochs):
            logs = {k: v[i] for k, v in other.logs.items()}
            out = out.append(e, logs, other.seconds[i], other.skipped[i])
        return attrs.evolve(
            out,
            best_epoch=other.best_epoch if other.best_epoch is not None else self.best_epoch,
            restored_epoch=other.restored_epoch,
            stop_reason=other.stop_reason,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers, ready for ``json.dumps`` (NaN becomes ``None``).

        Example:
            >>> import json
            >>> json.dumps(History(epochs=(0,), logs={"loss": [float("nan")]}).to_dict()["logs"])
            '{"loss": [null]}'
        """
        return {
            "epochs": list(self.epochs),
            "logs": {k: [_json_float(v) for v in vs] for k, vs in self.logs.items()},
            "seconds": list(self.seconds),
            "skipped": list(self.skipped),
            "best_epoch": self.best_epoch,
            "restored_epoch": self.restored_epoch,
            "stop_reason": self.stop_reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> History:
        """The inverse of :meth:`to_dict`.

        Example:
            >>> h = History(epochs=(0,), logs={"loss": [0.5]})
            >>> History.from_dict(h.to_dict()).loss
            (0.5,)
        """
        logs = {k: [math.nan if v is None else v for v in vs] for k, vs in d["logs"].items()}
        return cls(
            epochs=d["epochs"],
            logs=logs,
            seconds=d.get("seconds", ()),
            skipped=d.get("skipped", ()),
            best_epoch=d.get("best_epoch"),
            restored_epoch=d.get("restored_epoch"),
            stop_reason=d.get("stop_reason"),
        )

    def plot(self, path: str | os.PathLike[str]) -> str:
        """Write a PNG of the loss curves (and metric curves) to ``path``.

        One panel for ``loss``/``val_loss`` and one per metric (train and
        validation together); the best epoch is marked when known. Uses
        matplotlib's Agg backend and never opens a window.

        Args:
            path: the file to write, e.g. ``"loss.png"``.

        Returns:
            ``path``, as a string.

        Raises:
            FileNotFoundError: the folder of ``path`` does not exist (checked
                before any drawing; create it with ``os.makedirs``).
            ImportError: matplotlib is missing (``pip install fnn[plot]``).

        Example:
            >>> import os, tempfile
            >>> h = History(epochs=(0, 1), logs={"loss": [0.9, 0.5], "val_loss": [1.0, 0.7]})
            >>> out = h.plot(os.path.join(tempfile.mkdtemp(), "loss.png"))
            >>> os.path.getsize(out) > 0
            True
        """
        target = check_folder("History.plot", path)
        try:
            from matplotlib.figure import Figure
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "History.plot needs matplotlib; install it with pip install fnn[plot]"
            ) from err
        bases = [k for k in self.logs if not k.startswith("val_") and k != "lr"]
        bases += [k[4:] for k in self.logs if k.startswith("val_") and k[4:] not in bases]
        fig = Figure(figsize=(5 * max(len(bases), 1), 3.6))
        axes = fig.subplots(1, max(len(bases), 1), squeeze=False)[0]
        xs = [e + 1 for e in self.epochs]
        for ax, base in zip(axes, bases, strict=False):
            for name, style in ((base, "-o"), (f"val_{base}", "--s")):
                if name in self.logs:
                    ax.plot(xs, self.logs[name], style, label=name, markersize=3)
            if self.best_epoch is not None:
                ax.axvline(self.best_epoch + 1, color="grey", linestyle=":", label="best epoch")
            ax.set_xlabel("epoch")
            ax.set_title(base)
            ax.legend()
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(target, dpi=100)
        return os.fspath(path)


