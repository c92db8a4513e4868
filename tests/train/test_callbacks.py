"""Tests of fnn.train.callbacks: early-stopping configuration and immutable epoch records."""

import types

import attrs
import numpy as np
import pytest

import fnn
from fnn.train import STOP, EarlyStopping, EpochRecord, History, Signal


def test_defaults():
    """EarlyStopping watches val_loss, mode auto, patience 5, restores the best epoch."""
    rule = EarlyStopping()
    assert (rule.monitor, rule.mode, rule.patience, rule.min_delta, rule.restore_best) == (
        "val_loss", "auto", 5, 0.0, True
    )
    assert STOP is Signal.STOP


def test_bad_configurations():
    """A bad mode, negative patience or negative min_delta is a ValueError naming the field."""
    with pytest.raises(ValueError, match="mode must be 'auto', 'min' or 'max'"):
        EarlyStopping(mode="minimum")
    with pytest.raises(ValueError, match="patience must be a number >= 0"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="min_delta must be a number >= 0"):
        EarlyStopping(min_delta=float("nan"))


def test_epoch_record_cannot_be_changed():
    """A record's fields, logs and network arrays are all read-only."""
    net = fnn.init([fnn.Dense(2)], (2,), key=0)
    rec = EpochRecord(0, types.MappingProxyType({"loss": 1.0}), net, None, History())
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        rec.epoch = 1
    with pytest.raises(TypeError):
        rec.logs["loss"] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        rec.net.layers[0].w[0, 0] = np.float32(1.0)
