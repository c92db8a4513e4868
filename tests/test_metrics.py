"""Tests of fnn.metrics against hand computations, plus properties and errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnn import metrics


def test_accuracy_by_hand():
    """2 of 4 arg-maxes match; one-hot labels give the same answer as int labels."""
    z = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.1, 0.0, 0.2], [1.0, 0.0, 0.5]])
    y = np.array([0, 2, 2, 1])
    assert metrics.accuracy(z, y) == 0.5
    assert metrics.accuracy(z, np.eye(3, dtype=np.float32)[y]) == 0.5


def test_top_k_by_hand():
    """Top-2: rows 0, 1, 2 contain their label among the 2 best scores, row 3 does not."""
    z = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.1, 0.0, 0.2], [1.0, 0.0, 0.5]])
    y = np.array([1, 2, 0, 1])
    assert metrics.top_k_accuracy(z, y, 2) == 0.75
    assert metrics.top_k_accuracy(z, y, 3) == 1.0


@given(st.integers(1, 20), st.integers(2, 6), st.integers(0, 2**31))
def test_top_1_equals_accuracy(n, classes, seed):
    """Without ties, top-1 accuracy is accuracy, and top-k grows with k up to 1."""
    rng = np.random.default_rng(seed)
    z, y = rng.normal(size=(n, classes)), rng.integers(0, classes, n)
    assert metrics.top_k_accuracy(z, y, 1) == metrics.accuracy(z, y)
    tops = [metrics.top_k_accuracy(z, y, k) for k in range(1, classes + 1)]
    assert tops == sorted(tops) and tops[-1] == 1.0


def test_confusion_matrix_by_hand():
    """Rows are true classes, columns predictions; scores are arg-maxed."""
    true = np.array([0, 0, 1, 2, 2, 2])
    pred = np.array([0, 1, 1, 2, 0, 2])
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    np.testing.assert_array_equal(metrics.confusion_matrix(true, pred, 3), expected)
    scores = np.eye(3)[pred] * 2.0
    np.testing.assert_array_equal(metrics.confusion_matrix(true, scores, 3), expected)


@given(st.integers(1, 30), st.integers(1, 5), st.integers(0, 2**31))
def test_confusion_matrix_properties(n, classes, seed):
    """The counts sum to the batch and the trace over the batch is the accuracy."""
    rng = np.random.default_rng(seed)
    true, pred = rng.integers(0, classes, n), rng.integers(0, classes, n)
    c = metrics.confusion_matrix(true, pred, classes)
    assert c.sum() == n and np.trace(c) == (true == pred).sum()


def test_regression_metrics_by_hand():
    """mse, mae and R² of pred = (1, 2, 3, 5) against y = (1, 3, 3, 4)."""
    p = np.array([[1.0], [2.0], [3.0], [5.0]])
    y = np.array([[1.0], [3.0], [3.0], [4.0]])
    assert metrics.mse(p, y) == 0.5
    assert metrics.mae(p, y) == 0.5
    # ȳ = 2.75, Σ(y − ȳ)² = 3.0625 + 0.0625 + 0.0625 + 1.5625 = 4.75, Σ(p − y)² = 2
    assert metrics.r2_score(p, y) == pytest.approx(1 - 2 / 4.75, rel=1e-15)
    assert metrics.r2_score(y, y) == 1.0


def test_metric_wrapper_and_direction():
    """A Metric carries a name and a direction; mse and mae are lower-is-better."""
    m = metrics.Metric("top2", lambda p, t: metrics.top_k_accuracy(p, t, 2))
    assert m.name == "top2" and metrics.higher_is_better(m)
    assert not metrics.higher_is_better(metrics.mse) and not metrics.higher_is_better(metrics.mae)
    assert metrics.higher_is_better(metrics.accuracy) and metrics.higher_is_better(metrics.r2_score)
    assert not metrics.higher_is_better(metrics.Metric("err", metrics.mae, higher_is_better=False))


def test_inputs_unchanged():
    """Metrics do not modify their inputs."""
    z, y = np.array([[0.2, 0.8], [0.6, 0.4]]), np.array([1, 1])
    z0, y0 = z.copy(), y.copy()
    metrics.accuracy(z, y)
    metrics.top_k_accuracy(z, y, 1)
    metrics.confusion_matrix(y, z, 2)
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(y, y0)


def test_errors():
    """Bad inputs raise ValueError/TypeError naming the metric and the fix."""
    z = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"labels have shape \(2,\); expected integer labels"):
        metrics.accuracy(z, np.array([0, 1]))
    with pytest.raises(TypeError, match="labels must be integers"):
        metrics.accuracy(z, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.1 for 2 classes"):
        metrics.accuracy(z, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="a single score per example"):
        metrics.accuracy(np.zeros((3, 1)), np.array([0, 1, 1]))
    with pytest.raises(TypeError, match="must be a NumPy array"):
        metrics.accuracy([[0.0, 1.0]], np.array([1]))
    with pytest.raises(ValueError, match=r"k must be in 1\.\.2"):
        metrics.top_k_accuracy(z, np.array([0, 1, 1]), 3)
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        metrics.confusion_matrix(np.array([0]), np.array([0]), 0)
    with pytest.raises(ValueError, match=r"reshape the target with y\.reshape\(-1, 1\)"):
        metrics.mse(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match="targets are constant"):
        metrics.r2_score(np.zeros((3, 1)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="name must be a non-empty identifier"):
        metrics.Metric("top 5", metrics.accuracy)
    with pytest.raises(TypeError, match="fn must be a function"):
        metrics.Metric("x", 3)


# ---------------------------------------------------------------------------
# The input policy (fnn._arrays): subclasses viewed as ndarrays, masked arrays refused.


def _matrix(a):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.asmatrix(a)


def test_matrix_predictions_score_like_arrays():
    """np.matrix predictions (and labels) give the same scores as plain arrays: its argmax
    keeps rows 2-d, which once made accuracy compare a column with a row (0.5 for 1.0)."""
    pred = np.array([[0.9, 0.1], [0.2, 0.8]])
    labels = np.array([0, 1])
    assert metrics.accuracy(_matrix(pred), labels) == 1.0
    assert metrics.accuracy(_matrix(pred), _matrix(np.eye(2))) == 1.0
    assert metrics.top_k_accuracy(_matrix(pred), labels, 1) == 1.0
    assert metrics.confusion_matrix(labels, _matrix(pred), 2).tolist() == [[1, 0], [0, 1]]
    y = np.array([[1.0, 0.0], [0.0, 2.0]])
    for fn in (metrics.mse, metrics.mae, metrics.r2_score):
        assert fn(_matrix(pred), _matrix(y)) == fn(pred, y)


@pytest.mark.parametrize(
    ("fn", "args", "masked_at"),
    [
        (metrics.accuracy, (np.zeros((2, 2)), np.array([0, 1])), 0),
        (metrics.accuracy, (np.zeros((2, 2)), np.array([0, 1])), 1),
        (metrics.top_k_accuracy, (np.zeros((2, 2)), np.array([0, 1]), 1), 1),
        (metrics.confusion_matrix, (np.array([0, 1]), np.array([0, 1]), 2), 0),
        (metrics.confusion_matrix, (np.array([0, 1]), np.array([0, 1]), 2), 1),
        (metrics.mse, (np.zeros((2, 1)), np.zeros((2, 1))), 1),
        (metrics.mae, (np.zeros((2, 1)), np.zeros((2, 1))), 0),
        (metrics.r2_score, (np.zeros((2, 1)), np.arange(2.0)[:, None]), 1),
    ],
)
def test_masked_arrays_are_refused(fn, args, masked_at):
    """A masked argument is a TypeError saying to fill or drop the masked entries; a masked
    -1 label or inf target is never used as if it were there."""
    args = list(args)
    a = args[masked_at]
    mask = np.zeros(a.shape, bool)
    mask.flat[-1] = True
    args[masked_at] = np.ma.array(a, mask=mask)
    with pytest.raises(TypeError, match=r"fnn\.metrics\.\w+: \w+ is a masked array.*\.filled"):
        fn(*args)


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (metrics.accuracy, (np.zeros((2, 0)), np.array([0, 0]))),
        (metrics.top_k_accuracy, (np.zeros((2, 0)), np.array([0, 0]), 1)),
        (metrics.confusion_matrix, (np.array([0, 0]), np.zeros((2, 0)), 1)),
        (metrics.mse, (np.zeros((2, 0)), np.zeros((2, 0)))),
        (metrics.mae, (np.zeros((2, 0)), np.zeros((2, 0)))),
        (metrics.r2_score, (np.zeros((2, 0)), np.zeros((2, 0)))),
    ],
)
def test_predictions_without_values_are_refused(fn, args):
    """(batch, 0) predictions are a ValueError saying they hold no values, not a 'mean of
    empty slice' warning, a 'k must be in 1..0' or a 'targets are constant'."""
    with pytest.raises(ValueError, match=r"has shape \(2, 0\).*no values"):
        fn(*args)
