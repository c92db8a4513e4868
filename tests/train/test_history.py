"""Tests of fnn.train.history: appending, joining, JSON round trip and the PNG plot."""

import json
import math

import attrs
import pytest

from fnn.train import History


def test_append_fills_missing_names_with_nan():
    """A name that appears late gets NaN for the earlier epochs; nothing is mutated."""
    h0 = History()
    h1 = h0.append(0, {"loss": 1.0}, 0.5, 0)
    h2 = h1.append(1, {"loss": 0.5, "val_loss": 0.7}, 0.4, 2)
    assert h0.epochs == () and h1.epochs == (0,)
    assert h2.epochs == (0, 1) and h2.loss == (1.0, 0.5)
    assert math.isnan(h2["val_loss"][0]) and h2["val_loss"][1] == 0.7
    assert h2.skipped == (0, 2) and h2.seconds == (0.5, 0.4)


def test_history_is_immutable():
    """Fields cannot be reassigned and logs cannot be written."""
    h = History(epochs=(0,), logs={"loss": [1.0]})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        h.epochs = (1,)
    with pytest.raises(TypeError):
        h.logs["loss"] = (2.0,)


def test_join_resumed_histories():
    """h1 + h2 has the epochs and logs of both, and the second run's stop information."""
    h1 = History().append(0, {"loss": 1.0}, 0.1, 0)
    h2 = attrs.evolve(History().append(1, {"loss": 0.5}, 0.1, 0), best_epoch=1)
    h = h1 + h2
    assert h.epochs == (0, 1) and h.loss == (1.0, 0.5) and h.best_epoch == 1


def test_json_round_trip():
    """to_dict is JSON-serialisable (NaN as null) and from_dict restores the history."""
    h = History(epochs=(0, 1), logs={"loss": [1.0, 0.5], "val_loss": [math.nan, 0.6]},
                seconds=(0.1, 0.2), skipped=(0, 0), best_epoch=1, restored_epoch=1,
                stop_reason="early_stopping")
    text = json.dumps(h.to_dict(), allow_nan=False)
    back = History.from_dict(json.loads(text))
    assert back.epochs == h.epochs and back.loss == h.loss
    assert math.isnan(back["val_loss"][0]) and back["val_loss"][1] == 0.6
    assert (back.best_epoch, back.restored_epoch, back.stop_reason) == (1, 1, "early_stopping")


def test_unknown_name_and_missing_lr():
    """An unknown log name is a KeyError listing the names; lr is NaN when never logged."""
    h = History(epochs=(0,), logs={"loss": [1.0]})
    with pytest.raises(KeyError, match=r"no log named 'accuracy'; it has \['loss'\]"):
        h["accuracy"]
    assert math.isnan(h.lr[0])


def test_plot_writes_a_png(tmp_path):
    """plot writes a PNG file with a panel per quantity and returns its path."""
    h = History(epochs=(0, 1, 2), logs={
        "loss": [1.0, 0.6, 0.5], "accuracy": [0.5, 0.7, 0.8],
        "val_loss": [1.1, 0.7, 0.8], "val_accuracy": [0.4, 0.6, 0.7], "lr": [0.1] * 3,
    }, best_epoch=1)
    out = h.plot(str(tmp_path / "curves.png"))
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
