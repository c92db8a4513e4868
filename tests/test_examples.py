"""The core examples run and reproduce the tutorials' results (at toy size where slow)."""

import numpy as np

from tests.conftest import load_example


def test_xor_predictions_within_a_tenth(capsys):
    """examples/xor.py: every prediction is within 0.1 of its XOR target."""
    pred = load_example("xor").main()
    target = np.array([[0], [1], [1], [0]])
    assert np.abs(pred - target).max() < 0.1
    assert "largest error" in capsys.readouterr().out


def test_regression_recovers_one_two_three(capsys):
    """examples/regression.py: weights ≈ (1, 2, 3) and r² ≥ 0.999 on inputs from 5000-10000."""
    w, score = load_example("regression").main()
    np.testing.assert_allclose(w, [1.0, 2.0, 3.0], atol=0.01)
    assert score >= 0.999
    assert "learned weights" in capsys.readouterr().out
