"""Tests of the command line: fnn train and fnn evaluate, at toy size."""

import json

import numpy as np
import pytest

import fnn
from fnn import cli


def test_train_then_evaluate_spirals(tmp_path, capsys):
    """fnn train saves a loadable model and history; fnn evaluate reports its accuracy."""
    out = tmp_path / "run"
    code = cli.main(
        ["train", "--epochs", "3", "--limit", "300", "--no-progress", "--out", str(out)]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and "Dense(units=64)" in text
    net = fnn.load(out / "model.npz")
    assert isinstance(net, fnn.Network) and net.input_shape == (2,)
    history = json.loads((out / "history.json").read_text())
    assert len(history["logs"]["loss"]) == 3
    assert (
        cli.main(["evaluate", str(out / "model.npz"), "--dataset", "spirals", "--limit", "100"])
        == 0
    )
    report = capsys.readouterr().out
    assert "accuracy" in report and "loss" in report


def test_same_seed_same_model(tmp_path, capsys):
    """Two runs with the same seed save bit-identical parameters."""
    args = ["train", "--epochs", "2", "--limit", "200", "--no-progress"]
    cli.main([*args, "--out", str(tmp_path / "a")])
    cli.main([*args, "--out", str(tmp_path / "b")])
    a, b = fnn.load(tmp_path / "a" / "model.npz"), fnn.load(tmp_path / "b" / "model.npz")
    assert all(
        np.array_equal(x, y) for x, y in zip(fnn.tree.leaves(a), fnn.tree.leaves(b), strict=True)
    )


def test_bad_arguments_exit_with_a_message(tmp_path, capsys):
    """Unknown choices and malformed layer lists stop with argparse's exit code 2."""
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--dataset", "cifar"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["train", "--layers", "64,x"])
    assert "--layers takes comma-separated positive ints" in capsys.readouterr().err
    code = cli.main(
        ["train", "--lr", "-1", "--epochs", "1", "--no-progress", "--out", str(tmp_path)]
    )
    assert code == 2
    assert "lr" in capsys.readouterr().err


def test_evaluate_missing_file(tmp_path, capsys):
    """Evaluating a file that does not exist is an error naming the file, not a traceback."""
    assert cli.main(["evaluate", str(tmp_path / "none.npz"), "--dataset", "spirals"]) == 2
    assert "none.npz" in capsys.readouterr().err
